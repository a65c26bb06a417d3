"""Duplicate detection at authoring time: by behaviour, not wording (issue 5's contract)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from server.config import Settings
from server.duplicates import fingerprint
from server.errors import SubmissionRejected
from server.service import Cairn
from tests.conftest import SLUGIFY, SLUGIFY_EXAMPLES

EVAL = Path(__file__).resolve().parent / "search_eval"

CLONE = '''
import re
import unicodedata

def make_slug(title: str, sep: str = "-") -> str:
    """Slug for a title."""
    # same algorithm, other names
    plain = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    parts = re.findall(r"[a-z0-9]+", plain.lower())
    return sep.join(parts)
'''

REWRITTEN = '''
import unicodedata

def url_slug(title: str, joiner: str = "-") -> str:
    """Words of a title, ASCII, lower case, joined for a URL."""
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii").lower()
    words, word = [], ""
    for ch in ascii_text:
        if ch.isalnum():
            word += ch
        elif word:
            words.append(word)
            word = ""
    if word:
        words.append(word)
    return joiner.join(words)
'''

LOOK_ALIKE = '''
import re

def title_slug(title: str, sep: str = "-") -> str:
    """Slug for a title that keeps the original capitals."""
    return sep.join(re.findall(r"[A-Za-z0-9]+", title))
'''


@pytest.fixture
def with_slugify(cairn: Cairn) -> Cairn:
    cairn.author(name="slugify", description="Turn text into a URL slug.", code=SLUGIFY, examples=SLUGIFY_EXAMPLES)
    return cairn


def test_a_renamed_clone_is_caught_by_its_fingerprint() -> None:
    assert fingerprint(CLONE, "make_slug") == fingerprint(SLUGIFY, "slugify")
    assert fingerprint(REWRITTEN, "url_slug") != fingerprint(SLUGIFY, "slugify")


def test_a_clone_is_named_as_a_duplicate_and_still_saved_by_default(with_slugify: Cairn) -> None:
    reply = with_slugify.author(name="make_slug", description="Make a slug.", code=CLONE,
                                examples=[{"args": {"title": "A b"}, "expected": "a-b"}])
    assert reply["duplicate_of"] == {"name": "slugify", "version": 1, "how": "the same code, renamed"}
    assert reply["warnings"][0].startswith("duplicate of `slugify` v1")
    assert reply["version"] == 1


def test_the_same_behaviour_written_differently_is_a_duplicate(with_slugify: Cairn) -> None:
    reply = with_slugify.author(name="url_slug", description="Slug for URLs from a page title.", code=REWRITTEN,
                                examples=[{"args": {"title": "Hello, World!"}, "expected": "hello-world"},
                                          {"args": {"title": "Ça va", "joiner": "_"}, "expected": "ca_va"}])
    assert reply["duplicate_of"]["name"] == "slugify"
    assert "same results" in reply["duplicate_of"]["how"]


def test_a_look_alike_that_behaves_differently_is_not_a_duplicate(with_slugify: Cairn) -> None:
    reply = with_slugify.author(name="title_slug", description="Turn a title into a URL slug, keeping capitals.",
                                code=LOOK_ALIKE, examples=[{"args": {"title": "Hello World"}, "expected": "Hello-World"}])
    assert reply["duplicate_of"] is None
    assert reply["warnings"] == [] or not reply["warnings"][0].startswith("duplicate")


def test_refuse_setting_turns_the_warning_into_a_refusal(with_slugify: Cairn) -> None:
    with_slugify.settings = dataclasses.replace(with_slugify.settings, duplicates="refuse")
    with pytest.raises(SubmissionRejected, match="duplicate of `slugify` v1"):
        with_slugify.author(name="make_slug", description="Make a slug.", code=CLONE,
                            examples=[{"args": {"title": "A b"}, "expected": "a-b"}])
    assert "make_slug" not in {t.name for t in with_slugify.all_tools()}


def test_updating_a_tool_is_not_a_duplicate_of_itself(with_slugify: Cairn) -> None:
    reply = with_slugify.author(name="slugify", description="Slugs, edited.", code=SLUGIFY,
                                examples=SLUGIFY_EXAMPLES, base_version=1)
    assert reply["duplicate_of"] is None


def _eval_cases(kind: str, limit: int) -> list[dict]:
    rows = [json.loads(line) for line in (EVAL / "duplicates.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("kind") == kind][:limit]


@pytest.mark.parametrize("case", _eval_cases("behaviour", 4) + _eval_cases("look-alike", 4),
                         ids=lambda c: c["submission"]["name"])
def test_evaluation_set_submissions_are_judged_by_behaviour(settings: Settings, case: dict) -> None:
    """A few hand-written cases from tests/search_eval: a duplicate and its target, or a look-alike."""
    tools = {json.loads(line)["name"]: json.loads(line) for line in (EVAL / "tools.jsonl").read_text().splitlines()
             if line.strip()}
    target = tools[case["resembles"]]
    with Cairn(settings) as cairn:
        cairn.start(verify="none")
        cairn.author(name=target["name"], description=target["description"], code=target["code"],
                     examples=target["examples"])
        sub = case["submission"]
        reply = cairn.author(name=sub["name"], description=sub["description"], code=sub["code"],
                             examples=sub["examples"])
    found = reply["duplicate_of"]["name"] if reply["duplicate_of"] else None
    assert found == case["duplicate_of"]
