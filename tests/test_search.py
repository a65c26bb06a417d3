"""Search: ranking rules that tell close relatives apart, and an index that follows every change."""

from __future__ import annotations

import pytest

from server.search import Document, SearchIndex, direction_terms, negated_terms
from server.service import Cairn

RELATIVES = [
    Document("celsius_to_fahrenheit", "Convert a temperature from degrees Celsius to degrees Fahrenheit."),
    Document("fahrenheit_to_celsius", "Convert a temperature from degrees Fahrenheit to degrees Celsius."),
    Document("miles_to_km", "Convert a distance in miles to kilometres.", params="miles float", examples="km"),
    Document("km_to_miles", "Convert a distance in kilometres to miles.", params="km float"),
    Document("sample_std_dev", "Standard deviation of a sample (n - 1 denominator)."),
    Document("population_std_dev", "Standard deviation of a whole population (n denominator)."),
    Document("business_days_between", "Count working days between two dates, skipping weekends."),
    Document("calendar_days_between", "Count all days between two dates."),
    Document("us_gallons_to_liters", "Convert US gallons to liters."),
    Document("imperial_gallons_to_liters", "Convert imperial (UK) gallons to liters."),
]


@pytest.fixture(scope="module")
def index() -> SearchIndex:
    idx = SearchIndex()
    for doc in RELATIVES:
        idx.put(doc)
    return idx


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("convert 100 degrees celsius to fahrenheit", "celsius_to_fahrenheit"),
        ("US weather says 86 F; what is that in Celsius", "fahrenheit_to_celsius"),
        ("how many km is 26.2 miles", "miles_to_km"),
        ("a 10 km race in miles", "km_to_miles"),
    ],
)
def test_direction_queries_rank_the_right_relative_first(index: SearchIndex, query: str, first: str) -> None:
    assert index.search(query, 3)[0][0] == first


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("standard deviation of a sample, not the whole population", "sample_std_dev"),
        ("standard deviation of the whole population, not a sample", "population_std_dev"),
        ("days between two dates counting weekends too, not only business days", "calendar_days_between"),
        ("gallons to liters, US gallons rather than imperial", "us_gallons_to_liters"),
    ],
)
def test_variant_queries_rank_the_right_relative_first(index: SearchIndex, query: str, first: str) -> None:
    assert index.search(query, 3)[0][0] == first


def test_negated_words_are_the_ones_only_said_in_a_negation() -> None:
    assert negated_terms("days between dates, not just working days") == {"just", "work"}
    assert negated_terms("interest compounded monthly rather than simple interest") == {"simple"}
    assert negated_terms("plain query") == set()


def test_negations_are_said_in_more_ways_than_not() -> None:
    assert negated_terms("squeeze runs of spaces to one, don't delete them all") == {"delete", "all"}
    assert negated_terms("all the keys except the private ones") == {"private", "one"}
    assert negated_terms("every weekday, excluding holidays") == {"holiday"}


@pytest.mark.parametrize(
    ("docs", "query", "first"),
    [
        # An abbreviated name is also its long form: "not the standard deviation" rules out sample_std_dev.
        ([Document("sample_std_dev", "Square root of the unbiased variance of a sample (n - 1)."),
          Document("sample_variance", "Unbiased variance of a sample (n - 1 denominator).")],
         "variance with Bessel's correction, not the standard deviation", "sample_variance"),
        # A unit written apart in the query ("mg/dL") matches the name that writes it as one word.
        ([Document("glucose_mgdl_to_mmol", "Blood glucose from mg/dL to mmol/L."),
          Document("glucose_mmol_to_mgdl", "Blood glucose from mmol/L to mg/dL.")],
         "blood sugar of 5.5 mmol/L expressed in mg/dL", "glucose_mmol_to_mgdl"),
        ([Document("collapse_whitespace", "Replace each run of whitespace with a single space."),
          Document("remove_all_whitespace", "Delete every whitespace character.")],
         "squeeze runs of spaces and newlines down to single spaces, don't delete them all", "collapse_whitespace"),
    ],
)
def test_abbreviations_compounds_and_negations_tell_relatives_apart(docs: list[Document], query: str,
                                                                    first: str) -> None:  # fmt: skip
    idx = SearchIndex()
    for doc in docs:
        idx.put(doc)
    assert idx.search(query, 2)[0][0] == first


def test_direction_words_come_from_to_in_and_from() -> None:
    assert direction_terms("what is 86 F in Celsius") == ({"celsius"}, set())
    assert direction_terms("convert from miles to km") == ({"km"}, {"mile"})
    assert direction_terms("5.5 mmol/L in mg/dL") == ({"mg", "dl", "mgdl"}, set())


def test_examples_are_searched_too() -> None:
    idx = SearchIndex()
    idx.put(Document("parse_duration", "Seconds in a human duration.", examples='{"text": "1h30m"} 5400'))
    idx.put(Document("parse_date", "A date from text."))
    assert idx.search("1h30m", 3)[0][0] == "parse_duration"


def test_deprecated_tools_rank_below_active_ones() -> None:
    idx = SearchIndex()
    idx.put(Document("slug_old", "Make a URL slug from text.", deprecated=True))
    idx.put(Document("slug_new", "Make a URL slug from text."))
    assert [n for n, _ in idx.search("url slug", 5)] == ["slug_new", "slug_old"]


def test_the_index_follows_update_rollback_and_delete(cairn: Cairn) -> None:
    code = 'def tool_a(x: int) -> int:\n    """Add one."""\n    return x + 1\n'
    cairn.author(name="tool_a", description="Add one to a number.", code=code,
                 examples=[{"args": {"x": 1}, "expected": 2}])
    assert [h.name for h in cairn.search("add one")] == ["tool_a"]
    cairn.author(name="tool_a", description="Increment a counter.", code=code,
                 examples=[{"args": {"x": 1}, "expected": 2}], base_version=1)
    assert [h.name for h in cairn.search("increment counter")] == ["tool_a"]
    cairn.rollback("tool_a", 1)
    hit = cairn.search("add one")[0]
    assert (hit.name, hit.version) == ("tool_a", 3)
    cairn.deprecate("tool_a", "use tool_b")
    assert cairn.search("add one")[0].status == "deprecated"
    cairn.delete("tool_a")
    assert cairn.search("add one") == []


def test_the_index_follows_a_change_from_another_process(cairn: Cairn, settings) -> None:
    code = 'def tool_b(x: int) -> int:\n    """Double."""\n    return 2 * x\n'
    with Cairn(settings) as other:
        other.start(verify="none")
        other.author(name="tool_b", description="Double a number.", code=code,
                     examples=[{"args": {"x": 2}, "expected": 4}])
    assert cairn.search("double number") == []
    assert cairn.poll_changes() == {"tool_b"}
    assert [h.name for h in cairn.search("double number")] == ["tool_b"]
