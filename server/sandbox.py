"""The sandbox: every execution of agent-written code goes through here, and none of it runs in this process.

Cairn runs code an LLM wrote, again and again, on arguments from other agents. Two layers stand between
that code and the host, and this module owns both (it is the only server module that imports
RestrictedPython; the worker program is ``server/sandbox_worker.py``):

1. **RestrictedPython** compiles the code so that attribute, item, iteration and write operations call
   guard hooks we supply (``_getattr_`` is ``safer_getattr``: no ``_`` names, no frame/code/generator
   internals, ``str.format`` field lookups guarded too; ``_write_`` lets code change only dicts, lists,
   sets and objects of its own classes). Builtins are an allow-list (no ``type``, ``getattr``, ``vars``,
   ``dir``, ``globals``, ``open``, ``eval``, ``exec``, ``compile``, ``__import__``...), and ``import``
   hands out hand-written wrapper objects with exactly the functions offered (``ALLOWED_MODULES``),
   never a real module. RestrictedPython's own README says it is not a sandbox on its own; hence:

2. **Process isolation.** A pool of pre-started worker processes (``python -I``, empty environment,
   fresh empty temp directory as cwd, own process group, nothing of ``mcp`` or ``server`` imported).
   Before any tool code runs, each worker sets rlimits (address space, CPU seconds, file size 0, a few
   open files, no core files, no new processes), and on Linux moves into an empty network namespace,
   sets ``no_new_privs`` and, when started as root, becomes ``nobody``. Per call it arms a CPU timer
   (``ITIMER_PROF``) that ends the process even inside a long C call. From here, every request has a
   wall-clock deadline (``poll`` on the pipe); past it, the worker's process group is killed with
   SIGKILL, reaped, and replaced in the background while the other pooled workers keep serving.

What each piece is for:

* fresh globals, a fresh function object and fresh builtins for every call, and only read-only module
  wrappers shared: no state (a mutable default, a ``global``, ``math.pi = 3``) survives to the next call;
  ``random`` is a new ``random.Random`` per call and the ``decimal`` context is reset;
* JSON in, JSON out: the worker turns the result into JSON from exact types only, so this process only
  ever holds plain decoded data, never an object whose ``__eq__`` or ``items()`` tool code wrote;
* caps on source size and nesting (compile bombs), argument size, result size and depth, printed output
  and error text. Compiling happens in a worker too, as a request of its own under ``COMPILE_LIMITS``
  (workers cache code objects by source sha256, never globals), so a call's limits cover only running;
* workers are recycled after any limit hit, a crash, a protocol violation, large memory growth, or
  ``worker_max_calls`` calls. A killed worker's replacement starts in the background at once.

Before RestrictedPython sees the code, the worker rewrites two forms it refuses but LLM code uses all
the time: ``x: T = v`` becomes ``x = v``, and for simple targets ``d[k] += v`` / ``self.n += v`` become
``d[k] = d[k] + v``. The result is checked like any other code (see ``sandbox_worker._Desugar``).

Linux-only: the network namespace, ``no_new_privs``, ``RLIMIT_NPROC`` as a fork barrier (for a non-root
user) and dropping root. On macOS ``RLIMIT_AS`` is accepted but not enforced, so memory is bounded only
by the CPU and wall limits there. Windows is not supported (no ``resource``, ``killpg`` or ``ITIMER_PROF``).
``platform_protections()`` reports what is active on this machine; the README's security section says what the
sandbox does not protect against.

Errors (all from ``server.errors``): ``SubmissionRejected`` (the code does not compile, every problem as
``Line N: ...``), ``ToolRaised`` (the code raised; ``ZeroDivisionError: division by zero (line 3)``),
``LimitExceeded`` with ``kind`` ``timeout``, ``cpu``, ``memory``, ``result``, ``arguments`` or ``crash``, and
``SandboxUnavailable`` (a worker would not start or broke the protocol). Every ``ToolFailed`` from here
also carries ``printed`` (what the code printed before it failed; empty if the worker was killed), and a
``ToolRaised`` carries ``type_names`` (the exception's class and base-class names), ``where``
(``"tool"``, ``"tests"`` or ``"snippet"``) and ``tests_line``. Messages never contain host paths or host
tracebacks.

Memory limits are per worker (``RLIMIT_AS`` is set once, before tool code runs). A call whose
``limits.memory_mib`` differs from the pool's gets a dedicated worker started for it and discarded after.

The API is synchronous and thread-safe, plus one coroutine for the server's hot path:
``call_async`` serves a call on an idle worker that has already compiled the tool by writing the
request and awaiting the pipe on the event loop (a hop to a thread and back costs about as much as
the pipe round trip itself); in every other case it declines and the caller uses ``call``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from server.config import Limits
from server.errors import LimitExceeded, SandboxUnavailable, SubmissionRejected, ToolFailed, ToolRaised
from server.models import NO_VALUE, CallOutcome, CaseResult, CheckReport, Example, SnippetResult
from server.sandbox_worker import (
    ALLOWED_MODULES,
    EXIT_OUT_OF_MEMORY,
    EXIT_PROTOCOL,
    MAX_SOURCE_BYTES,
    PROTOCOL_VERSION,
    SNIPPET_FILE,
    TESTS_FILE,
    TOOL_FILE,
    format_bytes,
    format_seconds,
)

__all__ = ["ALLOWED_MODULES", "POLICY_VERSION", "Sandbox"]

POLICY_VERSION = 1
"""Bumped whenever the restriction policy (guards, builtins, module wrappers) changes; stored per tool."""

WORKER_PATH = Path(__file__).with_name("sandbox_worker.py")
STARTUP_TIMEOUT = 30.0
"""Seconds a new worker may take to import and lock itself down (about 0.1 s on a warm machine)."""
COMPILE_LIMITS = Limits(cpu_seconds=5.0, wall_seconds=15.0)
"""CPU and wall budget for compiling one request's sources (a 64 KiB source compiles in well under a
second). Compiling is a request of its own, so a call's limits cover only running the code."""

