"""Trusted-side checks of a submission, on its syntax tree only: nothing submitted is evaluated here.

``analyse(code, name)`` reads the source with ``ast`` and returns the tool's ``Signature``: parameters,
their JSON Schemas (built from the annotations' syntax, never by evaluating them), the output schema, the
docstring. ``check_submission`` checks everything else ``author_tool`` receives (name, description,
examples against the schemas, tests, tags) and collects *every* problem before raising one
``SubmissionRejected``, so an agent fixes everything in one round trip.

Allowed annotations: ``str int float bool None list[T] dict[str, T] T | None Optional[T] Union[...]
Literal[...] Any`` (``Any`` = any JSON value), plus bare ``list``/``dict``. Output schemas are always an
object ``{"result": <return schema>}``: MCP before 2026-07-28 requires an object at the root, and one
shape for every tool is easier for agents than two.

What this module cannot see (a restricted-compile problem, a failing example) the sandbox reports.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from server.errors import SubmissionRejected
from server.models import NO_VALUE, Example

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
META_TOOLS = frozenset(
    {"author_tool", "run_code", "search_tools", "call_tool", "get_tool", "tool_history", "rollback_tool",
     "deprecate_tool"}
)
MAX_CODE_BYTES = 64 * 1024
MAX_DESCRIPTION = 2000
MAX_EXAMPLES = 50
MAX_TAGS = 20
MAX_PURPOSE = 500
EXCEPTION_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ANNOTATIONS_HELP = "str, int, float, bool, None, list[T], dict[str, T], T | None, Literal[...], Any"


@dataclass(frozen=True)
class Parameter:
    name: str
    annotation: str
    schema: dict[str, Any]
    required: bool
    default: Any = NO_VALUE


@dataclass(frozen=True)
class Signature:
    """What the trusted side knows about a tool function, from its source alone."""

    name: str
    parameters: tuple[Parameter, ...]
    return_annotation: str
    return_schema: dict[str, Any]
    docstring: str

    @property
    def input_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {p.name: p.schema for p in self.parameters},
            "additionalProperties": False,
        }
        required = [p.name for p in self.parameters if p.required]
        if required:
            schema["required"] = required
        return schema

    @property
    def output_schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {"result": self.return_schema}, "required": ["result"]}

    @property
    def text(self) -> str:
        """``slugify(text: str, sep: str = '-') -> str``"""
        params = []
        for p in self.parameters:
            part = f"{p.name}: {p.annotation}"
            if not p.required:
                part += f" = {p.default!r}"
            params.append(part)
        return f"{self.name}({', '.join(params)}) -> {self.return_annotation}"


def schema_sha256(schema: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def parse(code: str, filename: str = "tool.py") -> tuple[ast.Module | None, list[str]]:
    """Parse without ever raising: a problem list instead (``Line N: SyntaxError: ...``)."""
    if len(code.encode("utf-8", "surrogatepass")) > MAX_CODE_BYTES:
        return None, [f"{filename} is {len(code.encode('utf-8', 'surrogatepass'))} bytes; the limit is {MAX_CODE_BYTES}"]
    try:
        code.encode("utf-8")
    except UnicodeEncodeError as exc:
        return None, [f"{filename} is not valid UTF-8 text (lone surrogate at character {exc.start})"]
    try:
        return ast.parse(code, filename=filename), []
    except SyntaxError as exc:
        return None, [f"Line {exc.lineno or 1}: SyntaxError: {exc.msg}"]
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        return None, [f"{filename} cannot be parsed: {type(exc).__name__}: {exc}"]


def analyse(code: str, name: str) -> Signature:
    """Return the signature of function ``name`` in ``code``, or raise ``SubmissionRejected``."""
    problems: list[str] = []
    signature = _analyse(code, name, problems)
    if problems or signature is None:
        raise SubmissionRejected(problems or [f"no function named {name!r}"])
    return signature


def _analyse(code: str, name: str, problems: list[str]) -> Signature | None:
    tree, parse_problems = parse(code)
    problems.extend(parse_problems)
    if tree is None:
        return None
    typing_names = _typing_aliases(tree)
    function: ast.FunctionDef | None = None
    for index, node in enumerate(tree.body):
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.ClassDef, ast.Assign, ast.AnnAssign)):
            continue
        if isinstance(node, ast.FunctionDef):
            if node.name == name:
                function = node
            continue
        if isinstance(node, ast.AsyncFunctionDef):
            problems.append(f"Line {node.lineno}: async functions are not supported; define a plain def")
            continue
        if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # module docstring
        problems.append(
            f"Line {node.lineno}: only imports, constants, functions and classes may stand at the top level "
            f"(found {type(node).__name__.lower()}); put this inside a function"
        )
    if function is None:
        defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
        hint = f" (functions found: {', '.join(defined)})" if defined else ""
        problems.append(f"the code must define a top-level function named {name!r}, the tool's name{hint}")
        return None
    return _signature(function, typing_names, problems)


def _typing_aliases(tree: ast.Module) -> dict[str, str]:
    """Local names bound to typing symbols: ``from typing import Optional as Opt`` -> {'Opt': 'Optional'}."""
    aliases: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "typing":
            for alias in node.names:
                aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "typing":
                    aliases[alias.asname or "typing"] = "typing"
    return aliases


def _signature(fn: ast.FunctionDef, typing_names: dict[str, str], problems: list[str]) -> Signature | None:
    args = fn.args
    start = len(problems)
    if args.posonlyargs:
        problems.append(f"Line {fn.lineno}: positional-only parameters are not supported; callers pass arguments by name")
    if args.vararg:
        problems.append(f"Line {fn.lineno}: *{args.vararg.arg} is not supported; name every parameter")
    if args.kwarg:
        problems.append(f"Line {fn.lineno}: **{args.kwarg.arg} is not supported; name every parameter")
    if fn.decorator_list:
        problems.append(f"Line {fn.lineno}: the tool function cannot have decorators")
    positional = list(args.args)
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = list(zip(positional, defaults)) + list(zip(args.kwonlyargs, args.kw_defaults))
    parameters = []
    for arg, default_node in pairs:
        if arg.arg.startswith("_"):
            problems.append(f"Line {arg.lineno}: parameter {arg.arg!r} cannot start with an underscore")
        if arg.annotation is None:
            problems.append(
                f"Line {arg.lineno}: parameter {arg.arg!r} needs a type annotation ({ANNOTATIONS_HELP})"
            )
            continue
        schema = _schema(arg.annotation, typing_names, problems, f"parameter {arg.arg!r}")
        if schema is None:
            continue
        default: Any = NO_VALUE
        if default_node is not None:
            try:
                default = ast.literal_eval(default_node)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                problems.append(
                    f"Line {default_node.lineno}: the default of {arg.arg!r} must be a literal JSON value "
                    "(a number, string, True/False/None, or a list/dict of those)"
                )
                continue
            default = _jsonable(default)
            if default is NO_VALUE:
                problems.append(f"Line {default_node.lineno}: the default of {arg.arg!r} is not a JSON value")
                continue
            error = json_type_error(default, schema)
            if error:
                problems.append(f"Line {default_node.lineno}: the default of {arg.arg!r} {error}")
                continue
            schema = {**schema, "default": default}
        parameters.append(
            Parameter(arg.arg, ast.unparse(arg.annotation), schema, default is NO_VALUE, default)
        )
    if fn.returns is None:
        problems.append(f"Line {fn.lineno}: {fn.name}() needs a return annotation ({ANNOTATIONS_HELP})")
        return_schema = None
    else:
        return_schema = _schema(fn.returns, typing_names, problems, "the return value")
    docstring = ast.get_docstring(fn) or ""
    if not docstring.strip():
        problems.append(
            f"Line {fn.lineno}: {fn.name}() needs a docstring saying what it does (agents read it in get_tool, "
            "and search uses it)"
        )
    if len(problems) > start or return_schema is None:
        return None
    return Signature(fn.name, tuple(parameters), ast.unparse(fn.returns), return_schema, docstring)  # type: ignore[arg-type]


_SCALARS = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}


def _schema(node: ast.expr, typing_names: dict[str, str], problems: list[str], what: str) -> dict[str, Any] | None:
    """JSON Schema for an annotation's syntax tree; a problem (and None) for anything outside the allowed set."""

    def name_of(n: ast.expr) -> str | None:
        if isinstance(n, ast.Name):
            return typing_names.get(n.id, n.id) if n.id in typing_names else n.id
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and typing_names.get(n.value.id) == "typing":
            return n.attr
        return None

    def fail(n: ast.expr, why: str = "") -> None:
        text = ast.unparse(n)
        problems.append(
            f"Line {n.lineno}: the annotation of {what}, {text!r}, is not allowed{why}; use {ANNOTATIONS_HELP}"
        )

    def build(n: ast.expr) -> dict[str, Any] | None:
        if isinstance(n, ast.Constant) and n.value is None:
            return {"type": "null"}
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr):
            return union([n.left, n.right])
        ident = name_of(n)
        if ident is not None and not isinstance(n, ast.Subscript):
            if ident in _SCALARS:
                return {"type": _SCALARS[ident]}
            if ident in ("list", "List"):
                return {"type": "array"}
            if ident in ("dict", "Dict"):
                return {"type": "object"}
            if ident == "Any":
                return {}
            if ident == "None":
                return {"type": "null"}
            fail(n)
            return None
        if isinstance(n, ast.Subscript):
            base = name_of(n.value)
            args = list(n.slice.elts) if isinstance(n.slice, ast.Tuple) else [n.slice]
            if base in ("list", "List") and len(args) == 1:
                item = build(args[0])
                return None if item is None else {"type": "array", "items": item}
            if base in ("dict", "Dict") and len(args) == 2:
                if name_of(args[0]) != "str":
                    fail(n, " (JSON object keys are strings: use dict[str, T])")
                    return None
                value = build(args[1])
                return None if value is None else {"type": "object", "additionalProperties": value}
            if base == "Optional" and len(args) == 1:
                return union([args[0], ast.Constant(value=None)])
            if base == "Union":
                return union(args)
            if base == "Literal":
                values = []
                for a in args:
                    if not isinstance(a, ast.Constant) or not isinstance(a.value, (str, int, float, bool, type(None))):
                        fail(n, " (Literal takes constants)")
                        return None
                    values.append(a.value)
                return {"enum": values}
        fail(n)
        return None

    def union(members: Sequence[ast.expr]) -> dict[str, Any] | None:
        flat: list[dict[str, Any]] = []
        for m in members:
            s = build(m)
            if s is None:
                return None
            flat.extend(s["anyOf"] if set(s) == {"anyOf"} else [s])
        if any(s == {} for s in flat):
            return {}
        return {"anyOf": flat}

    return build(node)


