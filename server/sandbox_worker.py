"""Cairn's sandbox worker: the only place agent-written Python ever runs.

Started by ``server/sandbox.py`` as ``python -I server/sandbox_worker.py CONFIG_JSON`` with an empty
environment, a fresh empty temporary working directory and its own process group. It imports only the
standard library and RestrictedPython (never ``mcp`` or the ``server`` package, which ``-I`` keeps off
``sys.path`` anyway), locks itself down, says it is ready, then serves requests until its stdin closes.

Lock-down, in order, before any tool code runs:

1. The protocol pipes are duplicated to private descriptors; fds 0, 1 and 2, ``sys.stdin``,
   ``sys.stdout`` and ``sys.stderr`` are pointed at ``/dev/null``, so nothing can write into the protocol.
2. Linux: a new, empty network namespace (``unshare(CLONE_NEWNET)``, or ``CLONE_NEWUSER | CLONE_NEWNET``
   for an unprivileged user); ``PR_SET_NO_NEW_PRIVS``; and, when started as root, a switch to the
   ``nobody`` user (uid/gid 65534) so the hard limits below cannot be raised again.
3. rlimits: address space (``RLIMIT_AS``), CPU seconds (``RLIMIT_CPU``, a backstop re-armed per call),
   file size 0 (``RLIMIT_FSIZE``), a few open files (``RLIMIT_NOFILE``), no core files (``RLIMIT_CORE``)
   and no new processes (``RLIMIT_NPROC``, effective only for a non-root user).

Per request the CPU budget is an ``ITIMER_PROF`` timer whose signal, left at its default action, ends
the process even inside a long C call such as ``sum(range(10**10))``; the server reads the signal from
the exit status and reports the CPU limit. The wall-clock limit is the server's job.

Protocol: frames of a 4-byte big-endian length followed by UTF-8 JSON, requests on stdin, replies on
stdout. Requests (``op``): ``compile`` (problems of a tool, tests or snippet source), ``call`` (run one
function of a tool), ``test`` (run one ``test_*`` function of a tests source in the tool's globals) and
``snippet`` (run code once, return a final expression's value). Sources are cached compiled by the
sha256 the server sends; a request may leave the source out, and the worker answers ``need_source``
if it does not have it. Every run gets fresh globals, so nothing a tool does survives its call.

Replies carry only plain JSON: the value of a call is converted inside this process from exact
``dict``/``list``/``tuple``/``str``/``int``/``float``/``bool``/``None`` (finite floats, depth and size
capped), so no object made by tool code, and no method a tool overrode, ever reaches the server.

Two details that are easy to trip over: the worker runs as ``nobody`` when started by root, so anything
the offered functions import lazily must be imported before the lock-down (``_preload``); and C code
(``datetime.strptime``, ``strftime``, ``timetuple``) imports ``_strptime`` and ``time`` through the
*calling frame's* ``__import__``, which is the tool's hook, so the hook lets exactly those through.
"""

from __future__ import annotations

import ast
import copy
import json
import math
import operator
import os
import signal
import string
import sys
import types
from collections.abc import Callable
from typing import Any

try:  # POSIX only; the server refuses to start workers elsewhere.
    import resource
except ImportError:  # pragma: no cover
    resource = None  # type: ignore[assignment]

import _string  # the C helper behind str.format's field parsing, used by the guarded formatter

from RestrictedPython import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Guards import (
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    raise_,
    safe_builtins,
    safer_getattr,
)

# ---------------------------------------------------------------------------------------------------
# Constants shared with server/sandbox.py

PROTOCOL_VERSION = 1
TOOL_FILE = "<tool>"
TESTS_FILE = "<tests>"
SNIPPET_FILE = "<snippet>"
MAX_SOURCE_BYTES = 64 * 1024
"""Largest tool, tests or snippet source accepted (UTF-8 bytes)."""
MAX_NESTING = 100
"""Deepest syntax tree accepted (the standard library's deepest module is 33 levels)."""
MAX_RESULT_DEPTH = 100
"""Deepest nesting of lists and dicts in a result."""
MAX_ERROR_CHARS = 1000
"""Longest error message passed on to the agent."""
RECURSION_LIMIT = 1000
"""Python recursion limit while tool code runs; also bounds C-level recursion (3.11 shares the counter)."""
EXIT_OUT_OF_MEMORY = 3
"""Exit status when the worker could not even report a MemoryError."""
EXIT_PROTOCOL = 4
"""Exit status when the server sent something the worker cannot read."""

ALLOWED_MODULES: tuple[str, ...] = (
    "base64", "bisect", "collections", "datetime", "decimal", "difflib", "fractions", "functools",
    "hashlib", "heapq", "html", "itertools", "json", "math", "random", "re", "statistics", "string",
    "textwrap", "typing", "unicodedata", "urllib.parse",
)
"""Modules an ``import`` may name; each is handed out as a hand-written wrapper, never the real module."""

_PACKAGES = {"urllib": ("parse",)}  # parents that exist only to reach an allowed submodule
_C_INTERNAL_IMPORTS = frozenset({"_strptime", "time"})  # imported by offered C functions; preloaded

MiB = 1024 * 1024


def format_bytes(n: float) -> str:
    """``1 MiB``, ``3.2 MiB``, ``64 KiB``, ``500 bytes``."""
    for unit, size in (("MiB", MiB), ("KiB", 1024)):
        if n >= size:
            text = f"{n / size:.1f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
    return f"{int(n)} bytes"


def format_seconds(s: float) -> str:
    """``5.0 s``, ``0.5 s``, ``0.25 s``."""
    return f"{s:.1f} s" if round(s, 1) == s else f"{s:g} s"


# ---------------------------------------------------------------------------------------------------
# Per-call state. The worker runs one request at a time, so one module-level object is enough.


class _Call:
    """What the current call's guards share: its print buffer, the classes its code defined (which
    ``_write_`` lets it change), its ``random`` instance, and whether it touched the decimal context."""

    __slots__ = ("printed", "tool_classes", "random", "decimal_used")

    def __init__(self) -> None:
        self.printed: Printed | None = None
        self.tool_classes: set[type] = set()
        self.random: SandboxModule | None = None
        self.decimal_used = False


