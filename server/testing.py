"""pytest support for registry folders: every tool's examples and tests, run through the sandbox.

Each ``registry/tools/<name>/test_<name>.py`` is generated from one template and calls
``tool_cases(__file__)``, which returns two pytest test functions:

* ``test_example[i]``: example ``i`` of ``tool.toml``; a failure shows its args, expected and actual value;
* ``test_restricted[test_x]``: the tool's own restricted test ``test_x`` (absent when it has none).

The tool's source is read as text and sent to a sandbox worker; ``tool.py`` is never imported. One
sandbox run per tool covers all its cases (the first item runs it, the rest read the report). The
sandbox pool is shared by the whole pytest session and closed at exit. Works for any registry folder:
``pytest PATH`` with Cairn installed.
"""

from __future__ import annotations

import ast
import atexit
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from server.errors import CairnError, SubmissionRejected
from server.models import CheckReport, ToolRecord

_lock = threading.Lock()
_sandbox: Any = None


def shared_sandbox() -> Any:
    """The pytest session's sandbox pool, started on first use."""
    global _sandbox
    with _lock:
        if _sandbox is None:
            from server.config import Limits
            from server.sandbox import Sandbox

            _sandbox = Sandbox(Limits(), pool_size=2)
            atexit.register(_sandbox.close)
        return _sandbox


def _read(folder: Path) -> ToolRecord:
    from server.store import Registry

    return Registry(folder.parent.parent, init=False).read(folder.name)


@cache
def _report(folder: Path) -> CheckReport | list[str]:
    try:
        record = _read(folder)
        return shared_sandbox().check(record.code, record.name, record.examples, record.tests)
    except SubmissionRejected as exc:
        return list(exc.problems)
    except CairnError as exc:
        return [str(exc)]


def _test_names(tests: str | None) -> list[str]:
    if not tests:
        return []
    try:
        tree = ast.parse(tests)
    except SyntaxError:
        return ["tests"]  # one item that fails with the compile problem
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]


def _outcome(folder: Path, kind: str, key: Any) -> None:
    report = _report(folder)
    if isinstance(report, list):
        pytest.fail(f"{folder.name} cannot run:\n" + "\n".join(f"  {p}" for p in report), pytrace=False)
    for case in report.cases:
        if case.kind == kind and (case.index == key if kind == "example" else case.name == key):
            if not case.ok:
                pytest.fail(case.detail, pytrace=False)
            return
    pytest.fail(f"{folder.name}: the sandbox reported no result for {kind} {key!r}", pytrace=False)


def tool_cases(test_file: str) -> tuple[Callable[..., None], Callable[..., None] | None]:
    """The parametrized ``test_example`` and ``test_restricted`` functions for one tool folder."""
    folder = Path(test_file).resolve().parent
    try:
        record = _read(folder)
        count, names = len(record.examples), _test_names(record.tests)
    except CairnError as exc:
        problem = str(exc)

        def unreadable() -> None:
            pytest.fail(f"{folder.name}: {problem}", pytrace=False)

        return unreadable, None

    @pytest.mark.parametrize("index", range(count), ids=str)
    def example(index: int) -> None:
        _outcome(folder, "example", index)

    if not names:
        return example, None

    @pytest.mark.parametrize("test_name", names, ids=str)
    def restricted(test_name: str) -> None:
        _outcome(folder, "test", test_name)

    return example, restricted
