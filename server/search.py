"""Tool search: BM25F over the fields that describe a tool, fused with sentence embeddings when the
optional semantic extra is installed (``server.semantic``; see ``SearchIndex._fuse``).

Each tool becomes a bag of terms from its name (``snake_case`` split), description, docstring, parameter
names and annotations, return annotation, tags, and its examples (argument names and values, expected
results: a query with concrete data often shares words only with those). Terms are lower-cased, lightly stemmed (plural and
common suffixes) so "durations" finds "parse_duration". The index is built incrementally: ``put`` and
``remove`` keep it current on every change, so nothing is rebuilt on a query.

Ranking is BM25F (k1=1.2, b=0.75): a term's frequency in each field is length-normalised and weighted
(name 3, tags 2, description 1.5, parameters 1, docstring 1, examples 0.5), summed, saturated, and multiplied by the
term's inverse document frequency; plus a bonus when the query names the tool exactly. Deprecated tools
are multiplied by 0.5 so active ones rank first; disabled tools are never indexed.

A name's abbreviations (``ABBREVIATIONS``: std, dev, avg, km...) count as their long words too, in the name
field and in the rules below, and each adjacent pair of query words also counts as one word (``mg/dL`` is
also "mgdl"), the way names write units.

Two signals tell close relatives apart. Negation: words in a negated phrase ("not the whole population",
"rather than simple interest", "don't delete them") are not evidence for a tool, and a tool whose name
carries one is halved.
Direction: for a name of the form ``a_to_b``, the words after "to/into/in/as/how many" in the query are
where it wants to end up and the words after "from" where it starts; agreeing with that multiplies the
score by 1.5 per side, contradicting it divides ("86 F in Celsius" is ``fahrenheit_to_celsius``).
Order: among the 20 best, a name whose words the query says in the same order gets a bonus.

Hybrid (with a ``SemanticIndex``): each of the 200 best lexical and 50 most similar tools scores its
cosine to the query (times the same direction/negation/deprecation factor; ignored below 0.15 when the
tool has no lexical match) plus 0.3 * s / (s + 10) of its lexical score s; then close relatives among
the first three are put in lexical order (``_order_relatives``). The constants were chosen on
the evaluation set in ``tests/search_eval`` with its queries split in two halves, picking values that were
good on both rather than best on either; the README has the figures.

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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.semantic import SemanticIndex

FIELD_WEIGHTS = {"name": 3.0, "tags": 2.0, "description": 1.5, "params": 1.0, "doc": 1.0, "examples": 0.5}
K1, B = 1.2, 0.75
DEPRECATED_FACTOR = 0.5
ORDER_WINDOW = 20
ORDER_BONUS = 1.0


# Hybrid ranking (with the semantic extra): see SearchIndex._fuse.
LEXICAL_WEIGHT = 0.3
LEXICAL_HALF = 10.0
LEXICAL_POOL = 200
SEMANTIC_POOL = 50
SEMANTIC_FLOOR = 0.15
RELATIVES_WINDOW = 3
RELATIVE_SIMILARITY = 0.5
"""Among the first ``RELATIVES_WINDOW`` hybrid results, two tools whose embeddings are at least this
similar are close relatives, ordered by their lexical scores (see ``SearchIndex._order_relatives``)."""

NEGATED_FACTOR = 0.5
DIRECTION_FACTOR = 1.5
_WORDS_AFTER = r"\s+((?:[^\s,.;:()!?]+\s*){1,2})"
_TO = re.compile(r"\b(?:to|into|in|as|how many|how much)" + _WORDS_AFTER)
_FROM = re.compile(r"\bfrom" + _WORDS_AFTER)


def direction_terms(query: str) -> tuple[set[str], set[str]]:
    """Where the query wants to end up (words after to/into/in/as/how many) and start (after from)."""
    text = query.lower()
    return ({w for m in _TO.finditer(text) for w in with_compounds(terms(m.group(1)))},
            {w for m in _FROM.finditer(text) for w in with_compounds(terms(m.group(1)))})


def _name_ends(name: str) -> tuple[set[str], set[str]] | None:
    """``a_to_b`` -> (terms of a, terms of b); None for a name that is not a conversion."""
    parts = name.split("_to_", 1)
    if len(parts) != 2:
        return None
    return (set().union(*name_words(parts[0])), set().union(*name_words(parts[1])))
_NEGATION = re.compile(
    r"\b(?:not|rather than|instead of|other than|except|excluding|never|don't|doesn't|no longer)\b([^,.;:()!?]*)")


def negated_terms(query: str) -> set[str]:
    """Terms the query rules out ("..., not the whole population", "rather than simple interest"): the
    words of a negated phrase (up to the next punctuation) that the query does not also use outside one."""
    text = query.lower()
    inside = [w for m in _NEGATION.finditer(text) for w in terms(m.group(1))]
    outside = set(terms(_NEGATION.sub(" ", text)))
    return {w for w in inside if w not in outside}


def _in_order(name_words: list[frozenset[str]], query_terms: list[str]) -> float:
    """Share of the name's consecutive word pairs found in the query in the same order (0 to 1); a name
    word is found when the query says it or its expansion (``name_words``)."""
    pairs = [(a, b) for a, b in zip(name_words, name_words[1:]) if a != b]
    if not pairs:
        return 0.0
    first: dict[str, int] = {}
    for i, word in enumerate(query_terms):
        first.setdefault(word, i)

    def at(word: frozenset[str]) -> int | None:
        return min((first[w] for w in word if w in first), default=None)

    hits = 0
    for a, b in pairs:
        i, j = at(a), at(b)
        hits += i is not None and j is not None and i < j
    return hits / len(pairs)

_WORD = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
STOPWORDS = frozenset(
    "a an the of to in on for and or with by from into is are be as at it its this that these those i me my "
    "we you your they them their how what which do does can get give turn make".split()
)


def stem(word: str) -> str:
    """A deliberately small stemmer: enough to match plurals and -ing/-ed forms of tool words."""
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "es" and not word.endswith(("ses", "xes", "zes", "ches", "shes")):
                continue
            if suffix == "s" and word.endswith(("ss", "us", "is")):  # class, celsius, analysis
                continue
            return word[: len(word) - len(suffix)] + keep
    return word


def terms(text: str) -> list[str]:
    text = _CAMEL.sub(" ", text).lower().replace("_", " ")
    return [stem(w) for w in _WORD.findall(text) if w not in STOPWORDS]


def with_compounds(words: list[str]) -> list[str]:
    """The words, plus each adjacent pair written as one word: a query's "mg/dL" or "km/h" is then
    also "mgdl" or "kmh", the way tool names write them (``glucose_mmol_to_mgdl``)."""
    out = []
    for i, word in enumerate(words):
        out.append(word)
        if i + 1 < len(words):
            out.append(word + words[i + 1])
    return out


ABBREVIATIONS = {
    "std": "standard", "dev": "deviation", "avg": "average", "num": "number", "str": "string",
    "int": "integer", "pct": "percent", "temp": "temperature", "km": "kilometer", "kg": "kilogram",
    "lb": "pound", "ft": "foot", "cm": "centimeter", "mm": "millimeter", "ml": "milliliter", "mi": "mile",
    "sec": "second", "hr": "hour", "qty": "quantity", "addr": "address", "msg": "message",
    "char": "character", "img": "image", "len": "length", "idx": "index", "dir": "directory",
    "env": "environment", "cfg": "config", "db": "database", "ts": "timestamp", "tz": "timezone",
    "fmt": "format", "calc": "calculate", "dict": "dictionary", "arr": "array", "pwd": "password",
    "max": "maximum", "min": "minimum", "prev": "previous", "auth": "authentication",
}
"""Short forms common in identifiers, with the word a person writes (both stemmed by ``terms``). A tool
named ``sample_std_dev`` is then also named "sample standard deviation" for search."""


def name_words(name: str) -> list[frozenset[str]]:
    """The terms of a tool's name, each with its expansion when it is an abbreviation."""
    out = []
    for word in terms(name):
        long = ABBREVIATIONS.get(word)
        out.append(frozenset((word, stem(long))) if long else frozenset((word,)))
    return out


