"""Lexical tool search: BM25F over the fields that describe a tool.

Each tool becomes a bag of terms from its name (``snake_case`` split), description, docstring, parameter
names and annotations, return annotation, and tags. Terms are lower-cased, lightly stemmed (plural and
common suffixes) so "durations" finds "parse_duration". The index is built incrementally: ``put`` and
``remove`` keep it current on every change, so nothing is rebuilt on a query.

Ranking is BM25F (k1=1.2, b=0.75): a term's frequency in each field is length-normalised and weighted
(name 3, tags 2, description 1.5, parameters 1, docstring 1), summed, saturated, and multiplied by the
term's inverse document frequency; plus a bonus when the query names the tool exactly. Deprecated tools
are multiplied by 0.5 so active ones rank first; disabled tools are never indexed.

Speed: the saturated weight of every (term, tool) pair is computed when the tool is put, so a query is
one pass of additions over the postings of its terms and a top-k selection (no per-candidate scoring
loop). Length normalisation uses the average field lengths at the time a tool is put; when those drift
by more than a quarter, every weight is recomputed once.
"""

from __future__ import annotations

import heapq
import math
import re
import threading
from collections import Counter
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
    """An incrementally maintained BM25F index; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._docs: dict[str, Document] = {}
        self._fields: dict[str, dict[str, Counter[str]]] = {}
        self._postings: dict[str, dict[str, float]] = {}
        self._total_len: dict[str, int] = dict.fromkeys(FIELD_WEIGHTS, 0)
        self._weighted_at: dict[str, float] = dict.fromkeys(FIELD_WEIGHTS, 1.0)
        self._deprecated: set[str] = set()

    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, name: str) -> bool:
        return name in self._docs

    def put(self, doc: Document) -> None:
        with self._lock:
            self._remove(doc.name)
            fields = {f: Counter(words) for f, words in doc.fields().items()}
            self._docs[doc.name] = doc
            self._fields[doc.name] = fields
            if doc.deprecated:
                self._deprecated.add(doc.name)
            for f, counts in fields.items():
                self._total_len[f] += sum(counts.values())
            if self._drifted():
                self._reweigh_all()
            else:
                self._weigh(doc.name)

    def remove(self, name: str) -> None:
        with self._lock:
            self._remove(name)

    def _remove(self, name: str) -> None:
        fields = self._fields.pop(name, None)
        if fields is None:
            return
        del self._docs[name]
        self._deprecated.discard(name)
        for f, counts in fields.items():
            self._total_len[f] -= sum(counts.values())
        for word in {w for counts in fields.values() for w in counts}:
            postings = self._postings.get(word)
            if postings is not None:
                postings.pop(name, None)
                if not postings:
                    del self._postings[word]

    def _averages(self) -> dict[str, float]:
        n = len(self._docs) or 1
        return {f: (self._total_len[f] / n) or 1.0 for f in FIELD_WEIGHTS}

    def _drifted(self) -> bool:
        avg = self._averages()
        return any(abs(avg[f] - self._weighted_at[f]) > 0.25 * self._weighted_at[f] for f in FIELD_WEIGHTS)

    def _weigh(self, name: str, avg: dict[str, float] | None = None) -> None:
        avg = avg or self._weighted_at
        fields = self._fields[name]
        combined: dict[str, float] = {}
        for f, counts in fields.items():
            length = sum(counts.values())
            norm = FIELD_WEIGHTS[f] / (1 - B + B * length / avg[f])
            for word, tf in counts.items():
                combined[word] = combined.get(word, 0.0) + tf * norm
        for word, tf in combined.items():
            self._postings.setdefault(word, {})[name] = tf / (K1 + tf)

    def _reweigh_all(self) -> None:
        self._weighted_at = self._averages()
        self._postings = {}
        for name in self._docs:
            self._weigh(name)

    def search(self, query: str, limit: int = 10) -> list[tuple[str, float]]:
        """Ranked ``(name, score)`` pairs, best first; ties broken by name."""
        words = set(terms(query))
        exact = query.strip().lower()
        with self._lock:
            n = len(self._docs)
            if not n:
                return []
            scores: dict[str, float] = {}
            get = scores.get
            for word in words:
                postings = self._postings.get(word)
                if not postings:
                    continue
                idf = math.log(1 + (n - len(postings) + 0.5) / (len(postings) + 0.5))
                for name, weight in postings.items():
                    scores[name] = get(name, 0.0) + idf * weight
            if exact in self._docs:
                scores[exact] = scores.get(exact, 0.0) + 10.0
            for name in self._deprecated & scores.keys():
                scores[name] *= DEPRECATED_FACTOR
        best = heapq.nsmallest(max(0, limit), scores.items(), key=lambda item: (-item[1], item[0]))
        return [(name, score) for name, score in best if score > 0]

    def names(self) -> Iterable[str]:
        return list(self._docs)