class Printed:
    """What ``print`` writes to: one capped buffer per call, shared by every function of the call.

    RestrictedPython turns ``print(...)`` into ``_print._call_print(...)`` with ``_print = _print_(...)``
    created per function; handing out the same collector makes ``printed`` the whole call's output.
    Past the cap, output is dropped and a note says so; the call itself goes on.
    """

    __slots__ = ("parts", "size", "cap", "truncated")

    def __init__(self, cap: int) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.cap = cap
        self.truncated = False

    def write(self, text: str) -> int:
        if self.truncated:
            return 0
        if type(text) is not str:
            raise TypeError("print() wrote something that is not a str")
        n = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        if self.size + n > self.cap:
            room = self.cap - self.size
            if room > 0:
                self.parts.append(text.encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore"))
            self.size = self.cap
            self.truncated = True
            return 0
        self.parts.append(text)
        self.size += n
        return n

    def flush(self) -> None:
        pass

    def _call_print(self, *objects: Any, **kwargs: Any) -> None:
        if kwargs.get("file") is not None:
            raise TypeError("print(file=...) is not available in the sandbox; print() output is captured")
        kwargs["file"] = self
        print(*objects, **kwargs)

    def __call__(self) -> str:
        """The value of the name ``printed``."""
        return "".join(self.parts)

    def text(self) -> str:
        """The captured output as valid text (lone surrogates become U+FFFD), with a truncation note."""
        out = "".join(self.parts)
        if not out.isascii():
            try:
                out.encode("utf-8")
            except UnicodeEncodeError:
                out = out.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        if self.truncated:
            out += f"\n[output truncated: more than {format_bytes(self.cap)} printed]"
        return out


_CALL = _Call()
_CALL.printed = Printed(64 * 1024)


def _print_(_getattr_: Any = None) -> Printed:
    return _CALL.printed  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------
# Guards: the hooks RestrictedPython's compiled code calls.


def _message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except BaseException:  # a message that cannot even be printed
        text = "(message could not be shown)"
    return _clip(_scrub(text))


def _clip(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


_HOST_PATHS: list[str] = []


def _scrub(text: str) -> str:
    """Defence in depth: no host path in an error message, whatever library produced it."""
    for path in _HOST_PATHS:
        if path and path in text:
            text = text.replace(path, "<host>")
    return text


def guarded_getattr(obj: Any, name: str, default: Any = raise_) -> Any:
    """``_getattr_``: RestrictedPython's ``safer_getattr`` (no ``_`` names, no frame, code or generator
    internals, no ``str.format`` or ``string.Formatter``), raising on a missing attribute, plus:

    * ``str.format``/``format_map`` answer with a formatter whose field lookups (``{0.x}``, ``{0[k]}``)
      go through these same guards, so ``"{0.__class__}".format(1)`` fails like ``(1).__class__``.
    * ``AttributeError.obj`` is refused: it hands out the object a failed lookup was made on, which
      may be an internal object the tool never had (RestrictedPython advisory GHSA-5rgv-jmjr-9j8r).
    * A failed lookup is re-raised as a fresh ``AttributeError`` without ``obj``.
    """
    if type(name) is not str:
        raise TypeError("attribute name must be a str")
    if isinstance(obj, str) and name in ("format", "format_map"):
        return _bound_format(obj) if name == "format" else _bound_format_map(obj)
    if name == "obj" and isinstance(obj, AttributeError):
        raise AttributeError("the 'obj' attribute of an AttributeError is not available in the sandbox")
    try:
        return safer_getattr(obj, name, default)
    except AttributeError as exc:
        raise AttributeError(_message(exc)) from None


class _GuardedFormatter(string.Formatter):
    """``str.format`` semantics with every ``.attr`` and ``[key]`` in a field name guarded."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        first, rest = _string.formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attr, key in rest:
            obj = guarded_getattr(obj, key) if is_attr else operator.getitem(obj, key)
        return obj, first


_FORMATTER = _GuardedFormatter()


def _bound_format(template: str) -> Callable[..., str]:
    def format(*args: Any, **kwargs: Any) -> str:  # noqa: A001 - mirrors str.format
        return _FORMATTER.vformat(template, args, kwargs)

    return format


def _bound_format_map(template: str) -> Callable[[Any], str]:
    def format_map(mapping: Any) -> str:
        return _FORMATTER.vformat(template, (), mapping)

    return format_map


class SandboxModule:
    """A module as a tool sees it: exactly the names offered, read-only, nothing behind it.

    Deliberately has no ``__name__``: CPython's ``from m import x`` falls back to
    ``sys.modules[m.__name__ + '.x']`` when ``x`` is missing, which would hand out real submodules
    such as ``json.decoder``.
    """

    def __init__(self, label: str, names: dict[str, Any]) -> None:
        object.__setattr__(self, "_sandbox_label", label)
        vars(self).update(names)

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError(f"module {self._sandbox_label!r} is read-only in the sandbox")

    def __delattr__(self, name: str) -> None:
        raise TypeError(f"module {self._sandbox_label!r} is read-only in the sandbox")

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"module {self._sandbox_label!r} has no attribute {name!r} in the sandbox")

    def __repr__(self) -> str:
        return f"<sandbox module {self._sandbox_label!r}>"


def offered(module: SandboxModule) -> list[str]:
    """The names a wrapper offers (a function, not a method: the wrapper's only public names are those)."""
    return sorted(k for k in vars(module) if not k.startswith("_"))


def _writable_types() -> frozenset[type]:
    import collections
    import decimal

    return frozenset({
        dict, list, set, bytearray,
        collections.Counter, collections.defaultdict, collections.OrderedDict, collections.deque,
        decimal.Context,  # getcontext().prec = 50; the context is reset for every call
    })


_WRITABLE: frozenset[type] = frozenset()


def guarded_write(ob: Any) -> Any:
    """``_write_``: item and attribute writes (``x[k] = v``, ``x.a = v``, ``del``) are allowed on dicts,
    lists, sets and the like, and on instances (and classes) the tool itself defined; everything else
    (module wrappers, functions, library classes, built-in objects) is refused. RestrictedPython
    already refuses ``_`` attribute names at compile time; ``setattr`` refuses them at run time."""
    t = type(ob)
    if t in _WRITABLE or t in _CALL.tool_classes:
        return ob
    if isinstance(ob, type) and ob in _CALL.tool_classes:
        return ob
    if t is SandboxModule:
        raise TypeError(f"module {ob._sandbox_label!r} is read-only in the sandbox")
    raise TypeError(
        f"cannot modify {_describe(ob)} in the sandbox; only dicts, lists, sets and objects of classes "
        "defined in the code can be changed"
    )


def _describe(ob: Any) -> str:
    if isinstance(ob, type):
        return f"class {ob.__name__!r}"
    return f"a {type(ob).__name__!r} object"


def guarded_setattr(ob: Any, name: str, value: Any) -> None:
    if type(name) is not str:
        raise TypeError("attribute name must be a str")
    if name.startswith("_"):
        raise AttributeError(f'"{name}" is an invalid attribute name because it starts with "_"')
    setattr(guarded_write(ob), name, value)


def guarded_delattr(ob: Any, name: str) -> None:
    if type(name) is not str:
        raise TypeError("attribute name must be a str")
    if name.startswith("_"):
        raise AttributeError(f'"{name}" is an invalid attribute name because it starts with "_"')
    delattr(guarded_write(ob), name)


def guarded_hasattr(ob: Any, name: str) -> bool:
    """Only a yes or no leaves; the attribute itself never does."""
    if type(name) is not str:
        raise TypeError("attribute name must be a str")
    return hasattr(ob, name)


_INPLACE = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "<<=": operator.ilshift,
    ">>=": operator.irshift, "&=": operator.iand, "|=": operator.ior, "^=": operator.ixor,
    "@=": operator.imatmul,
}


def guarded_inplacevar(op: str, x: Any, y: Any) -> Any:
    """``_inplacevar_``: ``n += 1`` on names (RestrictedPython refuses it on attributes and items)."""
    return _INPLACE[op](x, y)


def guarded_apply(f: Any, *args: Any, **kwargs: Any) -> Any:
    """``_apply_``: calls with ``*args`` or ``**kwargs``."""
    return f(*args, **kwargs)


def tool_class(name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> type:
    """``__metaclass__``: RestrictedPython rewrites every ``class`` statement to use it. Builds the class
    with the metaclass its bases call for and records it as defined by this call's code, which is what
    lets ``self.x = 1`` through ``_write_``."""
    meta: type = type
    for base in bases:
        bmeta = type(base)
        if issubclass(bmeta, meta):
            meta = bmeta
    cls = meta(name, bases, namespace, **kwargs)
    _CALL.tool_classes.add(cls)
    return cls


def _import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
    """``__import__`` for tool code: wrappers only. The compile step already reported any import outside
    the allow-list; this is the run-time half of the same rule."""
    if level != 0:
        raise ImportError("relative imports are not allowed in the sandbox")
    if name in _C_INTERNAL_IMPORTS:
        # C code imports through the calling frame's __import__ (datetime.strptime -> _strptime) and then
        # reads sys.modules itself; tool code cannot name these ("_" names do not compile)
        return None
    if name == "__future__":
        return _FUTURE
    if name == "random":
        module = _random_module()
    elif name == "decimal":
        _CALL.decimal_used = True
        _DECIMAL_RESET()
        module = _MODULES["decimal"]
    elif name in _MODULES:
        module = _MODULES[name]
    elif name in _PACKAGES and fromlist:
        module = _MODULES[name]
    else:
        raise ImportError(f"import of {name!r} is not allowed; allowed modules: {', '.join(ALLOWED_MODULES)}")
    if fromlist:
        for item in fromlist:
            if type(item) is not str or item.startswith("_") or item not in vars(module):
                raise ImportError(f"cannot import name {item!r} from {name!r} in the sandbox")
        return module
    top = name.partition(".")[0]
    return _MODULES[top] if top != name else module


# ---------------------------------------------------------------------------------------------------
# Module wrappers: exactly the names offered. Never a real module, never a mutable shared object.


def _pick(module: Any, names: str) -> dict[str, Any]:
    return {n: getattr(module, n) for n in names.split()}


_MODULES: dict[str, SandboxModule] = {}
_FUTURE: SandboxModule
_DECIMAL_RESET: Callable[[], None] = lambda: None  # noqa: E731
_RANDOM_NAMES = (
    "betavariate choice choices expovariate gammavariate gauss getrandbits lognormvariate normalvariate "
    "paretovariate randbytes randint random randrange sample seed shuffle triangular uniform "
    "vonmisesvariate weibullvariate"
)


def _random_module() -> SandboxModule:
    """A fresh ``random.Random`` per call, seeded from the OS unless the tool seeds it."""
    if _CALL.random is None:
        import random

        rng = random.Random()
        names = {n: getattr(rng, n) for n in _RANDOM_NAMES.split()}
        names["Random"] = random.Random
        _CALL.random = SandboxModule("random", names)
    return _CALL.random


def build_modules() -> dict[str, SandboxModule]:
    """Import the allowed standard modules and build their wrappers (idempotent)."""
    global _FUTURE, _DECIMAL_RESET, _WRITABLE
    if _MODULES:
        return _MODULES
    import __future__
    import _strptime  # noqa: F401 - datetime.strptime imports it through the tool's __import__
    import time  # noqa: F401 - so do datetime.strftime and timetuple
    import base64
    import bisect
    import collections
    import datetime
    import decimal
    import difflib
    import fractions
    import functools
    import hashlib as _hashlib
    import heapq
    import html
    import itertools
    import json as _json
    import random  # noqa: F401 - imported here so per-call wrappers never import
    import re
    import statistics
    import textwrap
    import typing
    import unicodedata
    import urllib.parse

    m: dict[str, dict[str, Any]] = {
        "math": {n: getattr(math, n) for n in dir(math) if not n.startswith("_")},
        "statistics": _pick(
            statistics,
            "mean fmean geometric_mean harmonic_mean median median_low median_high median_grouped mode "
            "multimode quantiles pstdev pvariance stdev variance correlation covariance linear_regression "
            "NormalDist StatisticsError",
        ),
        "json": _pick(_json, "loads dumps JSONDecodeError"),
        "re": {
            **_pick(re, "compile match search fullmatch findall finditer sub subn split escape error"),
            # plain ints, so the RegexFlag enum class is not reachable through them
            **{n: int(getattr(re, n)) for n in "A ASCII I IGNORECASE M MULTILINE S DOTALL X VERBOSE U UNICODE NOFLAG".split()},
        },
        "datetime": _pick(datetime, "date datetime time timedelta timezone tzinfo MINYEAR MAXYEAR"),
        "itertools": {n: getattr(itertools, n) for n in dir(itertools) if not n.startswith("_")},
        "functools": _pick(functools, "reduce partial lru_cache cache cmp_to_key"),
        "collections": _pick(collections, "Counter defaultdict OrderedDict deque"),
        "string": _pick(
            string,
            "ascii_letters ascii_lowercase ascii_uppercase digits hexdigits octdigits punctuation "
            "printable whitespace capwords",
        ),
        "decimal": {
            **_pick(
                decimal,
                "Decimal Context localcontext getcontext setcontext DecimalException Clamped DivisionByZero "
                "Inexact InvalidOperation Overflow Rounded Subnormal Underflow FloatOperation MAX_PREC MAX_EMAX "
                "MIN_EMIN MIN_ETINY",
            ),
            **{n: getattr(decimal, n) for n in dir(decimal) if n.startswith("ROUND_")},
        },
        "fractions": _pick(fractions, "Fraction"),
        "hashlib": {
            **_pick(
                _hashlib,
                "md5 sha1 sha224 sha256 sha384 sha512 sha3_224 sha3_256 sha3_384 sha3_512 blake2b blake2s "
                "shake_128 shake_256 new pbkdf2_hmac",
            ),
            "algorithms_guaranteed": frozenset(_hashlib.algorithms_guaranteed),
            "algorithms_available": frozenset(_hashlib.algorithms_available),
        },
        "base64": _pick(
            base64,
            "b64encode b64decode standard_b64encode standard_b64decode urlsafe_b64encode urlsafe_b64decode "
            "b32encode b32decode b32hexencode b32hexdecode b16encode b16decode a85encode a85decode "
            "b85encode b85decode",
        ),
        # functions only: the TextWrapper class carries a mutable class-level dict
        "textwrap": _pick(textwrap, "wrap fill dedent indent shorten"),
        "unicodedata": _pick(
            unicodedata,
            "lookup name decimal digit numeric category bidirectional combining east_asian_width mirrored "
            "decomposition normalize is_normalized unidata_version",
        ),
        "difflib": _pick(
            difflib,
            "SequenceMatcher Differ get_close_matches ndiff unified_diff context_diff restore "
            "IS_CHARACTER_JUNK IS_LINE_JUNK",
        ),
        "heapq": _pick(heapq, "heappush heappop heapify heapreplace heappushpop merge nlargest nsmallest"),
        "bisect": _pick(bisect, "bisect bisect_left bisect_right insort insort_left insort_right"),
        "html": _pick(html, "escape unescape"),
        "urllib.parse": _pick(
            urllib.parse,
            "quote quote_plus unquote unquote_plus urlencode urlparse urlunparse urlsplit urlunsplit "
            "urljoin urldefrag parse_qs parse_qsl",
        ),
        # for annotations; abc-based names (Iterable, Mapping, ...) are left out: their .register()
        # would change isinstance() for every later call in the worker
        "typing": _pick(typing, "Any Literal Optional Union List Dict Tuple Set FrozenSet"),
    }
    # random is built per call (_random_module); an entry here keeps the allow-list checks uniform
    m["random"] = {n: None for n in _RANDOM_NAMES.split()} | {"Random": random.Random}
    for name, names in m.items():
        _MODULES[name] = SandboxModule(name, names)
    _MODULES["urllib"] = SandboxModule("urllib", {"parse": _MODULES["urllib.parse"]})
    assert set(ALLOWED_MODULES) == set(m), "ALLOWED_MODULES and the wrappers disagree"
    _FUTURE = SandboxModule("__future__", {n: getattr(__future__, n) for n in __future__.all_feature_names})

    def reset_decimal() -> None:
        decimal.setcontext(decimal.Context())

    _DECIMAL_RESET = reset_decimal
    _WRITABLE = _writable_types()
    return _MODULES


# ---------------------------------------------------------------------------------------------------
# Builtins


_OFFERED_BUILTINS = (
    "sorted min max sum enumerate zip dict list tuple set frozenset any all map filter reversed iter next "
    "range len abs round divmod pow str int float bool complex chr ord hex bin oct hash repr ascii format "
    "isinstance issubclass callable slice object super property staticmethod classmethod bytes bytearray "
    "id NotImplemented Ellipsis RecursionError TimeoutError ModuleNotFoundError StopIteration"
)
_REFUSED_BUILTINS = frozenset(
    "type getattr vars dir globals locals open eval exec compile __import__ breakpoint input memoryview "
    "help copyright credits license exit quit print".split()
)


def build_builtins() -> dict[str, Any]:
    """RestrictedPython's ``safe_builtins`` plus what LLM-written code needs, minus anything that
    reaches the interpreter. ``setattr``/``delattr``/``hasattr`` are guarded versions."""
    import builtins

    out = {k: v for k, v in safe_builtins.items() if not k.startswith("_") or k == "__build_class__"}
    for name in _OFFERED_BUILTINS.split():
        out[name] = getattr(builtins, name)
    out["setattr"] = guarded_setattr
    out["delattr"] = guarded_delattr
    out["hasattr"] = guarded_hasattr
    out["__import__"] = _import  # reachable only through import statements: "_" names do not compile
    leaked = _REFUSED_BUILTINS & out.keys() - {"__import__"}
    assert not leaked, f"refused builtins offered: {leaked}"
    return out


# ---------------------------------------------------------------------------------------------------
# Compiling


class Compiled:
    """A source compiled once: the code object(s) and, for tests, the ``test_*`` names in order."""

    __slots__ = ("code", "final", "tests", "size")

    def __init__(self, code: types.CodeType, final: types.CodeType | None, tests: list[str], size: int) -> None:
        self.code = code
        self.final = final
        self.tests = tests
        self.size = size


def _line_of(problem: str) -> int:
    if problem.startswith("Line "):
        head = problem[5:].split(":", 1)[0]
        if head.isdigit():
            return int(head)
    return 0


def _depth_problem(tree: ast.AST) -> str | None:
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            line = getattr(node, "lineno", 1)
            return (
                f"Line {line}: the code is nested too deeply (more than {MAX_NESTING} levels); "
                "split long expressions into smaller steps"
            )
        for child in ast.iter_child_nodes(node):
            stack.append((child, depth + 1))
    return None


def _import_problems(tree: ast.AST) -> list[str]:
    problems = []
    allowed = ", ".join(ALLOWED_MODULES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in _MODULES or alias.name in _PACKAGES:
                    problems.append(
                        f"Line {node.lineno}: import of {alias.name!r} is not allowed; allowed modules: {allowed}"
                    )
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                problems.append(f"Line {node.lineno}: relative imports are not allowed")
                continue
            module_name = node.module or ""
            if module_name == "__future__":
                module: SandboxModule | None = _FUTURE
            else:
                module = _MODULES.get(module_name)
            if module is None:
                problems.append(
                    f"Line {node.lineno}: import of {module_name!r} is not allowed; allowed modules: {allowed}"
                )
                continue
            for alias in node.names:
                if alias.name == "*" or alias.name.startswith("_"):
                    continue  # RestrictedPython reports these itself
                if alias.name not in vars(module):
                    problems.append(
                        f"Line {node.lineno}: cannot import {alias.name!r} from {module_name!r}: not available "
                        f"in the sandbox; it offers: {', '.join(offered(module))}"
                    )
    return problems


class _Desugar(ast.NodeTransformer):
    """Rewrites two common forms RestrictedPython refuses into forms it checks like any other code.
    Nothing is added that the agent could not have written itself:

    * ``x: T = v`` becomes ``x = v`` and a bare ``x: T`` disappears (annotations are never evaluated);
    * ``a.b += v`` and ``a[k] += v``, when ``a`` is a name (or ``a.b[k]``) and ``k`` a name or constant,
      become ``a.b = a.b + v``: evaluating those parts twice is unobservable. (Unlike ``+=`` on a list,
      the result is a new object.) Other targets keep RestrictedPython's error, with a hint.
    """

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is None:
            return ast.copy_location(ast.Pass(), node)
        return ast.copy_location(ast.Assign(targets=[node.target], value=self.visit(node.value)), node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        target = node.target
        if isinstance(target, (ast.Attribute, ast.Subscript)) and _simple_target(target):
            load = _loaded(target)
            value = ast.copy_location(ast.BinOp(left=load, op=node.op, right=node.value), node)
            return ast.fix_missing_locations(ast.copy_location(ast.Assign(targets=[target], value=value), node))
        return node


def _plain_ref(node: ast.AST) -> bool:
    """A name, or an attribute of a name (``self.items``)."""
    return isinstance(node, ast.Name) or (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name))


def _plain_key(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) or _plain_ref(node):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return isinstance(node.operand, ast.Constant)
    if isinstance(node, ast.Tuple):
        return all(_plain_key(e) for e in node.elts)
    return False


def _simple_target(target: ast.Attribute | ast.Subscript) -> bool:
    if isinstance(target, ast.Attribute):
        return isinstance(target.value, ast.Name)
    return _plain_ref(target.value) and _plain_key(target.slice)


def _loaded(target: ast.AST) -> ast.AST:
    load = copy.deepcopy(target)
    load.ctx = ast.Load()  # type: ignore[attr-defined]
    return load


_HINTS_FOR_PROBLEMS = {
    "Augmented assignment of attributes is not allowed.":
        " Write obj.attr = obj.attr + value instead.",
    "Augmented assignment of object items and slices is not allowed.":
        " Write x[k] = x[k] + value instead.",
}


def _with_hint(problem: str) -> str:
    for text, hint in _HINTS_FOR_PROBLEMS.items():
        if problem.endswith(text):
            return problem + hint
    return problem


def _syntax_problem(exc: SyntaxError) -> str:
    problem = f"Line {exc.lineno or 1}: {type(exc).__name__}: {exc.msg}"
    text = exc.text.strip() if exc.text else ""
    if text:
        problem += f" at statement: {_clip(text, 120)!r}"
    return problem


def compile_source(source: str, filename: str, *, final_expression: bool = False) -> tuple[Compiled | None, list[str]]:
    """Compile restricted code; every problem at once as ``Line N: ...``, never an exception.

    ``final_expression`` (snippets): a last expression statement is compiled apart, so its value can be
    returned. Test sources also report their top-level ``def test_*`` names.
    """
    if type(source) is not str:
        return None, ["Line 1: the source must be a str"]
    try:
        size = len(source.encode("utf-8"))
    except UnicodeEncodeError as exc:
        line = source.count("\n", 0, exc.start) + 1
        bad = ascii(source[exc.start])
        return None, [f"Line {line}: the source contains a lone surrogate character ({bad}), which is not valid text"]
    if size > MAX_SOURCE_BYTES:
        return None, [
            f"Line 1: the source is {format_bytes(size)}, more than the {format_bytes(MAX_SOURCE_BYTES)} limit"
        ]
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as exc:
        return None, [_syntax_problem(exc)]
    except (RecursionError, MemoryError):
        return None, [
            f"Line 1: the code is nested too deeply to parse (more than {MAX_NESTING} levels); "
            "split long expressions into smaller steps"
        ]
    except ValueError as exc:  # e.g. null bytes
        return None, [f"Line 1: the source cannot be parsed: {_message(exc)}"]
    deep = _depth_problem(tree)
    if deep:
        return None, [deep]
    try:
        tree = ast.fix_missing_locations(_Desugar().visit(tree))
    except (RecursionError, MemoryError):
        return None, ["Line 1: the code is too complex to compile"]
    problems = _import_problems(tree)
    tests = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    ] if filename == TESTS_FILE else []
    final_tree = None
    if final_expression and tree.body and isinstance(tree.body[-1], ast.Expr):
        final_tree = ast.Expression(body=tree.body.pop().value)
    code = final = None
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, 20 * MAX_NESTING + 200))  # RestrictedPython's visitor recurses
    try:
        result = compile_restricted_exec(tree, filename)
        problems.extend(_with_hint(p) for p in result.errors)
        code = result.code
        if final_tree is not None:
            result = compile_restricted_eval(final_tree, filename)
            problems.extend(result.errors)
            final = result.code
    except SyntaxError as exc:  # raised by compile() itself, e.g. 'return' outside function
        problems.append(_syntax_problem(exc))
    except (RecursionError, MemoryError):
        problems.append(
            f"Line 1: the code is too complex to compile (nested more than {MAX_NESTING} levels or too large)"
        )
    except Exception as exc:  # anything else compile() may raise is still a problem, never a crash
        problems.append(f"Line 1: the code cannot be compiled: {type(exc).__name__}: {_message(exc)}")
    finally:
        sys.setrecursionlimit(old_limit)
    if problems or code is None:
        unique = list(dict.fromkeys(problems)) or ["Line 1: the code cannot be compiled"]
        return None, sorted(unique, key=_line_of)
    return Compiled(code, final, tests, size), []


# ---------------------------------------------------------------------------------------------------
# Results: exact JSON types only, converted here so nothing made by tool code leaves the worker.


class NotJSON(Exception):
    def __init__(self, message: str, path: list[Any] | None = None) -> None:
        self.message = message
        self.path = path or []
        super().__init__(message)

    def text(self) -> str:
        if not self.path or self.message.startswith("result too deeply nested"):
            return self.message
        steps = [f"[{_clip(json.dumps(p, ensure_ascii=False), 40)}]" for p in reversed(self.path)]
        where = "".join(steps) if len(steps) <= 12 else "".join(steps[:12]) + "..."
        return f"{self.message} at result{where}"


_LEAF = frozenset({str, int, bool, type(None)})
_HINTS = {
    "set": "convert it to a (sorted) list",
    "frozenset": "convert it to a (sorted) list",
    "bytes": "decode it to str or encode it with base64",
    "bytearray": "decode it to str or encode it with base64",
    "Decimal": "convert it with str() or float()",
    "Fraction": "convert it with str() or float()",
    "datetime": "convert it with .isoformat()",
    "date": "convert it with .isoformat()",
    "time": "convert it with .isoformat()",
    "timedelta": "convert it with .total_seconds()",
    "generator": "convert it with list()",
    "map": "convert it with list()",
    "filter": "convert it with list()",
    "zip": "convert it with list()",
    "range": "convert it with list()",
    "complex": "return its .real and .imag",
}


def _not_json(value: Any) -> NotJSON:
    t = type(value)
    name = t.__name__
    hint = _HINTS.get(name)
    for base, kind in ((dict, "dict"), (list, "list"), (str, "str"), (int, "int"), (float, "float"), (tuple, "tuple")):
        if isinstance(value, base) and t is not base:
            hint = f"a subclass of {kind}; return a plain {kind}"
            break
    if hint is None and t in _CALL.tool_classes:
        hint = "an object of a class defined in the code; return a dict instead"
    return NotJSON(f"result is not JSON: {name}" + (f" ({hint})" if hint else ""))


def _check_json(value: Any, depth: int, mappings: frozenset[type], sequences: frozenset[type]) -> None:
    """Raise NotJSON unless ``value`` is made only of exact JSON types. Never calls a method that tool
    code could have overridden: only ``type()``, C-level iteration of exact containers, ``dict.items``."""
    t = type(value)
    if t in _LEAF:
        return
    if t is float:
        if not math.isfinite(value):
            raise NotJSON(f"result is not JSON: float {value!r}")
        return
    if depth >= MAX_RESULT_DEPTH:
        raise NotJSON(f"result too deeply nested (> {MAX_RESULT_DEPTH} levels)")
    if t in sequences:
        for i, item in enumerate(value):
            if type(item) in _LEAF:
                continue
            try:
                _check_json(item, depth + 1, mappings, sequences)
            except NotJSON as exc:
                exc.path.append(i)
                raise
        return
    if t in mappings:
        for key, item in dict.items(value):
            if type(key) is not str:
                raise NotJSON(
                    f"result is not JSON: dict key {_clip(repr(key), 80)} is a {type(key).__name__}, not a str"
                )
            if type(item) in _LEAF:
                continue
            try:
                _check_json(item, depth + 1, mappings, sequences)
            except NotJSON as exc:
                exc.path.append(key)
                raise
        return
    raise _not_json(value)


_MAPPINGS: frozenset[type] = frozenset({dict})
_SEQUENCES: frozenset[type] = frozenset({list, tuple})


def _json_default(value: Any) -> Any:
    import collections

    if type(value) is collections.deque:
        return list(value)
    raise _not_json(value)


def to_json(value: Any, result_bytes: int) -> str:
    """The JSON text of a tool's result, or NotJSON / ResultTooLarge."""
    global _MAPPINGS, _SEQUENCES
    if len(_MAPPINGS) == 1:
        import collections

        _MAPPINGS = frozenset({dict, collections.Counter, collections.OrderedDict, collections.defaultdict})
        _SEQUENCES = frozenset({list, tuple, collections.deque})
    _check_json(value, 0, _MAPPINGS, _SEQUENCES)
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, check_circular=False,
                          separators=(",", ":"), default=_json_default)
    except ValueError as exc:  # only int -> str conversion can fail after the check
        raise NotJSON(f"result is not JSON: {_message(exc)}") from None
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    if size > result_bytes:
        raise ResultTooLarge(f"output too large: {format_bytes(size)} > {format_bytes(result_bytes)}")
    return text


