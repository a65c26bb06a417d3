"""Store benchmarks: one author's store step (write + commit) and one tool's history, at 10 and 5,000 tools.

The large registry is built in a temp dir with ``git fast-import``: one commit per tool (5,000 commits), the
work tree checked out, then opened with ``Registry`` and ``recover()`` (which writes the commit-graph, as a
Cairn start does). Each timed save is an ``update`` with the right ``base_version`` of a tool chosen in turn.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from server.models import Example, Provenance, ToolRecord  # noqa: E402
from server.store import README_TEXT, Registry, dump_toml, test_file_text  # noqa: E402

CODE = '''import re


def {name}(text: str, limit: int = 10) -> list[str]:
    """Split text into at most limit words (tool number {i})."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return words[:limit]
'''


def record(i: int, version: int = 1) -> ToolRecord:
    name = f"tool_{i:05d}"
    return ToolRecord(
        name=name,
        description=f"Split text into words, variant {i}: a tool used to measure the store.",
        code=CODE.format(name=name, i=i),
        examples=(Example({"text": "Hello World"}, ["hello", "world"]), Example({"text": 3}, raises="TypeError")),
        version=version,
        purpose="benchmark",
        tags=("text", "bench"),
        tests=f"def test_limit():\n    assert {name}('a b c', 2) == ['a', 'b']\n",
        input_schema_sha256="0" * 64,
        output_schema_sha256="1" * 64,
        policy_version=1,
    )


def build(root: Path, tools: int, record: Callable[[int], ToolRecord] = record) -> Registry:
    """A registry of ``tools`` tools, one commit each, via git fast-import (seconds, not minutes).

    ``record(i)`` makes tool i (the server bench passes one with real schema hashes)."""
    root.mkdir(parents=True)
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q", str(root)], check=True, env=env)
    subprocess.run(["git", "-C", str(root), "symbolic-ref", "HEAD", "refs/heads/main"], check=True, env=env)
    for key, value in (("user.name", "Bench"), ("user.email", "bench@localhost")):
        subprocess.run(["git", "-C", str(root), "config", key, value], check=True, env=env)
    chunks: list[bytes] = []

    def data(payload: bytes) -> None:
        chunks.append(b"data %d\n" % len(payload) + payload + b"\n")

    stamp = 1_700_000_000
    for i in range(tools):
        rec = record(i)
        name = rec.name
        msg = (f"add {name} v1: benchmark\n\nCairn-Tool: {name}\nCairn-Version: 1\nCairn-Action: add\n").encode()
        chunks.append(b"commit refs/heads/main\n")
        chunks.append(b"committer Bench <bench@localhost> %d +0000\n" % (stamp + i))
        data(msg)
        if i == 0:
            chunks.append(b"M 100644 inline README.md\n")
            data(README_TEXT.encode())
        for file, payload in (("tool.py", rec.code.encode()), ("tool.toml", dump_toml(rec).encode()),
                              (f"test_{name}.py", test_file_text(name).encode())):
            chunks.append(f"M 100644 inline tools/{name}/{file}\n".encode())
            data(payload)
    subprocess.run(["git", "-C", str(root), "fast-import", "--quiet"], input=b"".join(chunks), check=True, env=env)
    subprocess.run(["git", "-C", str(root), "reset", "-q", "--hard", "main"], check=True, env=env)
    registry = Registry(root)
    registry.recover()
    os.sync()  # write back the checkout now, so the timed fsyncs do not pay for the setup's writes
    return registry


def measure(bench, label: str, registry: Registry, tools: int, *, target_commit: str = "",
            target_history: str = "", baseline: str | None = None) -> None:
    versions = {f"tool_{i:05d}": 1 for i in range(tools)}
    rng = random.Random(7)
    order = [f"tool_{i:05d}" for i in range(tools)]
    rng.shuffle(order)
    state = {"k": 0}

    def save() -> None:
        name = order[state["k"] % len(order)]
        state["k"] += 1
        i = int(name.split("_")[1])
        rec = record(i).with_changes(description=f"variant {i}, edit {state['k']}")
        saved, _ = registry.save(rec, action="update", base_version=versions[name],
                                 provenance=Provenance(client="bench", checks="2/2 examples"))
        versions[name] = saved.version

    n = 200 if tools <= 10 else 300
    bench.time(f"save (write + commit), {label}", save, n=n, warmup=5,
               baseline=None if baseline is None else f"save (write + commit), {baseline}", target=target_commit)
    # history of tools that have a few versions (the ones just updated) and of untouched ones
    names = order[: max(1, min(len(order), 20))]
    hist = {"k": 0}

    def history() -> None:
        registry.history(names[hist["k"] % len(names)])
        hist["k"] += 1

    bench.time(f"history(name), {label}", history, n=100, warmup=3,
               baseline=None if baseline is None else f"history(name), {baseline}", target=target_history)


def _adder(registry: Registry):
    counter = iter(range(10_000, 20_000))

    def add() -> None:
        registry.save(record(next(counter)), action="add", base_version=None, provenance=Provenance())

    return add


def run(bench) -> None:
    with tempfile.TemporaryDirectory(prefix="cairn-bench-store-") as tmp:
        small = build(Path(tmp) / "small", 10)
        measure(bench, "10 tools", small, 10)
        t0 = time.perf_counter()
        large = build(Path(tmp) / "large", 5000)
        bench.value("build 5,000 tools (fast-import + checkout + recover)", f"{time.perf_counter() - t0:.1f} s",
                    note="one commit per tool")
        measure(bench, "5,000 tools", large, 5000, target_commit="commit p50 ≤ 20 ms",
                target_history="history p50 ≤ 50 ms", baseline="10 tools")
        busy = large.read("tool_04999")
        for _ in range(31 - busy.version):
            busy = large.save(busy.with_changes(description=f"edit {busy.version}"), action="update",
                              base_version=busy.version, provenance=Provenance())[0]
        bench.time("history(name) of a tool with 31 versions, 5,000 tools", lambda: large.history(busy.name),
                   n=50, warmup=3)
        bench.time("add a new tool (write + commit), 5,000 tools", _adder(large), n=50, warmup=2)
        bench.time("read_all(), 5,000 tools", large.read_all, n=10, warmup=1, note="no git")
        bench.time("snapshot(), 5,000 tools", large.snapshot, n=20, warmup=1)
        bench.time("head()", large.head, n=500, warmup=5)
        t0 = time.perf_counter()
        large.recover()
        bench.value("recover() at 5,000 tools (after the saves above)", f"{(time.perf_counter() - t0) * 1e3:.0f} ms")
        small.close()
        large.close()  # waits for a background commit-graph write before the folder goes
