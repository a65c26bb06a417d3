"""MCP server benchmarks (issue 4): Cairn against a plain ``MCPServer`` with the same functions, measured
in one run, and Cairn alone at 1,000 and 10,000 tools.

* Registered tool calls, in memory (``Client(server, mode="legacy")``) and over stdio (``cairn serve`` and
  ``native_server.py`` as subprocesses): the functions in ``native_server.FUNCTIONS`` are authored into Cairn
  through ``Cairn.author`` and defined natively with ``@native.tool()``; native and Cairn calls alternate in
  one loop so machine noise hits both alike.
* ``author_tool`` end to end through the MCP client at 1,000 tools: creates (a new name each call) and
  updates (``base_version``).
* 10,000 tools: start-up of ``cairn serve`` to the first ``tools/list`` answer (cold: no
  ``.cairn/verified.json``; warm: cache present), the background verification of every tool (in-process),
  ``tools/list``, ``search_tools``, ``poll_changes``.

The registries are built with the store bench's ``build`` (git fast-import, one commit per tool). Its
``record`` writes placeholder schema hashes, which Cairn would rightly disable, so ``valid_record``
passes ``build`` one that fills in the real hashes (and varies the descriptions, so search sees a corpus
where a query does not match every tool); every bench registry is checked to load with no disabled tool.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE.parent))

from benches import store as store_bench  # noqa: E402
from benches.native_server import CALLS, FUNCTIONS, make_server  # noqa: E402
from server import embed  # noqa: E402
from server.app import CairnApp  # noqa: E402
from server.config import Settings  # noqa: E402
from server.service import Cairn  # noqa: E402
from server.validate import analyse, schema_sha256  # noqa: E402

META_TOOLS = 8
VERBS = ("parse", "convert", "format", "validate", "count", "extract", "normalize", "compare", "merge", "sort",
         "filter", "encode", "decode", "hash", "round", "summarize", "split", "clean", "score", "group")
NOUNS = ("dates", "durations", "temperatures", "currencies", "emails", "urls", "phone numbers", "ip addresses",
         "csv rows", "json keys", "colors", "units", "file sizes", "timestamps", "invoices", "postal addresses",
         "isbn codes", "coordinates", "percentages", "roman numerals", "markdown tables", "log lines",
         "version strings", "semver ranges", "cron expressions")
WHERE = ("in a string", "from a list", "for reports", "for invoices", "for logs", "for the web",
         "for spreadsheets", "for user input")
SEARCHES = ("convert temperatures", "parse cron expressions", "validate emails for user input",
            "round percentages", "normalize phone numbers")
BROAD_SEARCH = "split text into words"
"""Every bench tool's docstring and parameters say this: the worst case, all 10,000 tools are candidates."""


# --------------------------------------------------------------------------- registries


_HASHES: dict[str, tuple[str, str]] = {}