log = logging.getLogger("cairn.sandbox")


class _Died(Exception):
    """The worker's pipe closed: it exited or was killed."""


class _Timeout(Exception):
    """The deadline passed before the worker answered."""


class _Broken(Exception):
    """The worker sent something that is not a valid frame."""


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


# ---------------------------------------------------------------------------------------------------
# One worker process


class _Worker:
    """A running ``sandbox_worker.py``: its pipes, a read buffer, and what the server knows about it."""

    def __init__(self, memory_mib: int, cpu_budget: int) -> None:
        self.memory_mib = memory_mib
        self.dedicated = False
        self.calls = 0
        self.known: set[str] = set()  # source hashes sent to (and so cached by) this worker
        self.protections: dict[str, bool] = {}
        self.buf = bytearray()
        self.tmp = tempfile.mkdtemp(prefix="cairn-worker-")
        config = json.dumps({"memory_mib": memory_mib, "cpu_budget": cpu_budget})
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", str(WORKER_PATH), config],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,  # read only if startup fails; the worker points fd 2 at /dev/null
                env={},
                cwd=self.tmp,
                start_new_session=True,  # its own process group, so killpg takes everything it started
                close_fds=True,
                bufsize=0,
            )
        except OSError as exc:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise SandboxUnavailable(f"could not start a sandbox worker: {exc.strerror}") from None
        assert self.proc.stdin and self.proc.stdout
        self.wfd = self.proc.stdin.fileno()
        self.rfd = self.proc.stdout.fileno()
        os.set_blocking(self.wfd, False)
        os.set_blocking(self.rfd, False)
        self.reader = select.poll()
        self.reader.register(self.rfd, select.POLLIN)
        self.writer: Any = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Block until the worker reports that it is locked down and ready."""
        try:
            hello = json.loads(self.read_frame(time.monotonic() + timeout, 1 << 20))
            if not hello.get("ready") or hello.get("protocol") != PROTOCOL_VERSION:
                raise _Broken(f"unexpected greeting {hello!r}")
        except (_Died, _Timeout, _Broken, ValueError) as exc:
            detail = self._startup_stderr()
            self.kill()
            log.error("sandbox worker failed to start (%s, exit status %s): %s", type(exc).__name__,
                      self.proc.returncode, detail)
            raise SandboxUnavailable("a sandbox worker failed to start; the server log has the details") from None
        self.protections = dict(hello.get("protections", {}))
        if self.proc.stderr:
            self.proc.stderr.close()
        # the worker holds its cwd open; removing the directory now means nothing is left behind in
        # /tmp even if this process is killed later (the worker keeps an empty, unlinked cwd)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _startup_stderr(self) -> str:
        if not self.proc.stderr:
            return ""
        try:
            os.set_blocking(self.proc.stderr.fileno(), False)
            return (self.proc.stderr.read(8192) or b"").decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    # -- framing with a deadline --------------------------------------------------------------------

    def write_frame(self, body: bytes, deadline: float) -> None:
        data = memoryview(len(body).to_bytes(4, "big") + body)
        while data:
            try:
                n = os.write(self.wfd, data)
                data = data[n:]
                continue
            except BlockingIOError:
                pass
            except (BrokenPipeError, OSError):
                raise _Died from None
            if self.writer is None:
                self.writer = select.poll()
                self.writer.register(self.wfd, select.POLLOUT)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Timeout
            self.writer.poll(max(1, math.ceil(remaining * 1000)))

    def read_frame(self, deadline: float, max_bytes: int) -> bytes:
        """One reply frame, or _Timeout at ``deadline``.

        The caller sleeps in ``poll`` while the worker runs. (Spinning on the pipe instead was measured
        and rejected: it saved a little on trivial calls and cost 50 to 200 µs on calls that do work,
        because the spinner competes with the worker for the CPU.)"""
        while True:
            body = self._take_frame(max_bytes)
            if body is not None:
                return body
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Timeout
            if self.reader.poll(max(1, math.ceil(remaining * 1000))):
                self._read_some()

    def _take_frame(self, max_bytes: int) -> bytes | None:
        """The next whole frame from the read buffer, or None if it has not all arrived."""
        buf = self.buf
        if len(buf) >= 4:
            n = int.from_bytes(buf[:4], "big")
            if n > max_bytes:
                raise _Broken(f"reply of {n} bytes exceeds {max_bytes}")
            if len(buf) >= 4 + n:
                body = bytes(buf[4:4 + n])
                del buf[:4 + n]
                return body
        return None

    def _read_some(self) -> None:
        try:
            chunk = os.read(self.rfd, 1 << 16)  # 64 KiB: larger reads cost an mmap per call
        except BlockingIOError:
            return
        except OSError:
            raise _Died from None
        if not chunk:
            raise _Died
        self.buf += chunk

    # -- the same on an event loop (the caller bounds it with a deadline) ---------------------------

    async def write_frame_async(self, body: bytes) -> None:
        data = memoryview(len(body).to_bytes(4, "big") + body)
        while data:
            try:
                data = data[os.write(self.wfd, data):]
                continue
            except BlockingIOError:
                pass
            except OSError:
                raise _Died from None
            await anyio.wait_writable(self.wfd)

    async def read_frame_async(self, max_bytes: int) -> bytes:
        while True:
            body = self._take_frame(max_bytes)
            if body is not None:
                return body
            await anyio.wait_readable(self.rfd)
            self._read_some()

    # -- ending -------------------------------------------------------------------------------------

    def alive(self) -> bool:
        return self.proc.poll() is None

    def reap(self, timeout: float = 2.0) -> int | None:
        """After EOF: wait briefly for the exit status; kill if it lingers."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """SIGKILL the whole process group, reap, and remove the temp directory. Idempotent."""
        if self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # start_new_session: pgid == pid
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not fail
                log.error("sandbox worker %s did not die after SIGKILL", self.proc.pid)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def _kill_all(workers: set[_Worker]) -> None:
    for worker in list(workers):
        worker.kill()
    workers.clear()


# ---------------------------------------------------------------------------------------------------
# The public API


class Sandbox:
    """A pool of sandbox workers and the operations Cairn runs in them. Synchronous and thread-safe:
    up to ``pool_size`` calls run at once; more wait for an idle worker."""

    def __init__(self, limits: Limits = Limits(), pool_size: int = 2, worker_max_calls: int = 500) -> None:
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size}")
        if worker_max_calls < 1:
            raise ValueError(f"worker_max_calls must be at least 1, got {worker_max_calls}")
        self.limits = limits
        self.pool_size = pool_size
        self.worker_max_calls = worker_max_calls
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._live: set[_Worker] = set()  # every pooled or dedicated worker not yet killed
        self._starting = 0
        self._closed = False
        self._dedicated = threading.BoundedSemaphore(pool_size)
        self._hashes: dict[str, str] = {}
        self._protections: dict[str, bool] | None = None
        # CPU seconds a worker may use over its life before it retires (RLIMIT_CPU hard limit)
        self._cpu_budget = int(max(600, 2 * worker_max_calls * limits.cpu_seconds + 60))
        self._finalizer = weakref.finalize(self, _kill_all, self._live)

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the pool's workers now (otherwise they start on first use)."""
        with self._cond:
            if self._closed:
                raise SandboxUnavailable("the sandbox is closed")
            n = self.pool_size - self._pooled() - self._starting
            self._starting += max(0, n)
        started = []
        try:
            started = [_Worker(self.limits.memory_mib, self._cpu_budget) for _ in range(max(0, n))]
            for worker in started:
                worker.wait_ready()
        except BaseException:
            for worker in started:
                worker.kill()
            with self._cond:
                self._starting -= max(0, n)
                self._cond.notify_all()
            raise
        with self._cond:
            self._starting -= len(started)
            for worker in started:
                self._adopt(worker)
            self._cond.notify_all()

    def close(self) -> None:
        """Kill every worker. Idempotent; calls in flight fail with SandboxUnavailable."""
        with self._cond:
            self._closed = True
            workers = list(self._live)
            self._live.clear()
            self._idle.clear()
            self._cond.notify_all()
        for worker in workers:
            worker.kill()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def platform_protections(self) -> dict[str, bool]:
        """Which protections are active on this machine, as a worker reported them at startup, plus
        the two that are always on (the server's wall-clock deadline, RestrictedPython)."""
        if self._protections is None:
            with self._lease(self.limits) as lease:
                lease._get()
        report = dict(self._protections or {})
        report["wall_clock_timeout"] = True
        report["restricted_python"] = True
        return report

    # -- compile ------------------------------------------------------------------------------------

    def compile_problems(self, source: str, filename: str = "tool.py") -> list[str]:
        """Every problem with ``source`` as ``Line N: ...`` (an empty list when it compiles). Compiled in
        a worker, under its limits. A ``filename`` naming a test file (``test*.py``/``tests.py``) is
        compiled as a tests source; the name appears nowhere in the problems."""
        kind = TESTS_FILE if Path(filename).name.startswith("test") else TOOL_FILE
        problems, _tests = self._compile([(kind, source)], self.limits)
        return problems.get(kind, [])

    def _compile(self, sources: list[tuple[str, str]], limits: Limits) -> tuple[dict[str, list[str]], list[str]]:
        """Problems per source kind, and the ``test_*`` names of a tests source."""
        problems: dict[str, list[str]] = {}
        tests: list[str] = []
        todo = []
        for kind, source in sources:
            too_big = self._size_problem(source)
            if too_big:
                problems[kind] = [too_big]
            else:
                todo.append((kind, source))
        if todo:
            with self._lease(limits) as lease:
                found, tests = lease.compile([(kind, self._hash(src), src) for kind, src in todo])
            problems.update(found)
        return problems, tests

    @staticmethod
    def _size_problem(source: str) -> str | None:
        if type(source) is not str:
            raise TypeError(f"source must be a str, not {type(source).__name__}")
        size = _utf8_size(source)
        if size > MAX_SOURCE_BYTES:
            return f"Line 1: the source is {format_bytes(size)}, more than the {format_bytes(MAX_SOURCE_BYTES)} limit"
        return None

    def _hash(self, source: str) -> str:
        sha = self._hashes.get(source)
        if sha is None:
            sha = _sha(source)
            if len(self._hashes) >= 256:  # sources are up to 64 KiB each: keep this small
                self._hashes.clear()
            self._hashes[source] = sha
        return sha

    # -- run ----------------------------------------------------------------------------------------

    def call(self, source: str, function: str, args: dict[str, Any], *, limits: Limits | None = None) -> CallOutcome:
        """Compile (cached per worker), exec in fresh guarded globals, call ``function(**args)``, and
        return the JSON value and what was printed. Raises ``ToolRaised``, ``LimitExceeded``,
        ``SubmissionRejected`` or ``SandboxUnavailable``."""
        limits = limits or self.limits
        request, sources = self._call_request(source, function, args, limits)
        with self._lease(limits) as lease:
            return self._outcome(lease.request(request, sources))

    async def call_async(self, source: str, function: str, args: dict[str, Any], *,
                         limits: Limits | None = None) -> CallOutcome | None:
        """``call`` for an event loop, in the common case only: an idle pooled worker that has already
        compiled ``source``. The request is written and the reply awaited on the loop itself (a thread
        hop costs as much as the pipe round trip). Returns None, having done nothing, when that case
        does not hold (no such worker, a dedicated worker needed, the source evicted, the worker
        retiring): the caller then runs ``call`` in a thread, which waits, compiles and retries.
        Raises what ``call`` raises. Cancelled mid-call, the worker is killed (its reply is owed)."""
        limits = limits or self.limits
        if limits.memory_mib != self.limits.memory_mib:
            return None
        request, sources = self._call_request(source, function, args, limits)
        sha = sources[0][1]
        worker = self._take_idle(sha)
        if worker is None:
            return None
        lease = _Lease(self, limits)
        lease.worker = worker
        reply = None
        try:
            reply = await lease.send_async(worker, request, limits)
        finally:
            if reply is None and lease.worker is not None:  # cancelled while the worker runs
                lease.discard = True
                threading.Thread(target=lease.release, name="cairn-sandbox-drop", daemon=True).start()
        if reply is None:
            return None
        if reply.get("need_source"):
            worker.known.discard(sha)
            lease.release()
            return None
        if reply.get("retire"):
            lease.discard = True
        if self._ends_on_release(worker, lease.discard):
            await anyio.to_thread.run_sync(lease.release)  # kills and replaces it: not on the loop
        else:
            lease.release()
        if reply.get("retire"):
            return None
        return self._outcome(reply)

    def _take_idle(self, sha: str) -> _Worker | None:
        """Without waiting: the most recently used idle worker that has compiled ``sha``."""
        with self._cond:
            if self._closed:
                return None
            for i in range(len(self._idle) - 1, -1, -1):
                worker = self._idle[i]
                if sha in worker.known and worker.alive():
                    del self._idle[i]
                    return worker
        return None

    def run_snippet(self, code: str, *, limits: Limits | None = None) -> SnippetResult:
        """``run_code``: execute ``code`` once in fresh globals; return what it printed and the JSON value
        of a final expression statement (None without one). Nothing is kept."""
        limits = limits or self.limits
        too_big = self._size_problem(code)
        if too_big:
            raise SubmissionRejected([too_big], summary="the code was not run")
        sha = self._hash(code)
        request = {"op": "snippet", "sha": sha, "cpu": limits.cpu_seconds, "result_bytes": limits.result_bytes,
                   "output_bytes": limits.output_bytes}
        with self._lease(limits) as lease:
            outcome = self._outcome(lease.request(request, [(SNIPPET_FILE, sha, code)]))
        return SnippetResult(printed=outcome.printed, result=outcome.value)

    def check(
        self,
        source: str,
        function: str,
        examples: Sequence[Example],
        tests: str | None = None,
        *,
        limits: Limits | None = None,
    ) -> CheckReport:
        """Run every example and every top-level ``def test_*`` of ``tests`` (each test in fresh globals
        holding the tool's names); one ``CaseResult`` per case, with a detail an agent can act on. A case
        that hits a limit fails on its own; the others still run. Compile problems of the tool or the
        tests raise ``SubmissionRejected`` with all of them."""
        limits = limits or self.limits
        sources = [(TOOL_FILE, source)] + ([(TESTS_FILE, tests)] if tests is not None else [])
        problems, test_names = self._compile(sources, limits)
        listed = list(problems.get(TOOL_FILE, [])) + [f"tests: {p}" for p in problems.get(TESTS_FILE, [])]
        if tests is not None and TESTS_FILE not in problems and not test_names:
            listed.append("tests: define at least one top-level function named test_... (none found)")
        if listed:
            raise SubmissionRejected(listed, summary="the code or its tests do not compile")
        cases: list[CaseResult] = []
        with self._lease(limits) as lease:
            for i, example in enumerate(examples):
                cases.append(self._run_example(lease, source, function, i, example, limits))
            if tests is not None:
                tests_lines = tests.splitlines()
                for j, name in enumerate(test_names):
                    cases.append(self._run_test(lease, source, tests, tests_lines, j, name, limits))
        return CheckReport(tuple(cases))

    # -- check helpers ------------------------------------------------------------------------------

    def _run_example(self, lease: _Lease, source: str, function: str, i: int, example: Example,
                     limits: Limits) -> CaseResult:
        name, label = f"example[{i}]", example.label(i)
        try:
            request, sources = self._call_request(source, function, example.args, limits)
            outcome = self._outcome(lease.request(request, sources))
        except ToolRaised as exc:
            if example.raises is not None and example.raises in getattr(exc, "type_names", ()):
                return CaseResult("example", i, name, True)
            expected = (f"expected {example.raises}" if example.raises is not None
                        else f"expected {_show(example.expected)}")
            return CaseResult("example", i, name, False, f"{label}: {expected}, raised {exc}")
        except (LimitExceeded, SubmissionRejected) as exc:
            return CaseResult("example", i, name, False, f"{label}: {exc}")
        if example.raises is not None:
            return CaseResult("example", i, name, False,
                              f"{label}: expected {example.raises} to be raised, got {_show(outcome.value)}")
        if example.expected is NO_VALUE:
            return CaseResult("example", i, name, False, f"{label}: declares neither expected nor raises")
        if _same(example.expected, outcome.value):
            return CaseResult("example", i, name, True)
        return CaseResult("example", i, name, False,
                          f"{label}: expected {_show(example.expected)}, got {_show(outcome.value)}")

    def _run_test(self, lease: _Lease, source: str, tests: str, tests_lines: list[str], j: int, name: str,
                  limits: Limits) -> CaseResult:
        sha, tests_sha = self._hash(source), self._hash(tests)
        request = {"op": "test", "sha": sha, "tests_sha": tests_sha, "function": name,
                   "cpu": limits.cpu_seconds, "output_bytes": limits.output_bytes}
        try:
            self._outcome(lease.request(request, [(TOOL_FILE, sha, source), (TESTS_FILE, tests_sha, tests)]))
        except ToolRaised as exc:
            where = _test_location(getattr(exc, "where", None), exc.line, getattr(exc, "tests_line", None),
                                   tests_lines)
            text = f"{exc.type_name}: {exc.message}" if exc.message else exc.type_name
            return CaseResult("test", j, name, False, f"{name}: {text}{where}")
        except (LimitExceeded, SubmissionRejected) as exc:
            return CaseResult("test", j, name, False, f"{name}: {exc}")
        return CaseResult("test", j, name, True)

    # -- requests and replies -----------------------------------------------------------------------

    def _call_request(self, source: str, function: str, args: dict[str, Any],
                      limits: Limits) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
        """The ``call`` request (arguments already encoded) and the source it needs compiled."""
        if not isinstance(args, dict):
            raise TypeError(f"args must be a dict, not {type(args).__name__}")
        too_big = self._size_problem(source)
        if too_big:
            raise SubmissionRejected([too_big], summary="the code was not run")
        args_json = json.dumps(args, allow_nan=False)  # ASCII: never shorter than the UTF-8 size
        if len(args_json) > limits.argument_bytes:
            size = _utf8_size(json.dumps(args, ensure_ascii=False))
            if size > limits.argument_bytes:
                raise _Lease._failed(LimitExceeded(
                    "arguments", f"arguments too large: {format_bytes(size)} > {format_bytes(limits.argument_bytes)}"))
        sha = self._hash(source)
        request = {"op": "call", "sha": sha, "function": function, "args_json": args_json,
                   "cpu": limits.cpu_seconds, "result_bytes": limits.result_bytes, "output_bytes": limits.output_bytes}
        return request, [(TOOL_FILE, sha, source)]

    @staticmethod
    def _outcome(reply: dict[str, Any]) -> CallOutcome:
        if reply.get("ok"):
            return CallOutcome(value=reply.get("value"), printed=reply.get("printed", ""))
        error = reply.get("error") or {}
        kind = error.get("kind")
        exc: Exception
        if kind == "raised":
            exc = ToolRaised(str(error.get("type", "Error")), str(error.get("message", "")), error.get("line"))
            exc.type_names = list(error.get("names", [exc.type_name]))
            exc.where = error.get("where")
            exc.tests_line = error.get("tests_line")
        elif kind == "limit":
            exc = LimitExceeded(str(error.get("limit")), str(error.get("message")))
        elif kind == "rejected":
            prefix = "tests: " if error.get("where") == TESTS_FILE else ""
            exc = SubmissionRejected([prefix + p for p in error.get("problems", [])], summary="the code was not run")
        else:
            log.error("sandbox worker failed internally: %s", error.get("message"))
            raise SandboxUnavailable("the sandbox worker failed internally; it was replaced")
        if isinstance(exc, ToolFailed):
            exc.printed = reply.get("printed", "")
        raise exc

    # -- the pool -----------------------------------------------------------------------------------

    @contextmanager
    def _lease(self, limits: Limits) -> Iterator[_Lease]:
        lease = _Lease(self, limits)
        try:
            yield lease
        finally:
            lease.release()

    def _adopt(self, worker: _Worker) -> None:
        """Under the lock: a ready worker joins the pool."""
        self._live.add(worker)
        self._idle.append(worker)
        self._note_protections(worker)

    def _note_protections(self, worker: _Worker) -> None:
        if self._protections is None:
            self._protections = worker.protections
            active = sorted(k for k, v in worker.protections.items() if v)
            missing = sorted(k for k, v in worker.protections.items() if not v)
            log.info("sandbox protections active: %s; not available here: %s", ", ".join(active),
                     ", ".join(missing) or "none")

    def _acquire(self, memory_mib: int) -> tuple[_Worker, bool]:
        """An idle pooled worker, or a new one; ``(worker, dedicated)``. Dedicated workers serve a call
        whose memory limit differs from the pool's, and are discarded after it."""
        if memory_mib != self.limits.memory_mib:
            self._dedicated.acquire()
            try:
                worker = self._start_worker(memory_mib)
                worker.dedicated = True
            except BaseException:
                self._dedicated.release()
                raise
            with self._cond:
                if self._closed:
                    worker.kill()
                    self._dedicated.release()
                    raise SandboxUnavailable("the sandbox is closed")
                self._live.add(worker)
                self._note_protections(worker)
            return worker, True
        with self._cond:
            while True:
                if self._closed:
                    raise SandboxUnavailable("the sandbox is closed")
                while self._idle:
                    worker = self._idle.pop()  # LIFO: the warmest worker and its compile cache
                    if worker.alive():
                        return worker, False
                    self._live.discard(worker)  # died while idle (killed from outside): reaped below
                    threading.Thread(target=worker.kill, daemon=True).start()
                if self._pooled() + self._starting < self.pool_size:
                    self._starting += 1
                    break
                self._cond.wait()
        try:
            worker = self._start_worker(memory_mib)
        except BaseException:
            with self._cond:
                self._starting -= 1
                self._cond.notify_all()
            raise
        with self._cond:
            self._starting -= 1
            if self._closed:
                worker.kill()
                raise SandboxUnavailable("the sandbox is closed")
            self._live.add(worker)
            self._note_protections(worker)
        return worker, False

    def _pooled(self) -> int:
        return sum(1 for w in self._live if not w.dedicated)

    def _start_worker(self, memory_mib: int) -> _Worker:
        worker = _Worker(memory_mib, self._cpu_budget)
        worker.wait_ready()
        log.debug("sandbox worker %s started (%s MiB)", worker.pid, memory_mib)
        return worker

    def _release(self, worker: _Worker, dedicated: bool, discard: bool) -> None:
        """Give a worker back, or kill it (limit hit, crash, too many calls, dedicated) and start a
        replacement in the background so the next call does not wait for one."""
        ends = self._ends_on_release(worker, discard)
        worker.calls += 1
        if dedicated:
            with self._cond:
                self._live.discard(worker)
            worker.kill()
            self._dedicated.release()
            return
        if not ends and worker.alive():
            with self._cond:
                if not self._closed and worker in self._live:
                    self._idle.append(worker)
                    self._cond.notify()
                    return
        with self._cond:
            self._live.discard(worker)
            replace = not self._closed
            if replace:
                self._starting += 1
        worker.kill()
        if replace:
            threading.Thread(target=self._replace, name="cairn-sandbox-replace", daemon=True).start()

    def _ends_on_release(self, worker: _Worker, discard: bool) -> bool:
        """Whether giving ``worker`` back after this call kills it (discarded, dedicated, or at
        ``worker_max_calls``); an event loop hands such a release to a thread."""
        return discard or worker.dedicated or worker.calls + 1 >= self.worker_max_calls

    def _replace(self) -> None:
        try:
            worker = self._start_worker(self.limits.memory_mib)
        except Exception:
            log.exception("could not start a replacement sandbox worker")
            with self._cond:
                self._starting -= 1
                self._cond.notify_all()
            return
        with self._cond:
            self._starting -= 1
            if self._closed:
                worker.kill()
            else:
                self._adopt(worker)
            self._cond.notify_all()

    def _error_for_death(self, worker: _Worker, limits: Limits) -> ToolFailed | SandboxUnavailable:
        """What a worker's exit status says about the call that was running."""
        code = worker.reap()
        if self._closed:
            return SandboxUnavailable("the sandbox was closed during the call")
        if code in (-signal.SIGPROF, -signal.SIGXCPU):
            return LimitExceeded("cpu", f"cpu time limit of {format_seconds(limits.cpu_seconds)} exceeded")
        if code == EXIT_OUT_OF_MEMORY:
            return LimitExceeded("memory", f"memory limit of {worker.memory_mib} MiB exceeded")
        if code == EXIT_PROTOCOL:
            return SandboxUnavailable("the sandbox worker could not read a request; it was replaced")
        if code is not None and code < 0:
            name = _signal_name(-code)
            if -code == signal.SIGSEGV:
                return LimitExceeded(
                    "crash", f"the sandbox worker crashed ({name}) while running the code; very deep recursion "
                    "inside a built-in (hash, repr or comparison of deeply nested data) can cause this")
            if -code == signal.SIGKILL:
                return LimitExceeded(
                    "crash", "the sandbox worker was killed (SIGKILL) while running the code, probably by "
                    "the system's out-of-memory killer")
            return LimitExceeded("crash", f"the sandbox worker crashed ({name}) while running the code")
        return LimitExceeded("crash", f"the sandbox worker exited (status {code}) while running the code")