class ResultTooLarge(Exception):
    pass


# ---------------------------------------------------------------------------------------------------
# Running


_CODE_FILES = frozenset({TOOL_FILE, TESTS_FILE, SNIPPET_FILE})


def describe_exception(exc: BaseException) -> dict[str, Any]:
    """Type, message, the innermost line of agent code, and the type names the error matches."""
    line = where = tests_line = None
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename in _CODE_FILES:
            line, where = tb.tb_lineno, filename
            if filename == TESTS_FILE:
                tests_line = tb.tb_lineno
        tb = tb.tb_next
    names = [c.__name__ for c in type(exc).__mro__ if c is not object]
    return {
        "kind": "raised",
        "type": type(exc).__name__,
        "message": _message(exc),
        "line": line,
        "where": {TOOL_FILE: "tool", TESTS_FILE: "tests", SNIPPET_FILE: "snippet"}.get(where or ""),
        "tests_line": tests_line,
        "names": names,
    }


class Runtime:
    """Compile cache plus fresh guarded globals per run. Used by the worker loop, and in-process by the
    benchmark (trusted code running fixed functions) to measure RestrictedPython without a process."""

    def __init__(self, cache_bytes: int = 8 * MiB) -> None:
        build_modules()
        self.builtins = build_builtins()
        self.base = {
            "__name__": "tool",
            "__metaclass__": tool_class,
            "_getattr_": guarded_getattr,
            "_getitem_": operator.getitem,
            "_getiter_": iter,
            "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
            "_unpack_sequence_": guarded_unpack_sequence,
            "_write_": guarded_write,
            "_inplacevar_": guarded_inplacevar,
            "_apply_": guarded_apply,
            "_print_": _print_,
        }
        self.cache: dict[tuple[str, str], Compiled] = {}
        self.cache_bytes = cache_bytes
        self.cached_bytes = 0

    # -- compile cache ------------------------------------------------------------------------------

    def compiled(self, sha: str, source: str | None, filename: str) -> tuple[Compiled | None, list[str]]:
        """From the cache (LRU by total source size) or compiled now. ``(None, [])`` means: unknown
        sha and no source sent."""
        key = (sha, filename)
        entry = self.cache.pop(key, None)
        if entry is None:
            if source is None:
                return None, []
            entry, problems = compile_source(source, filename, final_expression=filename == SNIPPET_FILE)
            if entry is None:
                return None, problems
            self.cached_bytes += entry.size
            while self.cached_bytes > self.cache_bytes and self.cache:
                old = self.cache.pop(next(iter(self.cache)))
                self.cached_bytes -= old.size
        self.cache[key] = entry  # most recently used last
        return entry, []

    # -- one run ------------------------------------------------------------------------------------

    def begin(self, output_bytes: int) -> dict[str, Any]:
        """Fresh per-call state and fresh globals (builtins copied too: nothing is shared)."""
        call = _CALL
        call.printed = Printed(output_bytes)
        call.tool_classes = set()
        call.random = None
        glb = self.base.copy()
        glb["__builtins__"] = self.builtins.copy()
        return glb

    def end(self, glb: dict[str, Any]) -> None:
        """Break the function <-> globals cycles now, and undo what the call changed."""
        glb.clear()
        _CALL.tool_classes = set()
        _CALL.random = None
        if _CALL.decimal_used:
            _CALL.decimal_used = False
            _DECIMAL_RESET()

    def function(self, glb: dict[str, Any], name: str, filename: str) -> Callable[..., Any]:
        fn = glb.get(name) if name.isidentifier() and not name.startswith("_") else None
        if type(fn) is not types.FunctionType or fn.__code__.co_filename != filename:
            what = "tests define" if filename == TESTS_FILE else "code defines"
            raise NameError(f"the {what} no function named {name!r}")
        return fn

    def call(self, compiled: Compiled, function: str, args: dict[str, Any], output_bytes: int = 64 * 1024) -> Any:
        """Exec the tool in fresh globals and call ``function(**args)``; returns the raw value. (The
        benchmark's in-process baseline; the worker uses ``run`` below.)"""
        glb = self.begin(output_bytes)
        try:
            exec(compiled.code, glb)
            return self.function(glb, function, TOOL_FILE)(**args)
        finally:
            self.end(glb)