def _jsonable(value: Any) -> Any:
    """``value`` if it is plain JSON data (tuples become lists), else NO_VALUE."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else NO_VALUE
    if isinstance(value, (list, tuple)):
        items = [_jsonable(v) for v in value]
        return NO_VALUE if any(i is NO_VALUE for i in items) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        out = {k: _jsonable(v) for k, v in value.items()}
        return NO_VALUE if any(v is NO_VALUE for v in out.values()) else out
    return NO_VALUE


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


def json_type_error(value: Any, schema: Mapping[str, Any], path: str = "") -> str | None:
    """Why ``value`` does not fit ``schema`` (our subset of JSON Schema), or None when it fits."""
    where = f" at {path}" if path else ""
    if "anyOf" in schema:
        if any(json_type_error(value, s, path) is None for s in schema["anyOf"]):
            return None
        wanted = " or ".join(_describe(s) for s in schema["anyOf"])
        return f"should be {wanted}{where}, got {_type_name(value)}"
    if "enum" in schema:
        if any(value == e and type(value) is type(e) for e in schema["enum"]):
            return None
        return f"should be one of {json.dumps(schema['enum'])}{where}, got {json.dumps(value)}"
    kind = schema.get("type")
    if kind is None:
        return None
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "null": value is None,
        "array": isinstance(value, list),
        "object": isinstance(value, dict),
    }[kind]
    if not ok:
        return f"should be {_describe(schema)}{where}, got {_type_name(value)}"
    if kind == "array" and "items" in schema:
        for i, item in enumerate(value):
            error = json_type_error(item, schema["items"], f"{path}[{i}]")
            if error:
                return error
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            error = json_type_error(item, schema["additionalProperties"], f"{path}.{key}" if path else key)
            if error:
                return error
    return None


def _describe(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + json.dumps(schema["enum"])
    if "anyOf" in schema:
        return " or ".join(_describe(s) for s in schema["anyOf"])
    kind = schema.get("type", "any JSON value")
    article = "an" if kind[0] in "aeiou" else "a"
    return f"{article} {kind}" if kind != "null" else "null"


def argument_problems(signature: Signature, args: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``args`` as arguments of ``signature``: unknown, missing, or of the wrong type."""
    problems = []
    known = {p.name: p for p in signature.parameters}
    for key in args:
        if key not in known:
            problems.append(f"unknown argument {key!r}; the parameters are {sorted(known)}")
    for p in signature.parameters:
        if p.name in args:
            error = json_type_error(args[p.name], p.schema)
            if error:
                problems.append(f"argument {p.name!r} {error}")
        elif p.required:
            problems.append(f"missing required argument {p.name!r}")
    return problems


