"""Trusted-side validation: schemas from annotations' syntax, and every problem reported at once."""

from __future__ import annotations

import pytest

from server.errors import SubmissionRejected
from server.validate import analyse, check_submission, json_type_error

GOOD = '''
def double(x: int) -> int:
    """Twice x."""
    return 2 * x
'''


def submit(**overrides):
    args = dict(name="double", description="Doubles a number.", code=GOOD,
                examples=[{"args": {"x": 2}, "expected": 4}])
    args.update(overrides)
    return check_submission(**args)


@pytest.mark.parametrize(
    ("annotation", "schema"),
    [
        ("str", {"type": "string"}),
        ("int", {"type": "integer"}),
        ("float", {"type": "number"}),
        ("bool", {"type": "boolean"}),
        ("None", {"type": "null"}),
        ("list[int]", {"type": "array", "items": {"type": "integer"}}),
        ("list", {"type": "array"}),
        ("dict[str, float]", {"type": "object", "additionalProperties": {"type": "number"}}),
        ("str | None", {"anyOf": [{"type": "string"}, {"type": "null"}]}),
        ("Optional[int]", {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
        ("Literal['a', 'b']", {"enum": ["a", "b"]}),
        ("Any", {}),
        ("list[dict[str, Any]]", {"type": "array", "items": {"type": "object", "additionalProperties": {}}}),
    ],
)
def test_annotation_becomes_json_schema(annotation, schema):
    code = f'from typing import Any, Literal, Optional\ndef f(v: {annotation}) -> bool:\n    """d"""\n    return True\n'
    assert analyse(code, "f").parameters[0].schema == schema


@pytest.mark.parametrize("annotation", ["set[int]", "tuple[int, int]", "bytes", "object", "dict[int, str]",
                                        "Callable", "'str'"])
def test_annotation_outside_the_allowed_set_is_a_problem_naming_it(annotation):
    code = f'def f(v: {annotation}) -> int:\n    """d"""\n    return 1\n'
    with pytest.raises(SubmissionRejected) as info:
        analyse(code, "f")
    assert any("not allowed" in p and "Line 1" in p for p in info.value.problems)


def test_defaults_make_parameters_optional_and_appear_in_the_schema():
    sig = analyse('def f(a: int, b: str = "x", *, c: list[int] = [1]) -> int:\n    """d"""\n    return a\n', "f")
    schema = sig.input_schema
    assert schema["required"] == ["a"]
    assert schema["properties"]["b"]["default"] == "x"
    assert schema["properties"]["c"]["default"] == [1]
    assert schema["additionalProperties"] is False


def test_output_schema_wraps_the_return_value_in_an_object():
    sig = analyse(GOOD, "double")
    assert sig.output_schema == {"type": "object", "properties": {"result": {"type": "integer"}},
                                 "required": ["result"]}


def test_signature_text_reads_like_python():
    sig = analyse('def f(a: int, b: str = "x") -> list[str]:\n    """d"""\n    return []\n', "f")
    assert sig.text == "f(a: int, b: str = 'x') -> list[str]"


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("def double(x):\n    '''d'''\n    return x\n", "parameter 'x' needs a type annotation"),
        ("def double(x: int):\n    '''d'''\n    return x\n", "needs a return annotation"),
        ("def double(x: int) -> int:\n    return x\n", "needs a docstring"),
        ("def double(*xs: int) -> int:\n    '''d'''\n    return 1\n", "*xs is not supported"),
        ("def double(**kw: int) -> int:\n    '''d'''\n    return 1\n", "**kw is not supported"),
        ("async def double(x: int) -> int:\n    '''d'''\n    return x\n", "async functions are not supported"),
        ("def other(x: int) -> int:\n    '''d'''\n    return x\n", "named 'double'"),
        ("def double(x: int) -> int:\n    '''d'''\n    return x\nprint(1)\n", "only imports, constants"),
        ("def double(x: int) -> int:\n    '''d'''\n    return x\nfor i in []: pass\n", "only imports, constants"),
        ("def double(x: int = len('a')) -> int:\n    '''d'''\n    return x\n", "must be a literal"),
        ("def double(x: int = 'a') -> int:\n    '''d'''\n    return x\n", "should be an integer"),
        ("def double(x: int) -> int\n    return x\n", "Line 1: SyntaxError"),
        ("def double(_x: int) -> int:\n    '''d'''\n    return _x\n", "cannot start with an underscore"),
        ("def double(x: int, /) -> int:\n    '''d'''\n    return x\n", "positional-only"),
    ],
)
def test_code_problem_is_reported_with_its_line(code, fragment):
    with pytest.raises(SubmissionRejected) as info:
        submit(code=code)
    assert any(fragment in p for p in info.value.problems), info.value.problems