# ---------------------------------------------------------------------------------------------------
# The worker process


def _peak_rss() -> int:
    """Peak resident set size in bytes as getrusage reports it (0 where there is no resource module)."""
    if resource is None:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class _Worker:
    def __init__(self, rfd: int, wfd: int, memory_mib: int, cpu_budget: int) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self.memory_mib = memory_mib
        self.cpu_budget = cpu_budget
        # Linux keeps ru_maxrss across fork and exec: a fresh worker reports its parent's peak (the
        # server's, often well past half our limit). Only growth past that inherited figure is ours.
        self.inherited_peak = _peak_rss()
        self.runtime = Runtime()
        self.buf = bytearray()
        # prebuilt, so reporting a MemoryError needs no memory
        self.memory_reply = json.dumps({"ok": False, "error": {
            "kind": "limit", "limit": "memory", "message": f"memory limit of {memory_mib} MiB exceeded"}}).encode()

    # -- framing ------------------------------------------------------------------------------------

    def read(self) -> dict[str, Any] | None:
        while True:
            if len(self.buf) >= 4:
                n = int.from_bytes(self.buf[:4], "big")
                if len(self.buf) >= 4 + n:
                    body = bytes(self.buf[4:4 + n])
                    del self.buf[:4 + n]
                    return json.loads(body)
            chunk = os.read(self.rfd, 1 << 16)
            if not chunk:
                return None
            self.buf += chunk

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.wfd, view)
            view = view[n:]

    # -- requests -----------------------------------------------------------------------------------

    def serve(self) -> None:
        while True:
            try:
                request = self.read()
            except (ValueError, UnicodeDecodeError):
                os._exit(EXIT_PROTOCOL)
            if request is None:
                return
            try:
                reply = self.handle(request)
            except MemoryError:
                reply = self.memory_reply
            except Exception as exc:  # a bug here, never tool code (that is caught in op_run)
                reply = {"ok": False, "error": {"kind": "internal", "message": type(exc).__name__}}
            try:
                self.write(frame(reply))
            except MemoryError:
                self.write(len(self.memory_reply).to_bytes(4, "big") + self.memory_reply)

    def arm(self, cpu_seconds: float) -> None:
        """Per-call CPU budget: a precise ITIMER_PROF (its default action ends the process) and the
        coarse RLIMIT_CPU backstop, both relative to the CPU this worker has used so far."""
        if resource is not None:
            used = os.times()
            soft = math.ceil(used.user + used.system + cpu_seconds) + 1
            try:
                resource.setrlimit(resource.RLIMIT_CPU, (min(soft, self.cpu_budget), self.cpu_budget))
            except (ValueError, OSError):
                pass
        signal.setitimer(signal.ITIMER_PROF, cpu_seconds)

    @staticmethod
    def disarm() -> None:
        signal.setitimer(signal.ITIMER_PROF, 0)

    def handle(self, req: dict[str, Any]) -> dict[str, Any] | bytes:
        op = req.get("op")
        cpu = float(req.get("cpu", 2.0))
        if op in ("call", "test", "snippet"):
            used = os.times()
            if used.user + used.system + cpu + 1 >= self.cpu_budget:
                return {"retire": True}  # this worker's lifetime CPU budget is spent
        self.arm(cpu)
        try:
            if op == "compile":
                return self.op_compile(req)
            if op == "call":
                return self.op_run(req, "call")
            if op == "test":
                return self.op_run(req, "test")
            if op == "snippet":
                return self.op_run(req, "snippet")
            if op == "ping":
                return {"ok": True}
            return {"ok": False, "error": {"kind": "bad_request", "message": f"unknown op {op!r}"}}
        finally:
            self.disarm()

    def op_compile(self, req: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": True, "problems": {}, "tests": []}
        for filename, sha, source in req["sources"]:
            entry, problems = self.runtime.compiled(sha, source, filename)
            if problems:
                out["problems"][filename] = problems
            elif entry is not None and filename == TESTS_FILE:
                out["tests"] = entry.tests
        return out

    def op_run(self, req: dict[str, Any], op: str) -> dict[str, Any] | bytes:
        runtime = self.runtime
        filename = SNIPPET_FILE if op == "snippet" else TOOL_FILE
        tool, problems = runtime.compiled(req["sha"], req.get("source"), filename)
        if problems:
            return {"ok": False, "error": {"kind": "rejected", "where": filename, "problems": problems}}
        if tool is None:
            return {"need_source": True}
        tests = None
        if op == "test":
            tests, problems = runtime.compiled(req["tests_sha"], req.get("tests"), TESTS_FILE)
            if problems:
                return {"ok": False, "error": {"kind": "rejected", "where": TESTS_FILE, "problems": problems}}
            if tests is None:
                return {"need_source": True}
        glb = runtime.begin(int(req.get("output_bytes", 64 * 1024)))
        value: Any = None
        try:
            try:
                exec(tool.code, glb)
                if op == "call":
                    value = runtime.function(glb, req["function"], TOOL_FILE)(**req["args"])
                elif op == "test":
                    assert tests is not None
                    exec(tests.code, glb)
                    runtime.function(glb, req["function"], TESTS_FILE)()
                elif tool.final is not None:
                    glb["_print"] = _CALL.printed  # a bare final expression has no injected _print
                    value = eval(tool.final, glb)
                value_json = "null" if op == "test" else to_json(value, int(req.get("result_bytes", MiB)))
            except MemoryError:
                value = None
                return self.memory_reply
            except NotJSON as exc:  # names=[]: never matches an example's "raises"; the code did not raise
                value = None
                return self.failure({"kind": "raised", "type": "TypeError", "message": exc.text(), "line": None,
                                     "where": None, "tests_line": None, "names": []},
                                    depth="deeply nested" in exc.message)
            except ResultTooLarge as exc:
                value = None
                return self.failure({"kind": "limit", "limit": "result", "message": str(exc)})
            except BaseException as exc:  # SystemExit, KeyboardInterrupt, GeneratorExit: all ordinary errors
                value = None
                return self.failure(describe_exception(exc))
            printed = json.dumps(_CALL.printed.text(), ensure_ascii=False)
            recycle = ',"recycle":true' if self.grown() else ""
            return f'{{"ok":true{recycle},"printed":{printed},"value":{value_json}}}'.encode("utf-8", "strict")
        except UnicodeEncodeError:
            return self.failure({"kind": "raised", "type": "TypeError", "line": None, "where": None,
                                 "tests_line": None, "names": [],
                                 "message": "result is not JSON: a str contains a lone surrogate character"})
        finally:
            del value
            runtime.end(glb)

    def grown(self) -> bool:
        """This worker's own peak memory past half the limit: a fragmented heap could make later calls
        fail early. (A peak no higher than the inherited one is the parent's, not ours.)"""
        peak = _peak_rss()
        return peak > self.inherited_peak and peak > self.memory_mib * MiB // 2

    def failure(self, error: dict[str, Any], depth: bool = False) -> dict[str, Any]:
        if depth:
            error = {"kind": "limit", "limit": "result", "message": error["message"]}
        reply = {"ok": False, "error": error, "printed": _CALL.printed.text()}
        if self.grown():
            reply["recycle"] = True
        return reply


def frame(reply: dict[str, Any] | str | bytes) -> bytes:
    """One protocol frame: 4-byte big-endian length, then UTF-8 JSON (``bytes`` are a finished body)."""
    if isinstance(reply, bytes):
        body = reply
    else:
        text = reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False)
        body = text.encode("utf-8", "backslashreplace")
    return len(body).to_bytes(4, "big") + body