class _Lease:
    """The worker one operation uses; replaces it after a death so a ``check`` can go on."""

    def __init__(self, sandbox: Sandbox, limits: Limits) -> None:
        self.sandbox = sandbox
        self.limits = limits
        self.worker: _Worker | None = None
        self.dedicated = False
        self.discard = False
        # ceiling on one reply: result + escaped printed output + problems and messages
        self.max_reply = limits.result_bytes + 8 * limits.output_bytes + 4 * 1024 * 1024

    def _get(self) -> _Worker:
        if self.worker is None:
            self.worker, self.dedicated = self.sandbox._acquire(self.limits.memory_mib)
            self.discard = False
        return self.worker

    def release(self) -> None:
        if self.worker is not None:
            worker, self.worker = self.worker, None
            self.sandbox._release(worker, self.dedicated, self.discard)

    def compile(self, sources: list[tuple[str, str, str]]) -> tuple[dict[str, list[str]], list[str]]:
        """Compile ``(kind, sha, source)`` items in the worker (which caches them) under
        ``COMPILE_LIMITS``; returns problems per kind and the tests' ``test_*`` names. A compile that
        exhausts the worker's limits is a problem too."""
        message = {"op": "compile", "cpu": COMPILE_LIMITS.cpu_seconds, "sources": [list(s) for s in sources]}
        for _attempt in range(2):
            worker = self._get()
            try:
                reply = self._send(worker, message, COMPILE_LIMITS)
                break
            except _Died:  # was already dead: try another worker
                continue
            except LimitExceeded as exc:
                problem = f"Line 1: compiling the code exceeded the sandbox's limits ({exc}); simplify or split it"
                return {kind: [problem] for kind, _sha, _src in sources}, []
        else:
            raise SandboxUnavailable("no sandbox worker could compile the code")
        problems = {str(kind): list(found) for kind, found in dict(reply.get("problems") or {}).items()}
        for kind, sha, _source in sources:
            if kind not in problems:
                worker.known.add(sha)
        return problems, [str(name) for name in reply.get("tests", [])]

    def request(self, message: dict[str, Any], sources: list[tuple[str, str, str]]) -> dict[str, Any]:
        """Run one request under the call's limits and return the decoded reply. Sources the worker has
        not compiled yet are compiled first, in a request of their own; a worker that lost them from its
        cache, or retires, is handled here; a dead or late worker is killed and the matching error raised."""
        for _attempt in range(3):
            worker = self._get()
            missing = [item for item in sources if item[1] not in worker.known]
            if missing:
                problems, _tests = self.compile(missing)
                if problems:
                    listed = [("tests: " if kind == TESTS_FILE else "") + p
                              for kind, _sha, _src in missing for p in problems.get(kind, [])]
                    raise SubmissionRejected(listed, summary="the code was not run")
                if self.worker is not worker:  # the compile killed it; start over with another
                    continue
            try:
                reply = self._send(worker, message, self.limits)
            except _Died:  # the request never reached a live worker: safe to send it to another
                continue
            if reply.get("need_source"):  # evicted from the worker's cache: compile again
                for _kind, sha, _src in sources:
                    worker.known.discard(sha)
                continue
            if reply.get("retire"):  # its lifetime CPU budget is spent
                self._drop()
                continue
            return reply
        raise SandboxUnavailable("the sandbox worker kept refusing the request")

    def _send(self, worker: _Worker, message: dict[str, Any], limits: Limits) -> dict[str, Any]:
        """One round trip under ``limits.wall_seconds``. Raises LimitExceeded (timeout, or what the
        worker's death says), SandboxUnavailable, or _Died if the request could not even be written."""
        deadline = time.monotonic() + limits.wall_seconds
        try:
            worker.write_frame(self._encode(message), deadline)
        except _Died:
            self._drop()
            raise
        except _Timeout:
            self._drop()
            raise self._timed_out(limits) from None
        try:
            body = worker.read_frame(deadline, self.max_reply)
        except _Timeout:
            self._drop()
            raise self._timed_out(limits) from None
        except _Died:
            error = self.sandbox._error_for_death(worker, limits)
            self._drop()
            raise self._failed(error) from None
        except _Broken:
            raise self._broken(worker) from None
        return self._accept(worker, body)

    async def send_async(self, worker: _Worker, message: dict[str, Any], limits: Limits) -> dict[str, Any] | None:
        """``_send`` awaited on the event loop; None if the request could not be delivered (the worker
        had died: nothing ran, so the caller may send it elsewhere). Slow clean-ups (reaping, killing)
        run in a thread so the loop is never blocked by them."""
        data = self._encode(message)
        died = False
        body = None
        with anyio.move_on_after(limits.wall_seconds):
            try:
                await worker.write_frame_async(data)
            except _Died:
                await anyio.to_thread.run_sync(self._drop)
                return None
            try:
                body = await worker.read_frame_async(self.max_reply)
            except _Died:
                died = True
            except _Broken:
                raise self._broken(worker) from None
        if died:
            error = await anyio.to_thread.run_sync(self.sandbox._error_for_death, worker, limits)
            await anyio.to_thread.run_sync(self._drop)
            raise self._failed(error)
        if body is None:
            await anyio.to_thread.run_sync(self._drop)
            raise self._timed_out(limits)
        return self._accept(worker, body)

    @staticmethod
    def _encode(message: dict[str, Any]) -> bytes:
        message = dict(message)
        raw_args = message.pop("args_json", None)
        text = json.dumps(message)
        if raw_args is not None:  # already-encoded JSON arguments, spliced in rather than re-encoded
            text = text[:-1] + ',"args":' + raw_args + "}"
        return text.encode("ascii")

    def _accept(self, worker: _Worker, body: bytes) -> dict[str, Any]:
        """Decode a reply and note what it says about the worker's future."""
        try:
            reply = json.loads(body)
            if not isinstance(reply, dict):
                raise _Broken("reply is not an object")
        except (_Broken, ValueError, RecursionError):
            raise self._broken(worker) from None
        error = reply.get("error")
        if isinstance(error, dict) and error.get("kind") in ("limit", "internal", "bad_request"):
            self.discard = True  # recycle after any limit hit, and after anything unexpected
        if reply.get("recycle"):
            self.discard = True  # its peak memory grew large: start the next call with a fresh heap
        if len(worker.known) > 4096:
            worker.known.clear()
        return reply

    def _timed_out(self, limits: Limits) -> Exception:
        return self._failed(LimitExceeded("timeout", f"timed out after {format_seconds(limits.wall_seconds)}"))

    def _broken(self, worker: _Worker) -> SandboxUnavailable:
        self._drop()
        log.error("sandbox worker %s broke the protocol; killed", worker.pid)
        return SandboxUnavailable("the sandbox worker sent an invalid reply; it was replaced")

    @staticmethod
    def _failed(error: Exception) -> Exception:
        """Output printed before a worker was killed is lost with it."""
        if isinstance(error, ToolFailed):
            error.printed = ""
        return error

    def _drop(self) -> None:
        """Kill the current worker now (the next request gets another)."""
        if self.worker is not None:
            worker, self.worker = self.worker, None
            self.sandbox._release(worker, self.dedicated, discard=True)