@dataclass(frozen=True)
class Document:
    """What search knows of one tool."""

    name: str
    description: str
    doc: str = ""
    params: str = ""
    tags: tuple[str, ...] = ()
    deprecated: bool = False
    examples: str = ""

    def semantic_text(self) -> str:
        """What the semantic ranker embeds: the words that say what the tool is for."""
        parts = [self.name.replace("_", " ") + ":", self.description, self.doc, " ".join(self.tags)]
        return " ".join(part for part in parts if part)

    def fields(self) -> dict[str, list[str]]:
        return {
            "name": [w for word in name_words(self.name) for w in sorted(word)],
            "tags": terms(" ".join(self.tags)),
            "description": terms(self.description),
            "params": terms(self.params),
            "doc": terms(self.doc),
            "examples": terms(self.examples),
        }


class SearchIndex:
    """An incrementally maintained BM25F index, fused with a ``SemanticIndex`` when given one; thread-safe."""

    def __init__(self, semantic: SemanticIndex | None = None) -> None:
        self.semantic = semantic
        self._lock = threading.Lock()
        self._docs: dict[str, Document] = {}
        self._fields: dict[str, dict[str, Counter[str]]] = {}
        self._postings: dict[str, dict[str, float]] = {}
        self._total_len: dict[str, int] = dict.fromkeys(FIELD_WEIGHTS, 0)
        self._weighted_at: dict[str, float] = dict.fromkeys(FIELD_WEIGHTS, 1.0)
        self._deprecated: set[str] = set()
        self._name_words: dict[str, list[frozenset[str]]] = {}
        self._name_terms: dict[str, set[str]] = {}  # the union of _name_words: one set test per candidate
        self._name_ends: dict[str, tuple[set[str], set[str]]] = {}

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
            self._name_words[doc.name] = name_words(doc.name)
            self._name_terms[doc.name] = set().union(*self._name_words[doc.name])
            ends = _name_ends(doc.name)
            if ends is not None:
                self._name_ends[doc.name] = ends
            if doc.deprecated:
                self._deprecated.add(doc.name)
            for f, counts in fields.items():
                self._total_len[f] += sum(counts.values())
            if self._drifted():
                self._reweigh_all()
            else:
                self._weigh(doc.name)
        if self.semantic is not None:
            self.semantic.put(doc.name, doc.semantic_text())

    def remove(self, name: str) -> None:
        with self._lock:
            self._remove(name)
        if self.semantic is not None:
            self.semantic.remove(name)

    def _remove(self, name: str) -> None:
        fields = self._fields.pop(name, None)
        if fields is None:
            return
        del self._docs[name]
        self._name_terms.pop(name, None)
        self._name_words.pop(name, None)
        self._name_ends.pop(name, None)
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

    def search(self, query: str, limit: int = 10, *, semantic: bool = True) -> list[tuple[str, float]]:
        """Ranked ``(name, score)`` pairs, best first; ties broken by name. ``semantic=False`` ranks
        lexically even when a semantic index is attached."""
        negated = negated_terms(query)
        query_rules = (*direction_terms(query), negated)
        ordered_query = [w for w in with_compounds(terms(query)) if w not in negated]
        words = set(ordered_query)
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
            # Direction: among the best candidates, prefer a name whose words the query says in the same
            # order ("celsius to fahrenheit" is celsius_to_fahrenheit, not fahrenheit_to_celsius).
            for name, _score in heapq.nsmallest(ORDER_WINDOW, scores.items(), key=lambda item: (-item[1], item[0])):
                scores[name] += ORDER_BONUS * _in_order(self._name_words[name], ordered_query)
            if any(query_rules):
                for name in scores:
                    scores[name] *= self._factor(name, query_rules)
            else:  # the common case, kept to a set intersection
                for name in self._deprecated & scores.keys():
                    scores[name] *= DEPRECATED_FACTOR
        lexical = scores
        if self.semantic is not None and semantic:
            scores = self._fuse(query, exact, scores, query_rules)
        best = heapq.nsmallest(max(0, limit), scores.items(), key=lambda item: (-item[1], item[0]))
        best = [(name, score) for name, score in best if score > 0]
        if scores is not lexical and exact not in self._docs:
            best[:RELATIVES_WINDOW] = self._order_relatives(best[:RELATIVES_WINDOW], lexical)
        return best

    def _order_relatives(self, head: list[tuple[str, float]], lexical: dict[str, float]) -> list[tuple[str, float]]:
        """Close relatives among the first hybrid results, in the order of their lexical scores.

        Relatives (``celsius_to_fahrenheit`` and ``fahrenheit_to_celsius``, sample and population
        variance) embed almost alike, so their cosines say little about which one the query means, while
        the words that tell them apart ("not per kilometer", "weekends included") and the direction and
        negation rules are in the lexical score. So the head is rebuilt in fused order, except that
        where the next tool has a waiting relative (embeddings at least ``RELATIVE_SIMILARITY`` similar)
        with a higher lexical score, that relative comes first. Scores stay with their positions, so
        they still descend."""
        assert self.semantic is not None
        names = [name for name, _ in head]
        sims = self.semantic.similarities(names)

        def related(a: str, b: str) -> bool:
            return max(sims.get((a, b), 0.0), sims.get((b, a), 0.0)) >= RELATIVE_SIMILARITY

        waiting = list(names)
        ordered = []
        while waiting:
            first = waiting[0]
            group = [name for name in waiting if name == first or related(first, name)]
            pick = max(group, key=lambda name: (lexical.get(name, 0.0), -waiting.index(name)))
            ordered.append(pick)
            waiting.remove(pick)
        return [(name, score) for name, (_, score) in zip(ordered, head)]

    def _factor(self, name: str, rules: tuple[set[str], set[str], set[str]]) -> float:
        """Direction, negation and deprecation: how much a tool's score is multiplied by for this query."""
        wanted_to, wanted_from, negated = rules
        factor = DEPRECATED_FACTOR if name in self._deprecated else 1.0
        ends = self._name_ends.get(name)
        if ends is not None and (wanted_to or wanted_from):  # "86 F in Celsius" is fahrenheit_to_celsius
            source, target = ends
            agree = bool(wanted_to & target) + bool(wanted_from & source)
            contradict = bool(wanted_to & source) + bool(wanted_from & target)
            factor *= DIRECTION_FACTOR ** (agree - contradict)
        if negated and negated.intersection(self._name_terms[name]):  # "sample, not population"
            factor *= NEGATED_FACTOR
        return factor

    def _fuse(self, query: str, exact: str, lexical: dict[str, float],
              rules: tuple[set[str], set[str], set[str]]) -> dict[str, float]:
        """Hybrid score, over the best lexical and the best semantic candidates: the query-tool cosine
        (when at least ``SEMANTIC_FLOOR``) times the tool's direction/negation/deprecation factor, plus
        ``LEXICAL_WEIGHT * s / (s + LEXICAL_HALF)`` of its BM25F score ``s`` above (which has the factor
        already); an exact name still wins. Without the model (not installed, still loading): lexical."""
        top_lexical = heapq.nsmallest(LEXICAL_POOL, lexical.items(), key=lambda item: (-item[1], item[0]))
        assert self.semantic is not None
        cosines = self.semantic.scores(query, SEMANTIC_POOL, include=[name for name, _ in top_lexical])
        if not cosines:
            return lexical
        fused = {name: LEXICAL_WEIGHT * s / (s + LEXICAL_HALF) for name, s in top_lexical}
        with self._lock:
            for name, cosine in cosines.items():
                if name in self._docs and (cosine >= SEMANTIC_FLOOR or name in fused):
                    fused[name] = fused.get(name, 0.0) + max(cosine, 0.0) * self._factor(name, rules)
            if exact in self._docs:
                fused[exact] = fused.get(exact, 0.0) + 1.0
        return fused

    def names(self) -> Iterable[str]:
        return list(self._docs)