# ---------------------------------------------------------------------------------------------------
# Lock-down


CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
PR_SET_NO_NEW_PRIVS = 38
NOBODY = 65534


def _libc() -> Any:
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _unshare_network() -> bool:
    """Linux: move into a new network namespace that has no interfaces (not even loopback up)."""
    if not sys.platform.startswith("linux"):
        return False
    unshare = getattr(os, "unshare", None)
    for flags in (CLONE_NEWNET, CLONE_NEWUSER | CLONE_NEWNET):
        try:
            if unshare is not None:  # Python 3.12+
                unshare(flags)
                return True
            if _libc().unshare(flags) == 0:
                return True
        except (OSError, AttributeError):
            continue
    return False


def _no_new_privs() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        return _libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _drop_root() -> bool:
    """Started as root: become ``nobody``, so the hard limits stick and files are only world-readable.
    Returns True when the worker now runs without root."""
    if os.geteuid() != 0:
        return True
    try:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    except OSError:
        return False
    return os.geteuid() != 0


def _set_limit(which: str, soft: int, hard: int | None = None) -> bool:
    if resource is None or not hasattr(resource, which):
        return False
    kind = getattr(resource, which)
    hard = soft if hard is None else hard
    try:
        resource.setrlimit(kind, (soft, hard))
        return resource.getrlimit(kind) == (soft, hard)
    except (ValueError, OSError):
        return False