# ---------------------------------------------------------------------------------------------------
# Comparing examples (plain JSON data on both sides)


def _same(expected: Any, got: Any) -> bool:
    """Equal as JSON; numbers with a float on either side compare with math.isclose."""
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(expected) is type(got) and expected == got
    if isinstance(expected, (int, float)) and isinstance(got, (int, float)):
        if isinstance(expected, float) or isinstance(got, float):
            return math.isclose(expected, got, rel_tol=1e-9, abs_tol=1e-12)
        return expected == got
    if isinstance(expected, (list, tuple)) and isinstance(got, list):
        return len(expected) == len(got) and all(_same(a, b) for a, b in zip(expected, got))
    if isinstance(expected, dict) and isinstance(got, dict):
        return expected.keys() == got.keys() and all(_same(v, got[k]) for k, v in expected.items())
    return type(expected) is type(got) and expected == got


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _test_location(where: str | None, line: int | None, tests_line: int | None, tests_lines: list[str]) -> str:
    def quoted(n: int) -> str:
        text = tests_lines[n - 1].strip() if 0 < n <= len(tests_lines) else ""
        return f": {text[:100]}" if text else ""

    if where == "tests" and line:
        return f" (tests line {line}{quoted(line)})"
    if where == "tool" and line:
        if tests_line:
            return f" (line {line}, called from tests line {tests_line}{quoted(tests_line)})"
        return f" (line {line})"
    return ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
