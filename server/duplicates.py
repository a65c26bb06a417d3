"""Duplicate detection at authoring time: decided by behaviour, not by wording.

A submission duplicates an existing tool when the two *behave* the same on what each claims about
itself: the submission's examples pass when run on the existing tool, and the existing tool's examples
pass when run on the submission, both in the sandbox. Candidates are the tools whose normalised source
is identical (``fingerprint``: a cheap catch for clones that only rename things or change comments) and
the closest search hits; only those with a compatible signature are run: the same number of parameters,
pairwise the same JSON Schema in order (names may differ, since arguments are matched by position), and
the same return schema.

A look-alike (same wording and signature, different behaviour) fails one side's examples on the other
side and is not called a duplicate. What the examples do not cover cannot be told apart: two tools that
agree on every example are reported as duplicates, which is the useful answer for an agent about to
add a second copy.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from server.errors import CairnError, SubmissionRejected
from server.models import Example, ToolRecord
from server.validate import Signature

MAX_BEHAVIOUR_CANDIDATES = 5


@dataclass(frozen=True)
class Duplicate:
    """An existing tool the submission behaves like."""

    name: str
    version: int
    how: str

    def message(self) -> str:
        return (f"duplicate of `{self.name}` v{self.version} ({self.how}): call `{self.name}` instead, or improve "
                f"it with author_tool(name='{self.name}', base_version={self.version}, ...)")


def fingerprint(code: str, name: str) -> str | None:
    """A hash of the source's syntax tree with docstrings dropped and every identifier it defines renamed
    in order of appearance; None when the source does not parse."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    defined: dict[str, str] = {}

    def canonical(identifier: str) -> str:
        return defined.setdefault(identifier, f"v{len(defined)}")

    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if not isinstance(node, ast.Module):
                canonical(node.name)
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
        elif isinstance(node, ast.arg):
            canonical(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            canonical(node.id)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.name = defined[node.name]
        elif isinstance(node, ast.arg):
            node.arg = defined[node.arg]
            node.annotation = None
        elif isinstance(node, ast.Name) and node.id in defined:
            node.id = defined[node.id]
        elif isinstance(node, ast.keyword) and node.arg in defined:
            node.arg = defined[node.arg]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.returns = None
    dumped = ast.dump(tree, annotate_fields=False, include_attributes=False)
    return hashlib.sha256(dumped.encode("utf-8", "surrogatepass")).hexdigest()


def _strip_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != "default"}


def compatible(a: Signature, b: Signature) -> bool:
    """Same parameter schemas in the same order (names aside) and the same return schema."""
    if len(a.parameters) != len(b.parameters) or a.return_schema != b.return_schema:
        return False
    return all(_strip_defaults(p.schema) == _strip_defaults(q.schema) for p, q in zip(a.parameters, b.parameters))


def _renamed(examples: Iterable[Example], source: Signature, target: Signature) -> list[Example]:
    """The examples of a tool with signature ``source`` rewritten for ``target``'s parameter names."""
    names = {p.name: q.name for p, q in zip(source.parameters, target.parameters)}
    out = []
    for e in examples:
        args = {names[k]: v for k, v in e.args.items() if k in names}
        out.append(Example(args=args, raises=e.raises) if e.raises is not None else Example(args=args, expected=e.expected))
    return out


@dataclass(frozen=True)
class Candidate:
    record: ToolRecord
    signature: Signature


def find_duplicate(
    *,
    code: str,
    name: str,
    signature: Signature,
    examples: Sequence[Example],
    fingerprint_matches: Sequence[Candidate],
    nearest: Sequence[Candidate],
    check: Callable[[str, str, Sequence[Example]], bool],
) -> Duplicate | None:
    """The first existing tool the submission duplicates, or None.

    ``check(code, name, examples)`` runs examples in the sandbox and says whether all passed.
    """
    for candidate in fingerprint_matches:
        if candidate.record.name != name:
            return Duplicate(candidate.record.name, candidate.record.version, "the same code, renamed")
    tried = 0
    for candidate in nearest:
        record, other = candidate.record, candidate.signature
        if record.name == name or not compatible(signature, other):
            continue
        tried += 1
        if tried > MAX_BEHAVIOUR_CANDIDATES:
            break
        try:
            if check(record.code, record.name, _renamed(examples, signature, other)) and \
                    check(code, name, _renamed(record.examples, other, signature)):
                return Duplicate(record.name, record.version,
                                 "it gives the same results on both tools' examples")
        except (SubmissionRejected, CairnError):  # a candidate that cannot run is not a duplicate
            continue
    return None
