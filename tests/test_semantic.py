"""Hybrid search with the semantic extra: the real all-MiniLM-L6-v2 encoder (``server.embed``), the real
``SemanticIndex`` and its cache file, fused with BM25F by ``SearchIndex``. Skipped when the extra is not
installed (``scripts/setup.sh --semantic``; ``scripts/test`` installs it)."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server import embed
from server.config import Settings
from server.errors import ConfigError
from server.search import Document, SearchIndex
from server.semantic import EMBED_NICENESS, SemanticIndex
from server.service import Cairn

pytestmark = pytest.mark.skipif(not embed.available(), reason="the semantic extra is not installed "
                                "(scripts/setup.sh --semantic)")

# Tools whose words a paraphrase does not share: BM25F alone cannot find them from these queries.
TOOLS = [
    Document("levenshtein_distance", "Edit distance between two strings: insertions, deletions, substitutions."),
    Document("wrap_text", "Wrap a paragraph so that no line exceeds the given width.", params="width int"),
    Document("is_prime", "True if n is a prime number.", params="n int"),
    Document("celsius_to_fahrenheit", "Convert a temperature from degrees Celsius to degrees Fahrenheit."),
    Document("fahrenheit_to_celsius", "Convert a temperature from degrees Fahrenheit to degrees Celsius."),
    Document("sample_std_dev", "Standard deviation of a sample (n - 1 denominator)."),
    Document("population_std_dev", "Standard deviation of a whole population (n denominator)."),
    Document("slugify", "Lower-case ASCII slug of a title for URLs."),
]
PARAPHRASES = [
    ("how many typo corrections separate kitten from sitting", "levenshtein_distance"),
    ("reflow my commit message body to 72 columns", "wrap_text"),
    ("can 97 only be divided by 1 and itself", "is_prime"),
]


class Counting:
    """The real encoder, counting the texts it embeds (to see what the cache saves)."""

    def __init__(self) -> None:
        self.inner = embed.Encoder.load()
        self.name, self.fingerprint = self.inner.name, self.inner.fingerprint
        self.texts: list[str] = []

    def encode(self, texts: list[str]) -> Any:
        self.texts.extend(texts)
        return self.inner.encode(texts)


@pytest.fixture(scope="module")
def encoder() -> Counting:
    return Counting()


def hybrid(encoder: Any, cache: Path | None = None) -> SearchIndex:
    index = SearchIndex(semantic=SemanticIndex(lambda: encoder, cache))
    for doc in TOOLS:
        index.put(doc)
    assert index.semantic is not None and index.semantic.wait_idle(120)
    return index


@pytest.fixture
def index(encoder: Counting) -> Iterator[SearchIndex]:
    idx = hybrid(encoder)
    yield idx
    assert idx.semantic is not None
    idx.semantic.close()


@pytest.mark.parametrize(("query", "expected"), PARAPHRASES)
def test_a_paraphrase_lexical_search_misses_is_found(index: SearchIndex, query: str, expected: str) -> None:
    lexical = SearchIndex()
    for doc in TOOLS:
        lexical.put(doc)
    assert expected not in [name for name, _ in lexical.search(query, 3)]
    assert index.search(query, 3)[0][0] == expected


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("US weather says 86 F; what is that in Celsius", "fahrenheit_to_celsius"),
        ("convert 100 degrees celsius to fahrenheit", "celsius_to_fahrenheit"),
        ("standard deviation of a sample, not the whole population", "sample_std_dev"),
        ("standard deviation of the whole population, not a sample", "population_std_dev"),
        ("slugify", "slugify"),
    ],
)
def test_the_lexical_rules_still_tell_relatives_apart(index: SearchIndex, query: str, first: str) -> None:
    assert index.search(query, 3)[0][0] == first


# Close relatives, as the evaluation set writes them: near-identical embeddings, told apart by a few words.
RELATIVES = [
    Document("running_pace_per_km", "Running pace per kilometre, as 'M:SS/km', from a distance in km and a total "
             "time in seconds.", tags=("running", "pace", "min/km", "marathon", "training")),
    Document("running_pace_per_mile", "Running pace per mile, as 'M:SS/mi', from a distance in miles and a total "
             "time in seconds.", tags=("running", "pace", "min/mile", "training")),
    Document("simple_interest", "Simple interest earned on a principal at an annual rate (percent) over a number "
             "of years, without compounding.", tags=("interest", "loan", "savings", "simple interest")),
    Document("compound_interest", "Compound interest earned on a principal at an annual rate (percent) compounded "
             "a number of times per year (monthly by default) over some years.",
             tags=("interest", "savings", "compound interest", "compounding")),
    Document("flatten_list", "Flatten an arbitrarily nested list into a single flat list, at every depth.",
             tags=("list", "flatten", "nested", "recursive")),
    Document("flatten_one_level", "Flatten a list of lists by exactly one level; deeper nesting is kept.",
             tags=("list", "flatten", "nested", "shallow")),
]


@pytest.mark.parametrize(
    ("query", "first", "cosine_first"),
    [
        ("pace for a 26.2 mile marathon in 4 hours, per mile", "running_pace_per_mile", "running_pace_per_km"),
        ("interest without compounding on 1000 at 5% for 3 years", "simple_interest", "compound_interest"),
        ("completely flatten an arbitrarily nested list, every level", "flatten_list", "flatten_one_level"),
    ],
)
def test_close_relatives_at_the_top_are_in_lexical_order(encoder: Counting, monkeypatch: pytest.MonkeyPatch,
                                                         query: str, first: str, cosine_first: str) -> None:  # fmt: skip
    index = SearchIndex(semantic=SemanticIndex(lambda: encoder))
    for doc in RELATIVES:
        index.put(doc)
    assert index.semantic is not None and index.semantic.wait_idle(120)
    ranked = index.search(query, 3)
    assert [name for name, _ in ranked[:2]] == [first, cosine_first]
    assert [score for _, score in ranked] == sorted((score for _, score in ranked), reverse=True)
    monkeypatch.setattr("server.search.RELATIVE_SIMILARITY", 1.01)  # nobody is a relative: fused order alone
    assert [name for name, _ in index.search(query, 2)] == [cosine_first, first]
    index.semantic.close()


def test_unrelated_tools_are_not_returned_for_a_query_about_something_else(index: SearchIndex) -> None:
    assert index.search("book a table at a restaurant for friday", 10) == []


def test_the_index_follows_update_deprecation_and_removal(index: SearchIndex) -> None:
    query = "can 97 only be divided by 1 and itself"
    index.put(Document("check_n", "True if n is a prime number.", params="n int"))
    before = dict(index.search(query, 10))["check_n"]
    index.put(Document("check_n", "Mirror a word: its letters backwards.", params="n int"))
    assert index.search("spell a word backwards", 1)[0][0] == "check_n"
    assert dict(index.search(query, 10)).get("check_n", 0.0) < before / 2
    index.remove("check_n")
    index.put(Document("is_prime_v2", "True if n is a prime number, faster.", params="n int"))
    index.put(Document("is_prime", "True if n is a prime number.", params="n int", deprecated=True))
    ranked = [name for name, _ in index.search(query, 5)]
    assert ranked[0] == "is_prime_v2" and "is_prime" in ranked
    index.remove("is_prime_v2")
    index.put(Document("is_prime", "True if n is a prime number.", params="n int"))
    assert [name for name, _ in index.search(query, 10)].count("is_prime_v2") == 0
    assert index.search(query, 1)[0][0] == "is_prime"


def test_vectors_are_cached_on_disk_and_a_restart_embeds_only_what_changed(encoder: Counting, tmp_path: Path) -> None:
    first = hybrid(encoder, tmp_path)
    assert first.semantic is not None
    first.semantic.close()
    (cached,) = tmp_path.glob("*.npz")
    encoder.texts.clear()
    second = hybrid(encoder, tmp_path)
    assert encoder.texts == []  # every vector came from the cache
    second.put(Document("wrap_text", "Wrap a paragraph to a width; long words are split.", params="width int"))
    assert second.search(PARAPHRASES[1][0], 1)[0][0] == "wrap_text"
    assert encoder.texts[0] == "wrap text: Wrap a paragraph to a width; long words are split."
    assert second.semantic is not None
    second.semantic.close()
    assert cached.exists()


def test_a_damaged_cache_file_is_ignored(encoder: Counting, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / f"{encoder.fingerprint[:16]}.npz").write_bytes(b"not a numpy file")
    index = hybrid(encoder, tmp_path)
    assert index.search(PARAPHRASES[0][0], 1)[0][0] == "levenshtein_distance"
    assert "ignoring the embedding cache" in caplog.text
    assert index.semantic is not None
    index.semantic.close()


def test_without_the_model_search_is_lexical(caplog: pytest.LogCaptureFixture) -> None:
    def missing() -> Any:
        return embed.Encoder.load(Path("/nonexistent/model"))

    index = SearchIndex(semantic=SemanticIndex(missing))
    for doc in TOOLS:
        index.put(doc)
    assert index.semantic is not None and not index.semantic.wait_ready(30)
    assert index.search("degrees celsius to fahrenheit", 1)[0][0] == "celsius_to_fahrenheit"
    assert index.search(PARAPHRASES[0][0], 3) == []
    assert "semantic search is off: EmbedUnavailable" in caplog.text and "/nonexistent/model" in caplog.text
    index.semantic.close()


def test_the_setting_chooses_the_ranker(settings: Settings) -> None:
    with Cairn(settings) as cairn:
        assert cairn.ranker == "hybrid (all-MiniLM-L6-v2)"  # auto, with the extra installed
    for search in ("lexical", "hybrid"):
        with Cairn(Settings(registry=settings.registry, search=search)) as cairn:
            assert cairn.ranker == ("lexical" if search == "lexical" else "hybrid (all-MiniLM-L6-v2)")
    with pytest.raises(ConfigError, match="search must be auto, lexical or hybrid, got 'semantic'"):
        Settings.resolve(environ={"CAIRN_SEARCH": "semantic"})


def test_a_tool_authored_a_moment_ago_is_found_by_meaning(cairn: Cairn) -> None:
    code = 'def is_prime(n: int) -> bool:\n    """True if n is a prime number."""\n    return n > 1 and all(n % d for d in range(2, n))\n'
    cairn.author(name="is_prime", description="True if n is a prime number.", code=code,
                 examples=[{"args": {"n": 7}, "expected": True}, {"args": {"n": 8}, "expected": False}])
    assert [hit.name for hit in cairn.search("can 97 only be divided by 1 and itself")] == ["is_prime"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice value is Linux's")
def test_the_embedding_thread_yields_the_cpu_to_requests(index: SearchIndex) -> None:
    assert index.semantic is not None
    embedder = index.semantic._thread
    assert embedder.is_alive() and embedder.native_id is not None
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())  # not lowered: only the embedder is
    assert mine < 19 and os.getpriority(os.PRIO_PROCESS, embedder.native_id) == min(19, mine + EMBED_NICENESS)
