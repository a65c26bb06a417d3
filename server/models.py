"""Plain data shared by Cairn's modules. No behaviour beyond (de)serialising itself, no third-party types.

A tool on disk is a ``ToolRecord``: its source (``tool.py``) plus a little metadata (``tool.toml``).
Examples keep their arguments and expected values as JSON, so ``null`` survives TOML (which has none)
and ``1`` stays distinct from ``1.0``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Status = Literal["active", "deprecated"]
Action = Literal["add", "update", "rollback", "deprecate", "delete"]

NO_VALUE: Any = object()
"""Marks an example that has no ``expected`` value (it declares ``raises`` instead)."""


@dataclass(frozen=True)
class Example:
    """One use of a tool: arguments and either the expected JSON result or the name of the error raised."""

    args: dict[str, Any]
    expected: Any = NO_VALUE
    raises: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"args": self.args}
        if self.raises is not None:
            out["raises"] = self.raises
        else:
            out["expected"] = self.expected
        return out

    def label(self, index: int) -> str:
        """How problems name this example: ``example 2 ({"x": 1})``."""
        args = json.dumps(self.args, ensure_ascii=False, sort_keys=True)
        if len(args) > 120:
            args = args[:117] + "..."
        return f"example {index} ({args})"


@dataclass(frozen=True)
class ToolRecord:
    """One version of one tool, exactly as the registry stores it."""

    name: str
    description: str
    code: str
    examples: tuple[Example, ...]
    version: int = 0
    status: Status = "active"
    purpose: str = ""
    tags: tuple[str, ...] = ()
    tests: str | None = None
    input_schema_sha256: str = ""
    output_schema_sha256: str = ""
    policy_version: int = 0
    deprecation_reason: str | None = None

    def with_changes(self, **changes: Any) -> ToolRecord:
        return replace(self, **changes)


@dataclass(frozen=True)
class Provenance:
    """What a commit says about who asked for a change and what was checked."""

    client: str | None = None
    """The MCP client's name and version (``claude-code 2.1.0``), or ``cairn-cli``."""
    checks: str | None = None
    """A one-line summary of the checks that passed (``3/3 examples, 1/1 tests``)."""
    reason: str | None = None
    """Why (the purpose, a deprecation reason); the commit message's subject uses it."""


@dataclass(frozen=True)
class VersionInfo:
    """One entry of a tool's history, read from git."""

    version: int
    action: str
    commit: str
    author: str
    date: str
    message: str
    checks: str | None = None
    client: str | None = None


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one example or one restricted test."""

    kind: Literal["example", "test"]
    index: int
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class CheckReport:
    """Every example and test of a submission, run in the sandbox."""

    cases: tuple[CaseResult, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.cases)

    @property
    def failures(self) -> list[CaseResult]:
        return [c for c in self.cases if not c.ok]

    def count(self, kind: str) -> tuple[int, int]:
        cases = [c for c in self.cases if c.kind == kind]
        return sum(c.ok for c in cases), len(cases)

    def summary(self) -> str:
        ex_ok, ex_all = self.count("example")
        t_ok, t_all = self.count("test")
        text = f"{ex_ok}/{ex_all} examples"
        if t_all:
            text += f", {t_ok}/{t_all} tests"
        return text + " passed"


@dataclass(frozen=True)
class CallOutcome:
    """A successful sandboxed call: the JSON result and what the tool printed."""

    value: Any
    printed: str = ""


@dataclass(frozen=True)
class SnippetResult:
    """What ``run_code`` returns: captured output and the value of a final expression (or None)."""

    printed: str
    result: Any