def _preload() -> None:
    """Import what library code may otherwise import lazily later, when the worker can no longer open
    files (``datetime.strptime`` imports ``_strptime``; ``str.encode`` imports codecs)."""
    import encodings

    for codec in ("idna", "punycode", "utf_7", "utf_16", "utf_32", "utf_8_sig", "utf_16_le", "utf_16_be",
                  "utf_32_le", "utf_32_be", "latin_1", "ascii", "unicode_escape", "raw_unicode_escape",
                  "cp437", "cp850", "cp866", "cp1250", "cp1251", "cp1252", "cp1253", "cp1254", "cp1255",
                  "cp1256", "cp1257", "koi8_r", "koi8_u", "mac_roman", "iso8859_2", "iso8859_5", "iso8859_7",
                  "iso8859_9", "iso8859_15"):
        try:
            __import__(f"encodings.{codec}")
        except ImportError:
            pass
    del encodings


def lock_down(memory_mib: int, cpu_budget: int) -> dict[str, bool]:
    """Apply every protection available on this platform; report which ones are active."""
    linux = sys.platform.startswith("linux")
    report = {
        "process_isolation": True,
        # CPython itself may add LC_CTYPE (PEP 538 locale coercion) to the empty environment it was given
        "empty_environment": set(os.environ) <= {"LC_CTYPE"},
        "no_network": _unshare_network(),
        "no_new_privileges": _no_new_privs(),
    }
    report["not_root"] = _drop_root()
    report["rlimit_nofile"] = _set_limit("RLIMIT_NOFILE", 16)
    report["rlimit_fsize"] = _set_limit("RLIMIT_FSIZE", 0)
    report["rlimit_core"] = _set_limit("RLIMIT_CORE", 0)
    report["rlimit_nproc"] = _set_limit("RLIMIT_NPROC", 0) and os.geteuid() != 0
    as_set = _set_limit("RLIMIT_AS", memory_mib * MiB)
    report["rlimit_as"] = as_set and sys.platform != "darwin"  # macOS accepts RLIMIT_AS, does not enforce it
    report["rlimit_cpu"] = _set_limit("RLIMIT_CPU", cpu_budget)
    report["cpu_timer"] = hasattr(signal, "setitimer") and hasattr(signal, "ITIMER_PROF")
    report["linux"] = linux
    return report


