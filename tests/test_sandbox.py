"""The sandbox: every rule is a test, with real worker processes and no mocks.

Groups: compile-time rejections; run-time guards (advisory ideas, dunder walks, module wrappers);
resource exhaustion; BaseException and hostile results; state leaks between calls; ordinary code that
must keep working; check() and run_snippet(); the process boundary (rlimits, namespace, pool recycling);
a long run of hostile calls. Every hostile case also asserts that the next ordinary call succeeds.

Limits are small (CPU 0.5 s, 128 MiB) so the exhaustion cases stay fast.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import random
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest

from server import sandbox_worker
from server.config import Limits
from server.errors import LimitExceeded, SandboxUnavailable, SubmissionRejected, ToolFailed, ToolRaised
from server.models import CallOutcome, Example, SnippetResult
from server.sandbox import ALLOWED_MODULES, POLICY_VERSION, Sandbox

LINUX = sys.platform.startswith("linux")
# the wall limit is generous so that, even on a loaded machine, the CPU limit is what stops a runaway
SMALL = Limits(cpu_seconds=0.5, wall_seconds=10.0, memory_mib=128)
OK_SOURCE = "def ok(x: int) -> int:\n    return x + 1\n"


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(SMALL, pool_size=2) as box:
        box.start()
        yield box


@pytest.fixture(scope="module")
def solo():
    """One worker only, so consecutive calls are guaranteed to share a process (state-leak tests)."""
    with Sandbox(SMALL, pool_size=1) as box:
        box.start()
        yield box


def still_works(box: Sandbox) -> None:
    assert box.call(OK_SOURCE, "ok", {"x": 41}).value == 42


def run(box: Sandbox, body: str, *, limits: Limits | None = None, prelude: str = "", **args: Any) -> Any:
    """Wrap ``body`` as the function ``t`` and call it; returns the JSON value."""
    params = ", ".join(args)
    indented = "\n".join("    " + line for line in body.splitlines())
    source = f"{prelude}\ndef t({params}):\n{indented}\n"
    return box.call(source, "t", args, limits=limits).value


def raised(box: Sandbox, body: str, **kw: Any) -> ToolRaised:
    with pytest.raises(ToolRaised) as info:
        run(box, body, **kw)
    return info.value


# ---------------------------------------------------------------------------------------------------
# Compile time: every problem at once, as "Line N: ..."

REJECTED = [
    # imports outside the allow-list, and escapes through allowed modules' submodules
    ("import os", "import of 'os' is not allowed; allowed modules: base64, bisect"),
    ("import subprocess", "import of 'subprocess' is not allowed"),
    ("from os import path", "import of 'os' is not allowed"),
    ("import urllib", "import of 'urllib' is not allowed"),
    ("import urllib.request", "import of 'urllib.request' is not allowed"),
    ("from json import codecs", "cannot import 'codecs' from 'json': not available in the sandbox"),
    ("from json import decoder", "cannot import 'decoder' from 'json'"),
    ("from re import enum", "cannot import 'enum' from 're'"),
    ("from typing import sys", "cannot import 'sys' from 'typing'"),
    ("from collections import abc", "cannot import 'abc' from 'collections'"),
    ("from string import Formatter", "cannot import 'Formatter' from 'string'"),
    ("from functools import update_wrapper", "cannot import 'update_wrapper' from 'functools'"),
    ("from . import tool", "relative imports are not allowed"),
    ("from math import *", '"*" imports are not allowed'),
    ("import math as _m", '"_m" is an invalid variable name'),
    # dunder and underscore names
    ("x = __import__('os')", '"__import__" is an invalid variable name'),
    ("x = __builtins__", '"__builtins__" is an invalid variable name'),
    ("x = (1).__class__", '"__class__" is an invalid attribute name'),
    ("x = ().__class__.__bases__[0].__subclasses__()", '"__subclasses__" is an invalid attribute name'),
    ("def f(): pass\nx = f.__globals__", '"__globals__" is an invalid attribute name'),
    ("x = {}.__class__.__dict__", '"__class__" is an invalid attribute name'),
    ("import math\nx = math.__dict__", '"__dict__" is an invalid attribute name'),
    ("import json\nx = json.__loader__", '"__loader__" is an invalid attribute name'),
    ("_private = 1", '"_private" is an invalid variable name'),
    ("class P:\n    _x = 1", '"_x" is an invalid variable name'),
    ("class P:\n    def __repr__(self):\n        return 'p'", '"__repr__" is an invalid variable name'),
    ("class P:\n    def __getattr__(self, n):\n        return 1", '"__getattr__" is an invalid variable name'),
    ("class P:\n    def __del__(self):\n        pass", '"__del__" is an invalid variable name'),
    ("class P(metaclass=type):\n    pass", 'The keyword argument "metaclass" is not allowed.'),
    # generator, coroutine, frame and traceback walks (advisory CVE-2023-37271 and relatives)
    ("def g():\n    yield 1\nx = g().gi_frame", '"gi_frame" is a restricted name'),
    ("def g():\n    yield 1\nx = g().gi_code", '"gi_code" is a restricted name'),
    ("def g():\n    yield 1\nx = g().gi_yieldfrom", '"gi_yieldfrom" is a restricted name'),
    ("def c(x):\n    return x.cr_frame", '"cr_frame" is a restricted name'),
    ("def c(x):\n    return x.ag_frame", '"ag_frame" is a restricted name'),
    ("def c(f):\n    return f.f_back.f_globals", '"f_back" is a restricted name'),
    ("def c(f):\n    return f.f_globals", '"f_globals" is a restricted name'),
    ("def c(f):\n    return f.f_builtins", '"f_builtins" is a restricted name'),
    ("def c(tb):\n    return tb.tb_frame", '"tb_frame" is a restricted name'),
    ("try:\n    1/0\nexcept Exception as e:\n    x = e.__traceback__", '"__traceback__" is an invalid attribute name'),
    ("async def f():\n    pass", "AsyncFunctionDef statements are not allowed."),
    ("def f(x):\n    return [y async for y in x]", "SyntaxError: asynchronous comprehension outside"),
    # positional-only and lambda parameters that would shadow guard hooks
    ("def f(_getattr_=None, /):\n    return 1", '"_getattr_" is an invalid variable name'),
    ("def f(_getitem_, /):\n    return 1", '"_getitem_" is an invalid variable name'),
    ("def f(*, _write_=None):\n    return 1", '"_write_" is an invalid variable name'),
    ("def f(**_print_):\n    return 1", '"_print_" is an invalid variable name'),
    ("f = lambda _getiter_: 1", '"_getiter_" is an invalid variable name'),
    # try/except* (advisory CVE-2025-22153)
    ("try:\n    pass\nexcept* ValueError:\n    pass", "TryStar statements are not allowed."),
    # exec/eval, also written with unicode-normalised identifiers (NFKC makes them plain names)
    ("exec('1')", "Exec calls are not allowed."),
    ("eval('1')", "Eval calls are not allowed."),
    ("ｅｘｅｃ('1')", "Exec calls are not allowed."),
    ("ｅｖａｌ('1')", "Eval calls are not allowed."),
    ("x = (1).__ｃｌａｓｓ__", '"__class__" is an invalid attribute name'),
    ("x = __ｂｕｉｌｔｉｎｓ__", '"__builtins__" is an invalid variable name'),
    ("x = (1).＿＿class＿＿", "invalid character"),
    ("ｘ = 1\n_ｙ = 2", '"_y" is an invalid variable name'),
    ("def print():\n    pass", '"print" is a reserved name.'),
    ("breakpoint()", '"breakpoint" is a reserved name.'),
    ("def f(x):\n    x.a.b += 1", "Augmented assignment of attributes is not allowed. Write obj.attr = obj.attr + value"),
    ("def f(x, g):\n    x[g()] += 1", "Augmented assignment of object items and slices is not allowed. Write x[k] ="),
    ("def f():\n    nonlocal x", "Nonlocal statements are not allowed."),
    ("x = 1 +", "Line 1: SyntaxError"),
    ("def f():\n    return 1\nreturn 2", "Line 3: SyntaxError: 'return' outside function"),
]


@pytest.mark.parametrize(("source", "problem"), REJECTED, ids=[s for s, _ in REJECTED])
def test_compile_rejects_source(sandbox, source, problem):
    problems = sandbox.compile_problems(source)
    assert any(problem in p for p in problems), problems
    assert all(p.startswith("Line ") for p in problems), problems


BOMBS = [
    ("x = " + "+".join(["1"] * 3000), "nested too deeply"),
    ("x = " + "(" * 250 + "1" + ")" * 250, "too many nested parentheses"),
    ("x = " + "[" * 99 + "]" * 99, "nested too deeply"),
    ("x = " + "-" * 5000 + "1", "nested too deeply"),
    ("def f():\n" + "".join("    " * (i + 1) + "if x:\n" for i in range(98)) + "    " * 99 + "pass\n", "too"),
    ("x = '" + "a" * (70 * 1024) + "'", "more than the 64 KiB limit"),
    ("x = '\ud800'", "lone surrogate"),
    ("x = 1\x00", "Line 1:"),
]


@pytest.mark.parametrize(("source", "problem"), BOMBS, ids=[p for _, p in BOMBS])
def test_compile_bombs_become_clean_problems(sandbox, source, problem):
    problems = sandbox.compile_problems(source)
    assert problems and any(problem in p for p in problems), problems
    still_works(sandbox)


def test_compile_reports_every_problem_at_once_with_line_numbers(sandbox):
    source = "import os\nx = (1).__class__\n\ndef f(_getattr_=1, /):\n    return eval('1')\n"
    problems = sandbox.compile_problems(source)
    lines = [p.split(":", 1)[0] for p in problems]
    assert lines == ["Line 1", "Line 2", "Line 4", "Line 5"], problems


def test_compile_problems_is_empty_for_good_code(sandbox):
    assert sandbox.compile_problems(OK_SOURCE) == []


def test_compile_problems_of_a_tests_file_are_reported_too(sandbox):
    assert sandbox.compile_problems("def test_x():\n    assert eval('1')\n", "tests.py") == [
        "Line 2: Eval calls are not allowed."
    ]


def test_call_of_code_that_does_not_compile_is_rejected_with_every_problem(sandbox):
    with pytest.raises(SubmissionRejected) as info:
        sandbox.call("import os\ndef t():\n    return os.name\n", "t", {})
    assert info.value.problems[0].startswith("Line 1: import of 'os' is not allowed")


# ---------------------------------------------------------------------------------------------------
# Run time: guards, builtins and module wrappers

GUARDED = [
    # str.format / format_map / Formatter attribute walks (advisory CVE-2023-41039)
    ("return '{0.__class__}'.format(1)", "AttributeError", '"__class__" is an invalid attribute name'),
    ("return '{x.__class__.__mro__}'.format(x=1)", "AttributeError", "__class__"),
    ("return '{0.__init__.__globals__}'.format(t)", "AttributeError", "__init__"),
    ("return '{x.__class__}'.format_map({'x': 1})", "AttributeError", "__class__"),
    ("g = (i for i in [])\nreturn '{0.gi_frame}'.format(g)", "AttributeError", '"gi_frame" is a restricted name'),
    ("return '{0[0].__class__}'.format([1])", "AttributeError", "__class__"),
    ("f = str.format\nreturn f('{0.__class__}', 1)", "NotImplementedError", "format"),
    ("import string\nreturn string.Formatter().format('{0.__class__}', 1)", "AttributeError",
     "module 'string' has no attribute 'Formatter'"),
    # AttributeError.obj hands out the object a failed lookup was made on (advisory GHSA-5rgv-jmjr-9j8r)
    ("import json\ntry:\n    json.codecs\nexcept AttributeError as e:\n    return e.obj", "AttributeError",
     "'obj' attribute of an AttributeError is not available"),
    ("try:\n    (1).nothing\nexcept AttributeError as e:\n    return e.obj", "AttributeError", "'obj'"),
    # builtins that reach the interpreter are simply not there
    ("return type(1)", "NameError", "name 'type' is not defined"),
    ("return getattr(1, 'real')", "NameError", "'getattr'"),
    ("return vars()", "NameError", "'vars'"),
    ("return dir()", "NameError", "'dir'"),
    ("return globals()", "NameError", "'globals'"),
    ("return locals()", "NameError", "'locals'"),
    ("return open('/etc/passwd').read()", "NameError", "'open'"),
    ("return compile('1', 'x', 'eval')", "NameError", "'compile'"),
    ("return input()", "NameError", "'input'"),
    ("return memoryview(b'x')", "NameError", "'memoryview'"),
    ("help()", "NameError", "'help'"),
    ("exit()", "NameError", "'exit'"),
    ("quit()", "NameError", "'quit'"),
    # writes: module wrappers, library classes, functions and built-in objects are read-only
    ("import math\nmath.pi = 3", "TypeError", "module 'math' is read-only"),
    ("import math\ndel math.pi", "TypeError", "module 'math' is read-only"),
    ("import math\nsetattr(math, 'tau', 1)", "TypeError", "module 'math' is read-only"),
    ("import collections\ncollections.Counter.most_common = None", "TypeError", "cannot modify class 'Counter'"),
    ("import json\njson.loads.cache = {}", "TypeError", "cannot modify a 'function' object"),
    ("def g():\n    pass\ng.x = 1", "TypeError", "cannot modify a 'function' object"),
    ("x = 1\nx.real = 2", "TypeError", "cannot modify a 'int' object"),
    ("class P:\n    pass\nsetattr(P(), '__class__', int)", "AttributeError", '"__class__" is an invalid attribute name'),
    ("class P:\n    pass\nsetattr(P, '__eq__', lambda a, b: True)", "AttributeError", '"__eq__" is an invalid attribute'),
    ("class P:\n    pass\ndelattr(P, '__init__')", "AttributeError", '"__init__" is an invalid attribute'),
    # module walks find nothing behind the wrapper
    ("import json\nreturn json.codecs", "AttributeError", "module 'json' has no attribute 'codecs' in the sandbox"),
    ("import re\nreturn re.enum", "AttributeError", "module 're' has no attribute 'enum'"),
    ("import re\nreturn re.sre_compile", "AttributeError", "module 're'"),
    ("import typing\nreturn typing.sys", "AttributeError", "module 'typing' has no attribute 'sys'"),
    ("import statistics\nreturn statistics.sys", "AttributeError", "module 'statistics'"),
    ("import functools\nreturn functools.update_wrapper", "AttributeError", "module 'functools'"),
    ("import urllib.parse\nreturn urllib.parse.sys", "AttributeError", "module 'urllib.parse'"),
    ("import urllib.parse\nreturn urllib.request", "AttributeError", "module 'urllib' has no attribute 'request'"),
    ("import textwrap\nreturn textwrap.TextWrapper", "AttributeError", "module 'textwrap'"),
    ("import hashlib\nreturn hashlib.file_digest", "AttributeError", "module 'hashlib'"),
    ("import random\nreturn random.SystemRandom", "AttributeError", "module 'random'"),
    ("import decimal\nreturn decimal.DefaultContext", "AttributeError", "module 'decimal'"),
]


@pytest.mark.parametrize(("body", "error", "message"), GUARDED, ids=[b.splitlines()[-1][:60] for b, _, _ in GUARDED])
def test_guard_refuses_at_run_time(sandbox, body, error, message):
    exc = raised(sandbox, body)
    assert exc.type_name == error
    assert message in exc.message
    still_works(sandbox)


def test_module_wrappers_have_no_public_names_beyond_what_they_offer():
    for name, module in sandbox_worker.build_modules().items():
        public = sorted(n for n in dir(module) if not n.startswith("_"))
        assert public == sandbox_worker.offered(module), name


@pytest.mark.parametrize("module", ALLOWED_MODULES)
def test_every_module_wrapper_is_read_only_and_hides_what_it_does_not_offer(sandbox, module):
    body = (
        f"import {module} as m\n"
        "try:\n    m.nothing_here\n    found = True\nexcept AttributeError:\n    found = False\n"
        "try:\n    m.extra = 1\n    wrote = True\nexcept TypeError:\n    wrote = False\n"
        # no __name__: CPython's `from m import x` would fall back to sys.modules['<name>.x']
        "return [found, wrote, hasattr(m, '__name__'), hasattr(m, '__file__'), hasattr(m, '__spec__')]"
    )
    assert run(sandbox, body) == [False, False, False, False, False]


def _reachable_problems(root: Any, label: str) -> list[str]:
    """What tool code could reach from ``root`` through non-underscore attributes (3 levels, read through
    the real ``_getattr_`` guard): modules, frames, code objects, interpreter builtins, shared mutable
    containers."""
    import builtins

    danger = {id(getattr(builtins, n)) for n in
              "eval exec open compile __import__ getattr vars dir globals locals type breakpoint input".split()}
    mutable = (dict, list, set, bytearray, collections.deque)
    found, seen = [], set()

    def walk(obj: Any, path: str, depth: int) -> None:
        if id(obj) in seen or depth > 3:
            return
        seen.add(id(obj))
        if isinstance(obj, types.ModuleType):
            found.append(f"module at {path}")
            return
        if isinstance(obj, (types.FrameType, types.CodeType, types.TracebackType)):
            found.append(f"frame or code at {path}")
            return
        if id(obj) in danger:
            found.append(f"interpreter builtin at {path}")
            return
        if depth > 0 and type(obj) in mutable:
            found.append(f"shared mutable {type(obj).__name__} at {path}")
        for name in dir(obj):
            if name.startswith("_"):
                continue
            try:
                value = sandbox_worker.guarded_getattr(obj, name)
            except Exception:
                continue
            walk(value, f"{path}.{name}", depth + 1)

    walk(root, label, 0)
    return found


def test_nothing_dangerous_or_shared_and_mutable_is_reachable_from_any_module_wrapper():
    modules = sandbox_worker.build_modules()
    assert _reachable_problems(sandbox_worker.SandboxModule("probe", {"j": json}), "probe") == [
        "module at probe.j"], "the walk itself must notice a real module"
    problems = []
    for name in ALLOWED_MODULES:
        problems += _reachable_problems(modules[name], name)
    problems += _reachable_problems(sandbox_worker._random_module(), "random")
    assert problems == []


def test_nothing_dangerous_is_reachable_from_the_builtins():
    offered = sandbox_worker.build_builtins()
    problems = []
    for name, value in offered.items():
        if not name.startswith("_"):
            problems += _reachable_problems(value, f"builtins.{name}")
    assert problems == []
    for refused in ("type", "getattr", "vars", "dir", "globals", "locals", "open", "eval", "exec", "compile",
                    "breakpoint", "input", "memoryview", "help", "exit", "quit"):
        assert refused not in offered
    assert offered["__import__"] is not __import__


# ---------------------------------------------------------------------------------------------------
# Resource exhaustion: stopped, reported as the right limit, and the next call works

EXHAUSTION = [
    ("while True:\n    pass", "cpu", "cpu time limit of 0.5 s exceeded"),
    ("return sum(range(10**10))", "cpu", "cpu time limit of 0.5 s exceeded"),
    ("return 10**10**8", "cpu", "cpu time limit"),
    ("import math\nreturn math.factorial(10**7)", "cpu", "cpu time limit"),
    ("import re\nreturn bool(re.match('(a+)+$', 'a' * 40 + 'b'))", "cpu", "cpu time limit"),
    ("while True:\n    print('flood')", "cpu", "cpu time limit"),
    ("return len('x' * 10**10)", "memory", "memory limit of 128 MiB exceeded"),
    ("return len([0] * 10**9)", "memory", "memory limit of 128 MiB exceeded"),
    ("x = []\nwhile True:\n    x.append('y' * 10**6)", "memory", "memory limit of 128 MiB exceeded"),
    ("return 'x' * (2 * 1024 * 1024)", "result", "output too large: 2 MiB > 1 MiB"),
    ("return list(range(300000))", "result", "output too large: 1.9 MiB > 1 MiB"),
    ("x = []\nfor i in range(200):\n    x = [x]\nreturn x", "result", "result too deeply nested (> 100 levels)"),
    ("x = {}\nfor i in range(200):\n    x = {'a': x}\nreturn x", "result", "result too deeply nested (> 100 levels)"),
    # CPython segfaults hashing a million-deep tuple; the worker dies, the server reports it and moves on
    ("t = ()\nfor i in range(10**6):\n    t = (t,)\nreturn hash(t)", "crash", "crashed (SIGSEGV)"),
]


@pytest.mark.parametrize(("body", "kind", "message"), EXHAUSTION, ids=[b.splitlines()[-1][:50] for b, _, _ in EXHAUSTION])
def test_resource_exhaustion_is_stopped_and_reported(sandbox, body, kind, message):
    with pytest.raises(LimitExceeded) as info:
        run(sandbox, body)
    assert info.value.kind == kind
    assert message in str(info.value)
    still_works(sandbox)


def test_wall_clock_limit_stops_a_call_the_cpu_limit_has_not_stopped_yet(sandbox):
    with pytest.raises(LimitExceeded) as info:
        run(sandbox, "while True:\n    pass", limits=Limits(cpu_seconds=30, wall_seconds=0.5, memory_mib=128))
    assert info.value.kind == "timeout"
    assert str(info.value) == "timed out after 0.5 s"
    still_works(sandbox)


def test_deep_recursion_is_an_ordinary_recursion_error(sandbox):
    exc = raised(sandbox, "def down(n):\n    return down(n + 1)\nreturn down(0)")
    assert exc.type_name == "RecursionError"
    assert exc.line == 4  # line 1 is the empty prelude, line 2 "def t():", line 3 "def down(n):"
    still_works(sandbox)


def test_a_finite_print_flood_is_truncated_and_the_call_still_returns(sandbox):
    limits = Limits(cpu_seconds=2, wall_seconds=4, memory_mib=128, output_bytes=1024)
    outcome = sandbox.call("def t():\n    for i in range(20000):\n        print(i)\n    return 'done'\n", "t", {},
                           limits=limits)
    assert outcome.value == "done"
    assert outcome.printed.startswith("0\n1\n2\n")
    assert outcome.printed.endswith("[output truncated: more than 1 KiB printed]")
    assert len(outcome.printed.encode()) < 1024 + 100


def test_arguments_larger_than_the_limit_are_refused_before_sending(sandbox):
    with pytest.raises(LimitExceeded) as info:
        sandbox.call(OK_SOURCE, "ok", {"x": "y" * 2048}, limits=Limits(argument_bytes=1024, memory_mib=128))
    assert info.value.kind == "arguments"
    assert str(info.value) == "arguments too large: 2 KiB > 1 KiB"


def test_a_call_with_a_smaller_memory_limit_gets_a_worker_started_for_that_limit(sandbox):
    body = "return len('x' * (48 * 1024 * 1024))"
    assert run(sandbox, body) == 48 * 1024 * 1024  # fits in the pool's 128 MiB
    with pytest.raises(LimitExceeded) as info:
        run(sandbox, body, limits=Limits(cpu_seconds=0.5, wall_seconds=10, memory_mib=48))
    assert str(info.value) == "memory limit of 48 MiB exceeded"
    still_works(sandbox)


# ---------------------------------------------------------------------------------------------------
# BaseException and hostile results

BASE_EXCEPTIONS = [
    ("raise SystemExit", "SystemExit", ""),
    ("raise SystemExit(0)", "SystemExit", "0"),
    ("raise KeyboardInterrupt('stop')", "KeyboardInterrupt", "stop"),
    ("raise GeneratorExit", "GeneratorExit", ""),
    ("raise BaseException('base')", "BaseException", "base"),
    ("class E(BaseException):\n    pass\nraise E('mine')", "E", "mine"),
    ("class Quit(SystemExit):\n    pass\nraise Quit(1)", "Quit", "1"),
    ("raise StopIteration", "StopIteration", ""),
    ("def g():\n    yield 1\nx = g()\nnext(x)\nx.throw(SystemExit)", "SystemExit", ""),
]


@pytest.mark.parametrize(("body", "type_name", "message"), BASE_EXCEPTIONS, ids=[b.splitlines()[-1] for b, _, _ in BASE_EXCEPTIONS])
def test_base_exceptions_come_back_as_ordinary_errors(sandbox, body, type_name, message):
    exc = raised(sandbox, body)
    assert (exc.type_name, exc.message) == (type_name, message)
    still_works(sandbox)


NOT_JSON = [
    ("return {1, 2}", "result is not JSON: set"),
    ("return frozenset()", "result is not JSON: frozenset"),
    ("return float('nan')", "result is not JSON: float nan"),
    ("return [float('inf')]", "result is not JSON: float inf at result[0]"),
    ("return b'x'", "result is not JSON: bytes"),
    ("return {1: 'a'}", "result is not JSON: dict key 1 is a int, not a str"),
    ("return {'a': [1, {'b': {2}}]}", 'result is not JSON: set (convert it to a (sorted) list) at result["a"][1]["b"]'),
    ("return (i for i in [])", "result is not JSON: generator"),
    ("return t", "result is not JSON: function"),
    ("import decimal\nreturn decimal.Decimal('1.5')", "result is not JSON: Decimal"),
    ("import datetime\nreturn datetime.date(2024, 1, 1)", "result is not JSON: date (convert it with .isoformat())"),
    ("return 10**5000", "result is not JSON: Exceeds the limit (4300 digits)"),
    ("return '\\ud800'", "lone surrogate"),
    # a dict subclass whose items() and __eq__ were written by the tool: refused by type, never called
    ("class D(dict):\n    def items(self):\n        raise SystemExit\n    def __eq__(self, o):\n        return True\n"
     "return D(a=1)", "result is not JSON: D (a subclass of dict; return a plain dict)"),
    ("class L(list):\n    def __eq__(self, o):\n        return True\nreturn L([1])", "result is not JSON: L (a subclass of list"),
    ("class S(str):\n    def __eq__(self, o):\n        return True\nreturn {'k': S('v')}", "result is not JSON: S (a subclass of str"),
    ("class E:\n    def __eq__(self, o):\n        return True\nreturn E()",
     "result is not JSON: E (an object of a class defined in the code; return a dict instead)"),
    ("class K(str):\n    pass\nreturn {K('k'): 1}", "dict key 'k' is a K, not a str"),
]


@pytest.mark.parametrize(("body", "message"), NOT_JSON, ids=[m[:50] for _, m in NOT_JSON])
def test_results_that_are_not_exact_json_are_refused_inside_the_worker(sandbox, body, message):
    exc = raised(sandbox, body)
    assert exc.type_name == "TypeError"
    assert message in exc.message
    still_works(sandbox)


def test_results_are_converted_to_plain_json_types(sandbox):
    value = run(sandbox, "import collections\n"
                         "return {'t': (1, (2, 3)), 'c': collections.Counter('aab'), "
                         "'o': collections.OrderedDict(x=1), 'd': collections.deque([1, 2]), "
                         "'f': 0.5, 'b': True, 'n': None}")
    assert value == {"t": [1, [2, 3]], "c": {"a": 2, "b": 1}, "o": {"x": 1}, "d": [1, 2], "f": 0.5, "b": True,
                     "n": None}
    assert type(value["c"]) is dict and type(value["t"]) is list


# ---------------------------------------------------------------------------------------------------
# No state survives a call (solo: one worker, so every call below runs in the same process)

LEAKS = [
    ("def t(x, seen=[]):\n    seen.append(x)\n    return len(seen)\n", {"x": 1}, 1),
    ("count = 0\ndef t():\n    global count\n    count += 1\n    return count\n", {}, 1),
    ("cache = {}\ndef t():\n    cache[len(cache)] = 1\n    return len(cache)\n", {}, 1),
    ("class C:\n    n = 0\ndef t():\n    C.n = C.n + 1\n    return C.n\n", {}, 1),
    ("import functools\n@functools.lru_cache\ndef f(x):\n    return []\ndef t():\n    f(1).append(1)\n"
     "    return len(f(1))\n", {}, 1),
    ("import decimal\ndef t():\n    p = decimal.getcontext().prec\n    decimal.getcontext().prec = 3\n    return p\n",
     {}, 28),
    ("import random\ndef t():\n    random.seed(7)\n    return random.random()\n", {}, random.Random(7).random()),
]


@pytest.mark.parametrize(("source", "args", "expected"), LEAKS, ids=[s.splitlines()[-2].strip() for s, _, _ in LEAKS])
def test_nothing_a_call_changes_is_seen_by_the_next_call(solo, source, args, expected):
    name = "t"
    assert [solo.call(source, name, args).value for _ in range(3)] == [expected] * 3


def test_one_tool_cannot_change_what_another_tool_sees(solo):
    changer = "import decimal\ndef t():\n    decimal.getcontext().prec = 2\n    return 1\n"
    reader = "import decimal\ndef t():\n    return str(decimal.Decimal(1) / decimal.Decimal(3))\n"
    assert solo.call(changer, "t", {}).value == 1
    assert solo.call(reader, "t", {}).value == "0.3333333333333333333333333333"
    with pytest.raises(ToolRaised):
        solo.call("import math\ndef t():\n    math.pi = 3\n", "t", {})
    assert solo.call("import math\ndef t():\n    return math.pi\n", "t", {}).value == 3.141592653589793


def test_an_unseeded_random_differs_between_calls(solo):
    source = "import random\ndef t():\n    return random.getrandbits(64)\n"
    assert len({solo.call(source, "t", {}).value for _ in range(3)}) == 3


# ---------------------------------------------------------------------------------------------------
# Ordinary code keeps working

MODULE_USES = [
    ("import math\nreturn [math.sqrt(16), math.floor(2.5), math.gcd(12, 18), math.inf > 1e308]", [4.0, 2, 6, True]),
    ("import statistics\nreturn [statistics.mean([1, 2, 3]), statistics.median([3, 1, 2])]", [2, 2]),
    ("import json\nreturn json.loads(json.dumps({'a': [1, None]}, sort_keys=True))", {"a": [1, None]}),
    ("import re\nreturn [re.findall(r'\\d+', 'a1b22'), re.sub('a', 'b', 'aa'), bool(re.match('x', 'X', re.IGNORECASE))]",
     [["1", "22"], "bb", True]),
    ("import re\np = re.compile(r'(?P<k>\\w+)=(\\d)')\nm = p.search('x k=3')\nreturn [m.group('k'), m.groups(), p.pattern]",
     ["k", ["k", "3"], r"(?P<k>\w+)=(\d)"]),
    ("import datetime\nd = datetime.date(2024, 1, 31) + datetime.timedelta(days=1)\nreturn d.isoformat()", "2024-02-01"),
    ("from datetime import datetime\nreturn datetime.strptime('2024-02-29 10:30', '%Y-%m-%d %H:%M').isoformat()",
     "2024-02-29T10:30:00"),
    ("from datetime import datetime, timezone\nreturn datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp()", 1704067200.0),
    ("import itertools\nreturn [list(itertools.combinations('abc', 2)), list(itertools.islice(itertools.count(), 3))]",
     [[["a", "b"], ["a", "c"], ["b", "c"]], [0, 1, 2]]),
    ("from functools import reduce, partial, lru_cache, cmp_to_key\n"
     "@lru_cache(maxsize=None)\ndef fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
     "add = partial(lambda a, b: a + b, 10)\n"
     "return [reduce(lambda a, b: a * b, [1, 2, 3, 4]), fib(50), add(5), sorted([3, 1, 2], key=cmp_to_key(lambda a, b: b - a))]",
     [24, 12586269025, 15, [3, 2, 1]]),
    ("from collections import Counter, defaultdict, OrderedDict, deque\n"
     "c = Counter('abracadabra')\nd = defaultdict(list)\nd['k'].append(1)\nq = deque([1, 2])\nq.appendleft(0)\n"
     "o = OrderedDict()\no['z'] = 1\nreturn [c.most_common(1), dict(d), list(q), list(o)]",
     [[["a", 5]], {"k": [1]}, [0, 1, 2], ["z"]]),
    ("import string\nreturn [string.ascii_lowercase[:3], string.digits, string.capwords('hello world')]",
     ["abc", "0123456789", "Hello World"]),
    ("from decimal import Decimal, ROUND_HALF_UP, localcontext\nwith localcontext() as ctx:\n    ctx.prec = 5\n"
     "    x = Decimal(1) / Decimal(7)\nreturn [str(Decimal('0.1') + Decimal('0.2')), str(x), "
     "str(Decimal('2.5').quantize(Decimal('1'), rounding=ROUND_HALF_UP))]", ["0.3", "0.14286", "3"]),
    ("from fractions import Fraction\nreturn str(Fraction(1, 3) + Fraction(1, 6))", "1/2"),
    ("import random\nrandom.seed(42)\nr = random.Random(1)\nreturn [random.randint(1, 100), r.random()]",
     [random.Random(42).randint(1, 100), random.Random(1).random()]),
    ("import hashlib\nreturn [hashlib.sha256(b'abc').hexdigest()[:16], hashlib.md5('é'.encode()).hexdigest()[:8]]",
     ["ba7816bf8f01cfea", hashlib.md5("é".encode()).hexdigest()[:8]]),
    ("import base64\nreturn [base64.b64encode(b'hi').decode(), base64.b64decode('aGk=').decode()]", ["aGk=", "hi"]),
    ("import textwrap\nreturn [textwrap.wrap('aa bb cc', 5), textwrap.dedent('  x\\n  y'), textwrap.shorten('a b c d e', 5)]",
     [["aa bb", "cc"], "x\ny", "[...]"]),
    ("import unicodedata\nreturn [unicodedata.normalize('NFKD', 'é'), unicodedata.name('a'), unicodedata.category('1')]",
     ["e\u0301", "LATIN SMALL LETTER A", "Nd"]),
    ("import difflib\nreturn [round(difflib.SequenceMatcher(None, 'abc', 'abd').ratio(), 3), "
     "difflib.get_close_matches('appel', ['apple', 'ape'])]", [0.667, ["apple", "ape"]]),
    ("import difflib\nreturn list(difflib.unified_diff(['a'], ['b'], lineterm=''))", ["--- ", "+++ ", "@@ -1 +1 @@", "-a", "+b"]),
    ("import heapq\nh = []\nheapq.heappush(h, 3)\nheapq.heappush(h, 1)\nreturn [heapq.heappop(h), heapq.nsmallest(2, [5, 4, 6])]",
     [1, [4, 5]]),
    ("import bisect\nxs = [1, 3, 5]\nbisect.insort(xs, 4)\nreturn [bisect.bisect_left(xs, 3), xs]", [1, [1, 3, 4, 5]]),
    ("import html\nreturn [html.escape('<a href=\"x\">'), html.unescape('&lt;&amp;')]", ["&lt;a href=&quot;x&quot;&gt;", "<&"]),
    ("import urllib.parse\nu = urllib.parse.urlparse('https://ex.com:8080/p?q=1#f')\n"
     "return [u.netloc, u.port, urllib.parse.quote('a b/c'), urllib.parse.urlencode({'a': 1, 'b': 'x y'}), "
     "urllib.parse.parse_qs('a=1&a=2')]", ["ex.com:8080", 8080, "a%20b/c", "a=1&b=x+y", {"a": ["1", "2"]}]),
    ("from urllib.parse import unquote as uq\nfrom urllib import parse\nreturn [uq('%41'), parse.quote_plus('a b')]",
     ["A", "a+b"]),
    ("import math as m, json as j\nreturn j.dumps(m.pi)", "3.141592653589793"),
    ("import typing\nfrom typing import Optional\nreturn [typing.Any is not None, Optional[int] == typing.Union[int, None]]",
     [True, True]),
    # C code inside these imports _strptime, time and codecs lazily; the worker preloads them
    ("return ['é'.encode('utf-16-le').hex(), 'x'.encode('cp1252').decode('latin-1'), 'я'.encode('koi8_r').hex(), "
     "'é'.encode('utf-7').decode()]", ["e900", "x", "d1", "+AOk-"]),
    ("import datetime\nd = datetime.datetime(2024, 3, 1, 12)\nreturn [d.strftime('%Y-%m-%d %H:%M %a'), d.timetuple().tm_yday]",
     ["2024-03-01 12:00 Fri", 61]),
]


@pytest.mark.parametrize(("body", "expected"), MODULE_USES, ids=[b.split("\n")[0][:40] for b, _ in MODULE_USES])
def test_allowed_modules_work_for_ordinary_use(sandbox, body, expected):
    assert run(sandbox, body) == expected


def test_every_allowed_module_is_exercised_above():
    used = " ".join(b for b, _ in MODULE_USES)
    assert all(m in used for m in ALLOWED_MODULES)


LANGUAGE = [
    ("class P:\n    def __init__(self, x):\n        self.x = x\n        self.items = []\n"
     "    def add(self, y):\n        self.items.append(y)\n        self.total = self.x + y\n        return self\n"
     "p = P(1).add(2)\nsetattr(p, 'extra', 3)\ndelattr(p, 'extra')\nreturn [p.x, p.items, p.total, hasattr(p, 'extra')]",
     [1, [2], 3, False]),
    ("class A:\n    def hello(self):\n        return 'a'\nclass B(A):\n    def hello(self):\n        return super().hello() + 'b'\n"
     "return B().hello()", "ab"),
    ("class P:\n    def __init__(self, r):\n        self.r = r\n    @property\n    def area(self):\n        return self.r * 2\n"
     "    @staticmethod\n    def unit():\n        return P(1)\n    @classmethod\n    def make(cls, r):\n        return cls(r)\n"
     "    def __eq__(self, other):\n        return self.r == other.r\n    def __lt__(self, other):\n        return self.r < other.r\n"
     "return [P.make(3).area, P.unit().r, P(1) == P(1), [p.r for p in sorted([P(2), P(1)])]]", [6, 1, True, [1, 2]]),
    ("class ValidationError(ValueError):\n    pass\ntry:\n    raise ValidationError('bad')\nexcept ValueError as e:\n"
     "    return [str(e), isinstance(e, ValidationError), e.args]", ["bad", True, ["bad"]]),
    ("return [[x * x for x in range(4) if x % 2], {k: v for k, v in zip('ab', [1, 2])}, sorted({c for c in 'aab'}), "
     "sum(x for x in range(5))]", [[1, 9], {"a": 1, "b": 2}, ["a", "b"], 10]),
    ("def counter():\n    n = [0]\n    def inc():\n        n[0] += 1\n        return n[0]\n    return inc\n"
     "c = counter()\nc()\nreturn c()", 2),
    ("def gen(n):\n    for i in range(n):\n        yield i\n    yield from ['x']\nreturn list(gen(2))", [0, 1, "x"]),
    ("s = '  Hello, World  '\nreturn [s.strip().lower(), s.split(','), '-'.join(['a', 'b']), s.strip().replace('l', 'L'), "
     "'abc'.upper().startswith('AB'), 'x'.center(3, '*'), 'a1'.isalnum()]",
     ["hello, world", ["  Hello", " World  "], "a-b", "HeLLo, WorLd", True, "*x*", True]),
    ("x, y = 3.14159, 'w'\nreturn [f'{x:.2f}', f'{y!r:>5}', f'{x=:.1f}', '{:>4}|{k}'.format(1, k=2), '%s-%d' % ('a', 3), "
     "'{0[1]}'.format([5, 6])]", ["3.14", "  'w'", "x=3.1", "   1|2", "a-3", "6"]),
    ("a, (b, *c) = 1, (2, 3, 4)\nd = {**{'x': 1}, 'y': 2}\nargs = [1, 2]\ndef f(*p, **k):\n    return [p, k]\n"
     "n = 1\nn += 2\nn *= 3\nreturn [a, b, c, d, f(*args, **{'z': 3}), n]", [1, 2, [3, 4], {"x": 1, "y": 2}, [[1, 2], {"z": 3}], 9]),
    ("try:\n    1 / 0\nexcept ZeroDivisionError:\n    r = 'caught'\nfinally:\n    r += '!'\nreturn r", "caught!"),
    ("data = [{'n': 'b', 'v': 2}, {'n': 'a', 'v': 1}]\nreturn [d['n'] for d in sorted(data, key=lambda d: d['v'])]", ["a", "b"]),
    ("if (n := len('abc')) > 2:\n    return [n, list(reversed([1, 2])), list(enumerate('ab')), max([1, 3], default=0), "
     "divmod(7, 2), round(2.567, 2), abs(-1), min('b', 'a'), any([0, 1]), all([]), list(map(str, [1])), "
     "list(filter(None, [0, 1])), chr(65), ord('A'), hex(255), bin(3), oct(8), int('7'), float('1.5'), bool(0), "
     "isinstance(1, int), callable(len), list(iter([1])), next(iter([2])), tuple([1]), frozenset([1]) == {1}, "
     "pow(2, 10), pow(3, -1, 7), format(0.5, '.0%'), repr('x'), ascii('é'), bytes([65]).decode(), len(bytearray(2)), "
     "slice(1, 2).start, object() is not None, {1, 2} | {3} == {1, 2, 3}, {'a': 1} | {'b': 2}, 'abc'[::-1]]",
     [3, [2, 1], [[0, "a"], [1, "b"]], 3, [3, 1], 2.57, 1, "a", True, True, ["1"], [1], "A", 65, "0xff", "0b11",
      "0o10", 7, 1.5, False, True, True, [1], 2, [1], True, 1024, 5, "50%", "'x'", "'\\xe9'", "A", 2, 1, True, True,
      {"a": 1, "b": 2}, "cba"]),
    ("from typing import Any, Literal, Optional, Union, List, Dict\n"
     "def f(x: Optional[int], mode: Literal['a', 'b'] = 'a', extra: Union[str, None] = None) -> dict[str, Any]:\n"
     "    return {'x': x, 'mode': mode}\nitems: List[Dict[str, int]] = []\nreturn f(1)", {"x": 1, "mode": "a"}),
    ("print('hello', 42, sep='-')\nprint('more', end='')\nreturn printed", "hello-42\nmore"),
    # RestrictedPython refuses these two forms; the worker rewrites them first (see _Desugar)
    ("counts: dict[str, int] = {}\nfor w in 'a b a'.split():\n    counts[w] = counts.get(w, 0)\n    counts[w] += 1\n"
     "return counts", {"a": 2, "b": 1}),
    ("class Acc:\n    total: int = 0\n    label: str\n    def __init__(self):\n        self.n = 0\n        self.seen = {'k': [1]}\n"
     "    def add(self, v):\n        self.n += v\n        self.seen['k'] += [v]\n        return self\n"
     "a = Acc().add(2).add(3)\ngrid = [[0, 0]]\ngrid[0][1] = 5\nreturn [a.n, a.seen, Acc.total, grid]", [5, {"k": [1, 2, 3]}, 0, [[0, 5]]]),
]


@pytest.mark.parametrize(("body", "expected"), LANGUAGE, ids=[b.splitlines()[0][:40] for b, _ in LANGUAGE])
def test_ordinary_python_works(sandbox, body, expected):
    assert run(sandbox, body) == expected


def test_future_annotations_work(sandbox):
    source = "from __future__ import annotations\n\ndef t(x: int) -> list[Undefined]:\n    return [x]\n"
    assert sandbox.call(source, "t", {"x": 1}).value == [1]


def test_errors_carry_the_tool_line_and_what_was_printed(sandbox):
    source = "def t(x):\n    print('before')\n    return 10 / x\n"
    with pytest.raises(ToolRaised) as info:
        sandbox.call(source, "t", {"x": 0})
    exc = info.value
    assert str(exc) == "ZeroDivisionError: division by zero (line 3)"
    assert exc.printed == "before\n"


def test_print_output_is_returned_and_never_reaches_the_real_stdout(sandbox, capfd):
    outcome = sandbox.call("def t():\n    print('secret-marker-7431')\n    return 1\n", "t", {})
    assert outcome == CallOutcome(value=1, printed="secret-marker-7431\n")
    captured = capfd.readouterr()
    assert "secret-marker-7431" not in captured.out + captured.err


def test_print_to_a_file_object_is_refused(sandbox):
    exc = raised(sandbox, "print('x', file=[])")
    assert exc.type_name == "TypeError" and "print(file=...)" in exc.message


def test_calling_a_name_that_is_not_a_function_of_the_code_is_refused(sandbox):
    for name in ("missing", "math", "__metaclass__", "_getattr_", "sorted"):
        with pytest.raises(ToolRaised) as info:
            sandbox.call("import math\ndef t():\n    return 1\n", name, {})
        assert info.value.type_name == "NameError"


def test_wrong_arguments_are_a_type_error(sandbox):
    with pytest.raises(ToolRaised) as info:
        sandbox.call(OK_SOURCE, "ok", {"y": 1})
    assert info.value.type_name == "TypeError" and "unexpected keyword argument 'y'" in info.value.message


HOST_LEAKS = [sys.prefix, str(Path(sandbox_worker.__file__).parent), "cairn-worker", "Traceback", 'File "']
ERRORS = [
    "return 1 / 0",
    "import json\nreturn json.loads('{')",
    "import re\nreturn re.compile('(')",
    "import json\nreturn json.codecs",
    "return '{0.__globals__}'.format(t)",
    "return {1}",
    "raise SystemExit",
    "x = int('x')",
    "return 'abc'.encode('no-such-codec')",
    "return datetime.strptime('x', '%Y')",
]


@pytest.mark.parametrize("body", ERRORS)
def test_error_messages_carry_no_host_paths_or_tracebacks(sandbox, body):
    with pytest.raises(ToolFailed) as info:
        run(sandbox, body, prelude="from datetime import datetime")
    text = str(info.value)
    assert not [leak for leak in HOST_LEAKS if leak in text], text


# ---------------------------------------------------------------------------------------------------
# check() and run_snippet()

TOOL = "def div(a: int, b: int) -> float:\n    if b == 0:\n        raise ValueError('b must not be 0')\n    return a / b\n"


def test_check_passes_when_every_example_and_test_passes(sandbox):
    report = sandbox.check(
        TOOL, "div",
        [Example({"a": 1, "b": 3}, 0.3333333333333333), Example({"a": 1, "b": 10}, 0.1),
         Example({"a": 1, "b": 0}, raises="ValueError"), Example({"a": 1, "b": 0}, raises="Exception")],
        "def test_half():\n    assert div(1, 2) == 0.5\n\ndef helper():\n    return 1\n\ndef test_whole():\n    assert div(4, 2) == 2\n",
    )
    assert report.ok, report.failures
    assert [(c.kind, c.index, c.name) for c in report.cases] == [
        ("example", 0, "example[0]"), ("example", 1, "example[1]"), ("example", 2, "example[2]"),
        ("example", 3, "example[3]"), ("test", 0, "test_half"), ("test", 1, "test_whole")]
    assert report.summary() == "4/4 examples, 2/2 tests passed"


def test_check_compares_floats_with_isclose_and_keeps_bools_apart_from_numbers(sandbox):
    source = "def f(x):\n    return x\n"
    report = sandbox.check(source, "f", [Example({"x": 0.1 + 0.2}, 0.3), Example({"x": 1}, 1.0),
                                         Example({"x": True}, 1), Example({"x": [1, 2]}, [1, 2.0000000000001])])
    assert [c.ok for c in report.cases] == [True, True, False, True]


def test_check_explains_each_failure_so_an_agent_can_fix_it(sandbox):
    report = sandbox.check(
        TOOL, "div",
        [Example({"a": 6, "b": 2}, 4), Example({"a": 1, "b": 0}, 1), Example({"a": 1, "b": 1}, raises="ValueError"),
         Example({"a": 1, "b": 0}, raises="TypeError")],
        "def test_ok():\n    assert div(2, 1) == 2\n\ndef test_bad():\n    x = 1\n    assert div(1, 1) == 3, 'one'\n\n"
        "def test_raises():\n    div(1, 0)\n",
    )
    details = [c.detail for c in report.failures]
    assert details == [
        'example 0 ({"a": 6, "b": 2}): expected 4, got 3.0',
        'example 1 ({"a": 1, "b": 0}): expected 1, raised ValueError: b must not be 0 (line 3)',
        'example 2 ({"a": 1, "b": 1}): expected ValueError to be raised, got 1.0',
        'example 3 ({"a": 1, "b": 0}): expected TypeError, raised ValueError: b must not be 0 (line 3)',
        "test_bad: AssertionError: one (tests line 6: assert div(1, 1) == 3, 'one')",
        "test_raises: ValueError: b must not be 0 (line 3, called from tests line 9: div(1, 0))",
    ]
    assert report.summary() == "0/4 examples, 1/3 tests passed"


def test_check_reports_a_runaway_case_and_still_runs_the_others(sandbox):
    source = "def f(x):\n    while x:\n        pass\n    return 1\n"
    report = sandbox.check(source, "f", [Example({"x": 1}, 1), Example({"x": 0}, 1)],
                           "def test_loops():\n    f(1)\n\ndef test_fine():\n    assert f(0) == 1\n")
    assert [c.ok for c in report.cases] == [False, True, False, True]
    assert report.cases[0].detail == 'example 0 ({"x": 1}): cpu time limit of 0.5 s exceeded'
    assert report.cases[2].detail == "test_loops: cpu time limit of 0.5 s exceeded"


def test_check_runs_each_test_in_fresh_globals(sandbox):
    tests = "seen = []\n\ndef test_a():\n    seen.append(1)\n    assert len(seen) == 1\n\ndef test_b():\n    seen.append(1)\n    assert len(seen) == 1\n"
    assert sandbox.check(OK_SOURCE, "ok", [], tests).ok


def test_check_rejects_tool_and_tests_that_do_not_compile_with_every_problem(sandbox):
    with pytest.raises(SubmissionRejected) as info:
        sandbox.check("import os\ndef f():\n    return 1\n", "f", [Example({}, 1)], "def test_x():\n    assert f().__class__\n")
    assert info.value.problems == [
        "Line 1: import of 'os' is not allowed; allowed modules: " + ", ".join(ALLOWED_MODULES),
        'tests: Line 2: "__class__" is an invalid attribute name because it starts with "_".',
    ]


def test_check_rejects_tests_that_define_no_test_function(sandbox):
    with pytest.raises(SubmissionRejected) as info:
        sandbox.check(OK_SOURCE, "ok", [Example({"x": 1}, 2)], "def helper():\n    return 1\n")
    assert info.value.problems == ["tests: define at least one top-level function named test_... (none found)"]


def test_run_snippet_returns_printed_output_and_the_final_expression(sandbox):
    assert sandbox.run_snippet("import math\nx = [math.sqrt(9)]\nprint('x is', x)\nx + [1]") == SnippetResult(
        printed="x is [3.0]\n", result=[3.0, 1])


def test_run_snippet_without_a_final_expression_returns_none(sandbox):
    assert sandbox.run_snippet("x = 1\nprint(x)") == SnippetResult(printed="1\n", result=None)
    assert sandbox.run_snippet("print('only')") == SnippetResult(printed="only\n", result=None)


def test_run_snippet_errors_are_tool_errors_with_the_snippet_line(sandbox):
    with pytest.raises(ToolRaised) as info:
        sandbox.run_snippet("x = 1\nprint('a')\nx / 0")
    assert str(info.value) == "ZeroDivisionError: division by zero (line 3)"
    assert info.value.printed == "a\n"
    with pytest.raises(SubmissionRejected):
        sandbox.run_snippet("import os\nos.getcwd()")


# ---------------------------------------------------------------------------------------------------
# The process boundary


def _pids(box: Sandbox) -> set[int]:
    """The box's ready workers. (Reads the pool's own list: /proc alone cannot tell a ready worker from
    a replacement that is still starting, before its lock-down.)"""
    with box._cond:
        return {worker.pid for worker in box._live}


@pytest.fixture
def fresh():
    with Sandbox(SMALL, pool_size=2) as box:
        box.start()
        yield box


def _limits(pid: int) -> dict[str, tuple[str, str]]:
    rows = Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]
    return {row[:26].strip(): (row[26:47].strip(), row[47:68].strip()) for row in rows}


def test_platform_protections_reports_every_protection(sandbox):
    report = sandbox.platform_protections()
    for key in ("rlimit_cpu", "rlimit_as", "rlimit_fsize", "rlimit_nofile", "rlimit_core", "cpu_timer",
                "process_isolation", "wall_clock_timeout", "empty_environment", "no_network"):
        assert key in report
        assert isinstance(report[key], bool)
    assert report["rlimit_cpu"] and report["rlimit_fsize"] and report["rlimit_core"] and report["cpu_timer"]
    if LINUX:
        assert report["rlimit_as"] and report["rlimit_nofile"]


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_workers_run_with_rlimits_an_empty_environment_and_an_empty_cwd(fresh):
    pids = _pids(fresh)
    assert len(pids) == 2
    for pid in pids:
        limits = _limits(pid)
        assert limits["Max file size"] == ("0", "0")
        assert limits["Max core file size"] == ("0", "0")
        assert limits["Max open files"] == ("16", "16")
        assert limits["Max address space"] == (str(128 * 1024 * 1024),) * 2
        assert limits["Max cpu time"][0] != "unlimited"
        assert Path(f"/proc/{pid}/environ").read_bytes() == b""
        # an empty temp directory, already removed from /tmp by the server once the worker started
        cwd = os.readlink(f"/proc/{pid}/cwd")
        assert "/cairn-worker-" in cwd and cwd.endswith(" (deleted)")
        assert os.listdir(f"/proc/{pid}/cwd") == []
        assert os.getpgid(pid) == pid  # its own process group: killpg takes everything it started


@pytest.mark.skipif(not LINUX, reason="network namespaces are Linux-only")
def test_workers_have_no_network_when_the_platform_allows_a_namespace(fresh):
    report = fresh.platform_protections()
    mine = os.readlink("/proc/self/ns/net")
    for pid in _pids(fresh):
        assert (os.readlink(f"/proc/{pid}/ns/net") != mine) == report["no_network"]


@pytest.mark.skipif(not LINUX or os.geteuid() != 0, reason="only a root server makes workers drop root")
def test_workers_started_by_root_run_as_nobody(fresh):
    assert fresh.platform_protections()["not_root"]
    for pid in _pids(fresh):
        assert "Uid:\t65534\t65534\t65534\t65534" in Path(f"/proc/{pid}/status").read_text()


def test_workers_are_recycled_after_worker_max_calls():
    with Sandbox(SMALL, pool_size=1, worker_max_calls=3) as box:
        box.start()
        first = _pids(box)
        for _ in range(3):
            still_works(box)
        still_works(box)  # served by the replacement, which the pool waits for
        assert _pids(box) and _pids(box).isdisjoint(first)


def test_a_worker_that_hit_a_limit_is_replaced(fresh):
    before = _pids(fresh)
    with pytest.raises(LimitExceeded):
        run(fresh, "return 'x' * (2 * 1024 * 1024)")  # result too large: the worker is healthy but recycled
    still_works(fresh)
    still_works(fresh)
    assert len(before - _pids(fresh)) == 1


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_close_kills_every_worker_and_later_calls_fail_cleanly():
    box = Sandbox(SMALL, pool_size=2)
    box.start()
    still_works(box)
    pids = _pids(box)
    assert len(pids) == 2
    box.close()
    box.close()  # idempotent
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    with pytest.raises(SandboxUnavailable):
        still_works(box)


def test_calls_from_many_threads_are_all_answered_while_one_runs_away(sandbox):
    results: list[Any] = []
    errors: list[BaseException] = []
    runaway: list[BaseException] = []

    def caller(n: int) -> None:
        try:
            for i in range(10):
                results.append(sandbox.call(OK_SOURCE, "ok", {"x": n * 100 + i}).value)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def spinner() -> None:
        try:
            run(sandbox, "while True:\n    pass")
        except BaseException as exc:
            runaway.append(exc)

    threads = [threading.Thread(target=spinner)] + [threading.Thread(target=caller, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(results) == sorted(n * 100 + i + 1 for n in range(5) for i in range(10))
    assert len(runaway) == 1 and isinstance(runaway[0], LimitExceeded) and runaway[0].kind == "cpu"


def test_policy_version_and_allowed_modules_are_published():
    assert isinstance(POLICY_VERSION, int) and POLICY_VERSION >= 1
    assert "math" in ALLOWED_MODULES and "urllib.parse" in ALLOWED_MODULES and "os" not in ALLOWED_MODULES


# ---------------------------------------------------------------------------------------------------
# A long run of hostile calls

FAST = Limits(cpu_seconds=0.1, wall_seconds=2.0, memory_mib=128)
HOSTILE: list[tuple[str, type[BaseException]]] = [
    ("while True:\n    pass", LimitExceeded),
    ("return sum(range(10**10))", LimitExceeded),
    ("return len('x' * 10**10)", LimitExceeded),
    ("raise SystemExit", ToolRaised),
    ("raise KeyboardInterrupt", ToolRaised),
    ("class E(BaseException):\n    pass\nraise E", ToolRaised),
    ("def r():\n    return r()\nreturn r()", ToolRaised),
    ("return '{0.__class__}'.format(1)", ToolRaised),
    ("import json\nreturn json.codecs", ToolRaised),
    ("import math\nmath.pi = 3", ToolRaised),
    ("return {1}", ToolRaised),
    ("class D(dict):\n    def items(self):\n        return []\nreturn D(a=1)", ToolRaised),
    ("x = []\nfor i in range(150):\n    x = [x]\nreturn x", LimitExceeded),
    ("return 'x' * (2 * 1024 * 1024)", LimitExceeded),
    ("return type(1)", ToolRaised),
    ("import os", SubmissionRejected),
    ("return (1).__class__", SubmissionRejected),
    ("for i in range(10**6):\n    print(i)", LimitExceeded),
    ("t = ()\nfor i in range(10**6):\n    t = (t,)\nreturn hash(t)", LimitExceeded),
    ("return 1 / 0", ToolRaised),
]


def test_200_consecutive_hostile_calls_leave_the_sandbox_answering_correctly():
    with Sandbox(FAST, pool_size=2) as box:
        box.start()
        outcomes = collections.Counter()
        for i in range(200):
            body, expected = HOSTILE[i % len(HOSTILE)]
            with pytest.raises(expected):
                run(box, body)
            outcomes[expected.__name__] += 1
            if i % 10 == 9:
                still_works(box)
        assert sum(outcomes.values()) == 200
        still_works(box)
        assert box.call("def t(n):\n    return sum(i * i for i in range(n))\n", "t", {"n": 10}).value == 285
        assert len(_pids(box)) <= 2


# ---------------------------------------------------------------------------------------------------
# Compiling is a request of its own


def test_a_large_tool_compiles_outside_its_call_budget(sandbox):
    """A 60 KiB tool takes longer to compile than this call's CPU limit; compiling has its own budget."""
    lines = "".join(f"    y{i} = a.b.c.d.e.f.g.h\n" for i in range(2300))
    source = f"def big(a):\n    if a is None:\n        return 0\n{lines}    return 1\n"
    assert 60 * 1024 < len(source.encode()) < 64 * 1024
    tight = Limits(cpu_seconds=0.05, wall_seconds=10, memory_mib=128)
    assert sandbox.call(source, "big", {"a": None}, limits=tight).value == 0


