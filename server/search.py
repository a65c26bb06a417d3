"""Lexical tool search: BM25 over the fields that describe a tool, with per-field weights.

Each tool becomes a bag of terms from its name (``snake_case`` split), description, docstring, parameter
names and annotations, return annotation, and tags. Terms are lower-cased, lightly stemmed (plural and
common suffixes) so "durations" finds "parse_duration". The index is built incrementally: ``put`` and
``remove`` keep it current on every change, so nothing is rebuilt on a query.

Ranking: BM25 (k1=1.2, b=0.75) summed over fields with weights (name 3, tags 2, description 1.5,
parameters 1, docstring 1), plus a bonus when the query names the tool exactly. Deprecated tools are
multiplied by 0.5 so active ones rank first; disabled tools are never indexed.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

FIELD_WEIGHTS = {"name": 3.0, "tags": 2.0, "description": 1.5, "params": 1.0, "doc": 1.0}
K1, B = 1.2, 0.75
DEPRECATED_FACTOR = 0.5

_WORD = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
STOPWORDS = frozenset(
    "a an the of to in on for and or with by from into is are be as at it its this that these those i me my "
    "we you your how what which do does can get give turn make".split()
)


def stem(word: str) -> str:
    """A deliberately small stemmer: enough to match plurals and -ing/-ed forms of tool words."""
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "es" and not word.endswith(("ses", "xes", "zes", "ches", "shes")):
                continue
            if suffix == "s" and word.endswith("ss"):
                continue
            return word[: len(word) - len(suffix)] + keep
    return word


def terms(text: str) -> list[str]:
    text = _CAMEL.sub(" ", text).lower().replace("_", " ")
    return [stem(w) for w in _WORD.findall(text) if w not in STOPWORDS]


@dataclass(frozen=True)
class Document:
    """What search knows of one tool."""

    name: str
    description: str
    doc: str = ""
    params: str = ""
    tags: tuple[str, ...] = ()
    deprecated: bool = False

    def fields(self) -> dict[str, list[str]]:
        return {
            "name": terms(self.name),
            "tags": terms(" ".join(self.tags)),
            "description": terms(self.description),
            "params": terms(self.params),
            "doc": terms(self.doc),
        }


class SearchIndex:
    """An incrementally maintained BM25 index; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._docs: dict[str, Document] = {}
        self._tf: dict[str, dict[str, Counter[str]]] = {}
        self._lengths: dict[str, dict[str, int]] = {}
        self._df: dict[str, Counter[str]] = {f: Counter() for f in FIELD_WEIGHTS}
        self._postings: dict[str, set[str]] = defaultdict(set)
        self._total_len: dict[str, int] = dict.fromkeys(FIELD_WEIGHTS, 0)

    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, name: str) -> bool:
        return name in self._docs

    def put(self, doc: Document) -> None:
        with self._lock:
            self._remove(doc.name)
            fields = doc.fields()
            self._docs[doc.name] = doc
            self._tf[doc.name] = {}
            self._lengths[doc.name] = {}
            for field, words in fields.items():
                counts = Counter(words)
                self._tf[doc.name][field] = counts
                self._lengths[doc.name][field] = len(words)
                self._total_len[field] += len(words)
                for word in counts:
                    self._df[field][word] += 1
                    self._postings[word].add(doc.name)

    def remove(self, name: str) -> None:
        with self._lock:
            self._remove(name)

    def _remove(self, name: str) -> None:
        if name not in self._docs:
            return
        for field, counts in self._tf.pop(name).items():
            self._total_len[field] -= self._lengths[name][field]
            for word in counts:
                self._df[field][word] -= 1
                if not self._df[field][word]:
                    del self._df[field][word]
                postings = self._postings.get(word)
                if postings is not None:
                    postings.discard(name)
                    if not postings:
                        del self._postings[word]
        del self._lengths[name]
        del self._docs[name]

    def search(self, query: str, limit: int = 10) -> list[tuple[str, float]]:
        """Ranked ``(name, score)`` pairs, best first; ties broken by name."""
        words = terms(query)
        exact = query.strip().lower()
        with self._lock:
            n = len(self._docs)
            if not n:
                return []
            candidates: set[str] = set()
            for w in set(words):
                candidates |= self._postings.get(w, set())
            if exact in self._docs:
                candidates.add(exact)
            avg = {f: (self._total_len[f] / n) or 1.0 for f in FIELD_WEIGHTS}
            scores = []
            for name in candidates:
                score = 0.0
                for field, weight in FIELD_WEIGHTS.items():
                    tf = self._tf[name][field]
                    length = self._lengths[name][field]
                    for w in words:
                        f = tf.get(w)
                        if not f:
                            continue
                        df = self._df[field][w]
                        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                        score += weight * idf * f * (K1 + 1) / (f + K1 * (1 - B + B * length / avg[field]))
                if name == exact:
                    score += 10.0
                if self._docs[name].deprecated:
                    score *= DEPRECATED_FACTOR
                if score > 0:
                    scores.append((name, score))
        scores.sort(key=lambda item: (-item[1], item[0]))
        return scores[: max(0, limit)]

    def names(self) -> Iterable[str]:
        return list(self._docs)