def main(argv: list[str]) -> int:
    config = json.loads(argv[1]) if len(argv) > 1 else {}
    memory_mib = int(config.get("memory_mib", 256))
    cpu_budget = int(config.get("cpu_budget", 3600))
    # 1. the protocol gets private descriptors; 0, 1 and 2 become /dev/null
    rfd, wfd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    sys.stdin = sys.stdout = sys.stderr = sink
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in ("SIGPROF", "SIGXCPU", "SIGXFSZ"):
        if hasattr(signal, sig):
            signal.signal(getattr(signal, sig), signal.SIG_DFL)
    _HOST_PATHS.extend(sorted({p for p in (
        os.getcwd(), os.path.dirname(os.path.abspath(__file__)), sys.prefix, sys.base_prefix,
        sys.exec_prefix, os.path.dirname(os.path.dirname(compile_restricted_exec.__code__.co_filename)),
    ) if p and p != "/"}, key=len, reverse=True))
    # 2. everything tool code will use is imported and built now, then the doors close
    _preload()
    worker = _Worker(rfd, wfd, memory_mib, cpu_budget)
    report = lock_down(memory_mib, cpu_budget)
    sys.setrecursionlimit(RECURSION_LIMIT)
    import gc

    gc.collect()
    gc.freeze()  # the worker's own objects never need scanning again
    worker.write(frame({"ready": True, "protocol": PROTOCOL_VERSION, "pid": os.getpid(),
                               "protections": report}))
    worker.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