def test_printed_lone_surrogates_do_not_break_the_reply(sandbox):
    outcome = sandbox.call("def t():\n    print('a\\ud800b')\n    return 1\n", "t", {})
    assert outcome == CallOutcome(value=1, printed="a\ufffdb\n")


def test_a_raises_example_does_not_pass_on_a_result_that_is_not_json(sandbox):
    report = sandbox.check("def f():\n    return {1}\n", "f", [Example({}, raises="TypeError")])
    assert not report.ok
    assert report.cases[0].detail == "example 0 ({}): expected TypeError, raised TypeError: result is not JSON: set " \
                                     "(convert it to a (sorted) list)"


@pytest.mark.skipif(not LINUX, reason="ru_maxrss inheritance across fork and exec is Linux behaviour")
def test_a_large_server_process_does_not_make_every_call_recycle_its_worker():
    """Linux hands a child its parent's peak RSS; a server past half the workers' memory limit (as one
    importing mcp with thousands of tools is) must still keep its warm workers between calls."""
    ballast = bytearray(SMALL.memory_mib * 1024 * 1024)  # touch it all, so the peak really grows
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    with Sandbox(SMALL, pool_size=1) as box:
        box.start()
        first = _pids(box)
        for _ in range(3):
            still_works(box)
        assert _pids(box) == first
    del ballast