def check_name(name: Any) -> list[str]:
    if not isinstance(name, str) or not NAME_RE.match(name):
        return [
            f"name {name!r} is not allowed: use 1-48 characters, lowercase letters, digits and underscores, "
            "starting with a letter (e.g. 'parse_duration')"
        ]
    if name in META_TOOLS:
        return [f"name {name!r} is reserved for one of Cairn's own tools; choose another"]
    return []


def parse_examples(raw: Any, signature: Signature | None, problems: list[str]) -> list[Example]:
    """Turn the submitted example objects into ``Example``s, checking them against the signature's schemas."""
    if not isinstance(raw, list) or not raw:
        problems.append(
            'examples: give 1 to 50 examples, each {"args": {...}, "expected": value} or '
            '{"args": {...}, "raises": "ValueError"}'
        )
        return []
    if len(raw) > MAX_EXAMPLES:
        problems.append(f"examples: {len(raw)} given; at most {MAX_EXAMPLES}")
        return []
    examples = []
    for i, item in enumerate(raw):
        label = f"example {i}"
        if not isinstance(item, dict):
            problems.append(f"{label}: must be an object with 'args' and 'expected' or 'raises'")
            continue
        unknown = set(item) - {"args", "expected", "raises"}
        if unknown:
            problems.append(f"{label}: unknown key(s) {sorted(unknown)}; use 'args' and 'expected' or 'raises'")
        args = item.get("args", {})
        if not isinstance(args, dict):
            problems.append(f"{label}: 'args' must be an object mapping parameter names to values")
            continue
        if ("expected" in item) == ("raises" in item):
            problems.append(f"{label}: give exactly one of 'expected' (the result) or 'raises' (an exception name)")
            continue
        raises = item.get("raises")
        if raises is not None and (not isinstance(raises, str) or not EXCEPTION_NAME_RE.match(raises)):
            problems.append(f"{label}: 'raises' must name an exception type, such as 'ValueError'")
            continue
        if _jsonable(args) is NO_VALUE or ("expected" in item and _jsonable(item["expected"]) is NO_VALUE):
            problems.append(f"{label}: args and expected must be JSON values (no NaN or infinity)")
            continue
        if signature is not None:
            problems.extend(f"{label}: {p}" for p in argument_problems(signature, args))
            if "expected" in item:
                error = json_type_error(item["expected"], signature.return_schema)
                if error:
                    problems.append(f"{label}: 'expected' {error} (the return annotation is {signature.return_annotation})")
        examples.append(Example(args=args, expected=item["expected"]) if "expected" in item else Example(args=args, raises=raises))
    return examples