def valid_record(i: int):  # type: ignore[no-untyped-def]
    """The store bench's tool i with real schema hashes (so Cairn loads it enabled) and a varied
    description (so search sees a corpus, not 10,000 copies)."""
    base = store_bench.record(i)
    shape = base.code.replace(base.name, "NAME")
    if shape not in _HASHES:
        sig = analyse(base.code, base.name)
        _HASHES[shape] = (schema_sha256(sig.input_schema), schema_sha256(sig.output_schema))
    in_sha, out_sha = _HASHES[shape]
    verb, noun, where = VERBS[i % len(VERBS)], NOUNS[(i // len(VERBS)) % len(NOUNS)], WHERE[i % len(WHERE)]
    return base.with_changes(description=f"{verb.capitalize()} {noun} {where} (variant {i}).",
                             input_schema_sha256=in_sha, output_schema_sha256=out_sha)


def build_registry(root: Path, tools: int) -> Path:
    store_bench.build(root, tools, record=valid_record).close()
    return root


def _check_loaded(cairn: Cairn, expected: int) -> None:
    tools = cairn.all_tools()
    broken = [t for t in tools if t.problems or not t.verified]
    if len(tools) != expected or broken:
        sample = "; ".join(f"{t.name}: {t.problems or 'not verified'}" for t in broken[:3])
        raise RuntimeError(f"bench registry: {len(tools)} tools loaded (expected {expected}), "
                           f"{len(broken)} disabled or unverified: {sample}")


def _drop_cache(registry: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (registry / ".cairn" / "verified.json").unlink()


# --------------------------------------------------------------------------- servers and clients


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}


def cairn_params(registry: Path, **environ: str) -> StdioServerParameters:
    script = Path(sys.executable).with_name("cairn")
    command, args = (str(script), []) if script.exists() else (sys.executable, ["-m", "server"])
    return StdioServerParameters(command=command, args=[*args, "serve", "--registry", str(registry)],
                                 env={**_env(), **environ}, cwd=str(ROOT))


def native_params() -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=[str(HERE / "native_server.py")], env=_env(),
                                 cwd=str(ROOT))


@contextlib.asynccontextmanager
async def stdio_client_of(params: StdioServerParameters, label: str) -> AsyncIterator[Client]:
    """``Client(params, mode="legacy")`` with the server's stderr kept out of the table (shown on failure).

    Leaving the block stops the server process (the SDK closes its stdin, then terminates its process
    tree), also when the block raises."""
    with tempfile.TemporaryFile("w+") as errlog:
        try:
            async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
                yield client
        except BaseException:
            errlog.seek(0)
            print(f"\n[{label} stderr, last lines]\n{errlog.read()[-3000:]}", file=sys.stderr)
            raise


def _ok(result: Any) -> Any:
    if result.is_error:
        raise RuntimeError(f"tool call failed: {result.content[0].text}")
    return result.structured_content


async def _paired(a: Callable[[], Awaitable[Any]], b: Callable[[], Awaitable[Any]], n: int,
                  warmup: int = 10) -> tuple[list[float], list[float]]:
    """Time a and b alternately, n times each, after a warm-up."""
    for _ in range(warmup):
        await a()
        await b()
    sa: list[float] = []
    sb: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        await a()
        t1 = time.perf_counter()
        await b()
        sb.append(time.perf_counter() - t1)
        sa.append(t1 - t0)
    return sa, sb


async def _samples(fn: Callable[[], Awaitable[Any]], n: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        await fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t0)
    return out


def _run(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    return anyio.run(fn, *args, backend="asyncio")


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


# --------------------------------------------------------------------------- rows 1-2: calls vs native


async def _compare(bench: Any, native: Client, cairn: Client, where: str, target: str, n: int) -> None:
    for name, args in CALLS.items():
        expected = _ok(await native.call_tool(name, args))
        got = _ok(await cairn.call_tool(name, args))
        if got != expected:
            raise RuntimeError(f"{name}: Cairn returned {got!r}, native {expected!r}")
        ns, cs = await _paired(lambda: native.call_tool(name, args), lambda: cairn.call_tool(name, args), n)
        base = f"call {name}, {where}: native MCPServer"
        bench.add(base, ns)
        bench.add(f"call {name}, {where}: Cairn", cs, baseline=base, target=target)


async def _calls_in_memory(bench: Any, app: CairnApp) -> None:
    async with Client(make_server(), mode="legacy") as native, Client(app.server, mode="legacy") as cairn:
        await _compare(bench, native, cairn, "in memory", "p50 ≤ 1.5x native", bench.reps(300))


async def _calls_stdio(bench: Any, registry: Path) -> None:
    async with stdio_client_of(native_params(), "native server") as native, \
            stdio_client_of(cairn_params(registry), "cairn serve") as cairn:
        await _compare(bench, native, cairn, "stdio", "p50 ≤ 1.2x native", bench.reps(300))


def calls(bench: Any, tmp: Path) -> None:
    registry = tmp / "calls"
    with Cairn(Settings(registry=registry)) as cairn:
        cairn.start(verify="all")
        for name, (source, description, examples) in FUNCTIONS.items():
            cairn.author(name=name, description=description, code=source, examples=examples)
        _check_loaded(cairn, len(FUNCTIONS))
        _run(_calls_in_memory, bench, CairnApp(cairn))
    _run(_calls_stdio, bench, registry)


# --------------------------------------------------------------------------- row 3: author_tool at 1,000


async def _author(bench: Any, app: CairnApp, ranker: str) -> None:
    source, description, examples = FUNCTIONS["slugify"]
    counter = {"k": 0}
    created: list[str] = []

    def args(name: str) -> dict[str, Any]:
        return {"name": name, "description": description, "code": source.replace("def slugify", f"def {name}"),
                "examples": examples, "tags": ["text", "url"]}

    async with Client(app.server, mode="legacy") as client:
        async def create() -> None:
            name = f"slug_{counter['k']:05d}"
            counter["k"] += 1
            reply = _ok(await client.call_tool("author_tool", args(name)))
            if reply["version"] != 1:
                raise RuntimeError(f"author_tool create: {reply}")
            created.append(name)

        n = bench.reps(100)
        bench.add(f"author_tool create, 1,000 tools, {ranker} (in memory)", await _samples(create, n, warmup=3),
                  target="p50 ≤ 50 ms", note="new name each call; examples in sandbox + commit")
        versions = dict.fromkeys(created, 1)
        order = {"k": 0}

        async def update() -> None:
            name = created[order["k"] % len(created)]
            order["k"] += 1
            a = args(name)
            a["description"] = f"{description} (edit {order['k']})"
            a["base_version"] = versions[name]
            reply = _ok(await client.call_tool("author_tool", a))
            if reply["version"] != versions[name] + 1:
                raise RuntimeError(f"author_tool update: {reply}")
            versions[name] = reply["version"]

        bench.add(f"author_tool update (base_version), 1,000 tools, {ranker}", await _samples(update, n, warmup=3),
                  target="p50 ≤ 50 ms", note="changed description, same code")


def author(bench: Any, tmp: Path) -> None:
    """Per search ranker (the duplicate check searches): lexical, and hybrid once its embeddings are done
    (the steady state; the first start's embedding is measured in the search bench)."""
    for ranker in ["lexical", "hybrid"] if embed.available() else ["lexical"]:
        registry = build_registry(tmp / f"r1000-{ranker}", 1000)
        with Cairn(Settings(registry=registry, search=ranker)) as cairn:
            cairn.start(verify="all")
            _check_loaded(cairn, 1000)
            if not cairn.wait_for_search(600):
                raise RuntimeError("embedding 1,000 tools did not finish")
            _run(_author, bench, CairnApp(cairn), ranker)


# --------------------------------------------------------------------------- rows 4-6: 10,000 tools


async def _first_list(registry: Path | None) -> tuple[float, float]:
    """Seconds from spawning ``cairn serve`` (the native server when ``registry`` is None) to the initialize
    reply and to the first tools/list reply."""
    params = native_params() if registry is None else cairn_params(registry)
    expected = len(FUNCTIONS) if registry is None else META_TOOLS + 100
    t0 = time.perf_counter()
    async with stdio_client_of(params, "server") as client:
        t_init = time.perf_counter()
        tools = (await client.list_tools()).tools
        t_list = time.perf_counter()
    if len(tools) != expected:
        raise RuntimeError(f"first tools/list listed {len(tools)} tools, expected {expected}")
    return t_init - t0, t_list - t0


def _startups(bench: Any, registry: Path, n: int, kind: str) -> None:
    handshakes, lists = [], []
    for _ in range(n):
        if kind == "cold":
            _drop_cache(registry)
        init, first = _run(_first_list, registry)
        handshakes.append(init)
        lists.append(first)
    note = "no verified.json" if kind == "cold" else "verified.json present"
    if kind == "warm":
        native = [_run(_first_list, None)[1] for _ in range(n)]
        imports = []
        for _ in range(n):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import server.cli, server.app, server.service, server.sandbox"],
                           check=True, cwd=ROOT, env=_env())
            imports.append(time.perf_counter() - t0)
    bench.add(f"start-up to first tools/list, 10,000 tools, {kind}", lists, target="≤ 1.5 s",
              note=f"cairn serve over stdio, client side; {note}")
    bench.add(f"  of which: spawn to initialize reply ({kind})", handshakes,
              note="imports + Cairn.start before serving")
    if kind == "warm":
        bench.add("  of which: python start + imports (fresh interpreter)", imports,
                  note="python -c 'import server.app, ...'")
        bench.add("start-up to first tools/list: native MCPServer, 2 tools", native,
                  note="the floor: python + mcp imports + handshake")


async def _in_memory_10k(bench: Any, app: CairnApp) -> None:
    async with Client(app.server, mode="legacy") as client:
        async def list_tools() -> None:
            tools = (await client.list_tools()).tools
            assert len(tools) == META_TOOLS + 100, len(tools)

        bench.add("tools/list, 10,000 tools (in memory)", await _samples(list_tools, bench.reps(100)),
                  target="p50 ≤ 100 ms", note=f"{META_TOOLS} meta + 100 exposed tools")
        k = {"i": 0}

        async def search() -> None:
            query = SEARCHES[k["i"] % len(SEARCHES)]
            k["i"] += 1
            matches = _ok(await client.call_tool("search_tools", {"query": query}))["matches"]
            assert matches, query

        bench.add("search_tools, 10,000 tools, lexical (in memory)", await _samples(search, bench.reps(200)),
                  target="p50 ≤ 20 ms", note=f"{len(SEARCHES)} queries in turn, e.g. {SEARCHES[0]!r}")

        async def broad() -> None:
            assert _ok(await client.call_tool("search_tools", {"query": BROAD_SEARCH}))["matches"]

        bench.add("search_tools, 10,000 tools, query matching all (in mem)", await _samples(broad, bench.reps(100)),
                  target="p50 ≤ 20 ms", note=f"{BROAD_SEARCH!r}: every tool is a candidate")


async def _stdio_10k(bench: Any, registry: Path) -> None:
    async with stdio_client_of(cairn_params(registry, CAIRN_SEARCH="lexical"), "cairn serve") as client:
        # The search index fills as the background pass verifies tools (in name order): wait for the last.
        with anyio.fail_after(120):
            while True:
                matches = _ok(await client.call_tool("search_tools", {"query": "tool_09999", "limit": 1}))["matches"]
                if matches and matches[0]["name"] == "tool_09999":
                    break
                await anyio.sleep(0.2)
        k = {"i": 0}

        async def search() -> None:
            query = SEARCHES[k["i"] % len(SEARCHES)]
            k["i"] += 1
            assert _ok(await client.call_tool("search_tools", {"query": query}))["matches"]

        bench.add("search_tools, 10,000 tools, lexical (stdio)", await _samples(search, bench.reps(200)),
                  target="p50 ≤ 20 ms", note="cairn serve, watcher running")

        async def list_tools() -> None:
            await client.list_tools()

        bench.add("tools/list, 10,000 tools (stdio)", await _samples(list_tools, bench.reps(100)),
                  target="p50 ≤ 100 ms", note="cairn serve, watcher running")


def ten_thousand(bench: Any, tmp: Path) -> None:
    t0 = time.perf_counter()
    registry = build_registry(tmp / "r10000", 10_000)
    bench.value("build 10,000 tools (store bench's fast-import builder)", _fmt(time.perf_counter() - t0),
                note="setup, not Cairn")
    starts = 2 if bench.quick else 5

    # Cold first: nothing has written <registry>/.cairn/verified.json yet (and each run removes it).
    _startups(bench, registry, starts, "cold")

    # In process: the same start-up, then the background pass over all 10,000 tools (cold, no cache).
    _drop_cache(registry)
    cairn = Cairn(Settings(registry=registry, search="lexical"))  # hybrid at 10,000: the search bench
    try:
        t0 = time.perf_counter()
        cairn.start()
        t1 = time.perf_counter()
        background = cairn._background  # the thread running verify_all
        assert background is not None
        background.join()
        t2 = time.perf_counter()
        _check_loaded(cairn, 10_000)
        bench.value("Cairn.start() in process, 10,000 tools, cold", _fmt(t1 - t0),
                    note="recover, read_all, sandbox pool, verify the 100 exposed")
        bench.value("background verify_all after start, 10,000 tools, cold", _fmt(t2 - t1),
                    note="serving meanwhile; not on the start-up path")

        # Warm: verify_all saved the cache.
        _startups(bench, registry, starts, "warm")
        warm = []
        for _ in range(starts):
            with Cairn(Settings(registry=registry, search="lexical")) as other:
                t0 = time.perf_counter()
                other.start()
                warm.append(time.perf_counter() - t0)
                assert other._background is not None
                t1 = time.perf_counter()
                other._background.join()
                bg = time.perf_counter() - t1
        bench.add("Cairn.start() in process, 10,000 tools, warm", warm)
        bench.value("background verify_all after start, 10,000 tools, warm", _fmt(bg),
                    note="signatures re-derived; compiles cached")
        bench.time("Registry.read_all(), 10,000 tools", cairn.registry.read_all, n=5, warmup=1)
        samples = []
        for _ in range(bench.reps(50)):
            t0 = time.perf_counter()
            changed = cairn.poll_changes()
            samples.append(time.perf_counter() - t0)
            assert not changed, changed
        p50 = sorted(samples)[len(samples) // 2]
        bench.add("Cairn.poll_changes(), 10,000 tools, nothing changed", samples,
                  note=f"the watcher runs it every 0.5 s: ~{p50 / 0.5:.0%} of a core")
        bench.time("Cairn.exposed(), 10,000 tools", cairn.exposed, n=100, warmup=3, note="inside every tools/list")
        _run(_in_memory_10k, bench, CairnApp(cairn))
    finally:
        cairn.close()
    _run(_stdio_10k, bench, registry)


def run(bench: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="cairn-bench-server-") as tmp:
        calls(bench, Path(tmp))
        author(bench, Path(tmp))
        ten_thousand(bench, Path(tmp))