def test_every_problem_is_reported_at_once():
    with pytest.raises(SubmissionRejected) as info:
        check_submission(
            name="Bad Name", description="", code="def f(x):\n    return x\n",
            examples=[{"args": {}}, "nope"], tags="text",
        )
    problems = info.value.problems
    assert len(problems) >= 5
    text = "\n".join(problems)
    for fragment in ("name 'Bad Name'", "description", "example 0", "example 1", "tags"):
        assert fragment in text


@pytest.mark.parametrize("name", ["author_tool", "call_tool", "run_code", "search_tools"])
def test_meta_tool_names_are_reserved(name):
    with pytest.raises(SubmissionRejected, match="reserved"):
        submit(name=name)


@pytest.mark.parametrize("name", ["", "Upper", "1abc", "with-dash", "with.dot", "a" * 49, "é"])
def test_name_must_be_snake_case_up_to_48_characters(name):
    with pytest.raises(SubmissionRejected, match="not allowed"):
        submit(name=name)


@pytest.mark.parametrize(
    ("examples", "fragment"),
    [
        ([], "give 1 to 50 examples"),
        ([{"args": {"x": 1}}] * 51, "at most 50"),
        ([{"args": {"y": 1}, "expected": 2}], "unknown argument 'y'"),
        ([{"args": {}, "expected": 2}], "missing required argument 'x'"),
        ([{"args": {"x": "2"}, "expected": 4}], "argument 'x' should be an integer, got string"),
        ([{"args": {"x": 2}, "expected": "4"}], "'expected' should be an integer"),
        ([{"args": {"x": 2}, "expected": 4, "raises": "ValueError"}], "exactly one of"),
        ([{"args": {"x": 2}, "raises": "not a name!"}], "must name an exception"),
        ([{"args": {"x": 2}, "expected": 4, "extra": 1}], "unknown key"),
        ([{"args": [2], "expected": 4}], "'args' must be an object"),
    ],
)
def test_example_problem_is_reported_with_its_index(examples, fragment):
    with pytest.raises(SubmissionRejected) as info:
        submit(examples=examples)
    assert any(fragment in p for p in info.value.problems), info.value.problems


def test_null_is_a_valid_example_value_for_optional_parameters():
    code = 'def f(x: int | None = None) -> str | None:\n    """d"""\n    return None\n'
    sub = check_submission(name="f", description="d", code=code, examples=[{"args": {"x": None}, "expected": None}])
    assert sub.examples[0].args == {"x": None}
    assert sub.examples[0].expected is None


def test_tests_must_define_a_test_function():
    with pytest.raises(SubmissionRejected, match="test_"):
        submit(tests="def helper():\n    pass\n")


def test_tests_syntax_error_names_the_tests_line():
    with pytest.raises(SubmissionRejected) as info:
        submit(tests="def test_a(:\n    pass\n")
    assert any(p.startswith("tests line 1") for p in info.value.problems)


def test_code_larger_than_64_kib_is_refused_before_parsing():
    with pytest.raises(SubmissionRejected, match="65536"):
        submit(code=GOOD + "#" * 70000)


def test_lone_surrogate_in_code_is_a_problem_not_a_crash():
    with pytest.raises(SubmissionRejected, match="UTF-8"):
        submit(code=GOOD + "# \udc80\n")


def test_deeply_nested_expression_is_a_problem_not_a_crash():
    with pytest.raises(SubmissionRejected):
        submit(code="def double(x: int) -> int:\n    '''d'''\n    return " + "(" * 5000 + "x" + ")" * 5000 + "\n")


def test_tags_are_normalised():
    assert submit(tags=["Text", "text ", "dates"]).tags == ("dates", "text")


@pytest.mark.parametrize(
    ("value", "schema", "ok"),
    [
        (True, {"type": "integer"}, False),
        (1, {"type": "number"}, True),
        (1.5, {"type": "integer"}, False),
        ([1, "a"], {"type": "array", "items": {"type": "integer"}}, False),
        ({"a": 1}, {"type": "object", "additionalProperties": {"type": "integer"}}, True),
        ("b", {"enum": ["a"]}, False),
        (None, {"anyOf": [{"type": "string"}, {"type": "null"}]}, True),
        ({"x": [1]}, {}, True),
    ],
)
def test_json_values_are_checked_against_the_schema_subset(value, schema, ok):
    assert (json_type_error(value, schema) is None) is ok