def check_tests(tests: Any, problems: list[str]) -> str | None:
    if tests is None or tests == "":
        return None
    if not isinstance(tests, str):
        problems.append("tests: must be Python source text defining test_* functions")
        return None
    tree, parse_problems = parse(tests, "tests")
    problems.extend(f"tests {p[0].lower()}{p[1:]}" if p.startswith("Line") else f"tests: {p}" for p in parse_problems)
    if tree is None:
        return None
    names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
    if not names:
        problems.append("tests: define at least one function named test_... that calls the tool and asserts")
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.Import, ast.ImportFrom, ast.Assign, ast.ClassDef)) and not (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        ):
            problems.append(f"tests line {node.lineno}: only test_* functions, helpers and imports may stand at the top level")
    return tests


@dataclass(frozen=True)
class Submission:
    """A submission that passed every trusted-side check; the sandbox checks come next."""

    name: str
    description: str
    code: str
    signature: Signature
    examples: tuple[Example, ...]
    tests: str | None
    purpose: str
    tags: tuple[str, ...]


def check_submission(
    *,
    name: Any,
    description: Any,
    code: Any,
    examples: Any,
    tests: Any = None,
    purpose: Any = None,
    tags: Any = None,
    extra_problems: Sequence[str] = (),
) -> Submission:
    """Every trusted-side check of ``author_tool``'s arguments, all problems at once."""
    problems: list[str] = list(check_name(name))
    if not isinstance(description, str) or not description.strip():
        problems.append("description: say in 1 to 2000 characters what the tool does; every agent reads it")
    elif len(description) > MAX_DESCRIPTION:
        problems.append(f"description: {len(description)} characters; at most {MAX_DESCRIPTION}")
    signature = None
    if not isinstance(code, str) or not code.strip():
        problems.append("code: give the Python source of the tool's function")
    elif isinstance(name, str):
        signature = _analyse(code, name, problems)
    parsed = parse_examples(examples, signature, problems)
    checked_tests = check_tests(tests, problems)
    if purpose is not None and (not isinstance(purpose, str) or len(purpose) > MAX_PURPOSE):
        problems.append(f"purpose: a sentence of at most {MAX_PURPOSE} characters saying why the tool exists")
    tag_list: list[str] = []
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) and 0 < len(t) <= 40 for t in tags):
            problems.append("tags: a list of short strings (1-40 characters each)")
        elif len(tags) > MAX_TAGS:
            problems.append(f"tags: {len(tags)} given; at most {MAX_TAGS}")
        else:
            tag_list = sorted({t.strip().lower() for t in tags if t.strip()})
    problems.extend(extra_problems)
    if problems or signature is None:
        raise SubmissionRejected(problems or ["code: no usable function found"])
    return Submission(
        name=name,
        description=description.strip(),
        code=code,
        signature=signature,
        examples=tuple(parsed),
        tests=checked_tests,
        purpose=(purpose or "").strip(),
        tags=tuple(tag_list),
    )
