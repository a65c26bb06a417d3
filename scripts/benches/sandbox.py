"""Sandbox bench: what process isolation costs over running RestrictedPython in-process, and how fast
a runaway tool is stopped and the pool serves again.

Rows, all measured in one run: a plain in-process call of the function (the floor); in-process
RestrictedPython compiled once and run like the worker runs it (fresh guarded globals, exec, call); and
the sandboxed call through a warm pool. Two functions: a loop-heavy one and a string-heavy one. Then a
runaway (``while True: pass``) under a 1 s wall limit: time until the call returns its timeout, and the
latency of the next ordinary call right after the kill, with the default pool of 2 and with a pool of 1
(which must wait for the replacement worker).
"""

from __future__ import annotations

import time

from server import sandbox_worker
from server.config import Limits
from server.errors import LimitExceeded
from server.sandbox import Sandbox

LOOP = '''
def sum_squares(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total
'''

STRING = '''
import re
import unicodedata

def slugify(text: str, max_words: int = 8) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    words = re.findall(r"[a-z0-9]+", text)
    return "-".join(words[:max_words])
'''

RUNAWAY = "def spin() -> None:\n    while True:\n        pass\n"
TEXT = "Ça, c'est «la» Crème Brûlée: 42 façons de l'aimer — édition été 2024!"

CASES = [
    ("loop", LOOP, "sum_squares", {"n": 1000}),
    ("string", STRING, "slugify", {"text": TEXT}),
]


def _in_process(source: str, function: str):
    """The same function, three ways in this process: plain, and RestrictedPython as the worker runs it."""
    namespace: dict = {}
    exec(compile(source, "<bench>", "exec"), namespace)  # noqa: S102 - our fixed benchmark source
    plain = namespace[function]
    runtime = sandbox_worker.Runtime()
    compiled, problems = sandbox_worker.compile_source(source, sandbox_worker.TOOL_FILE)
    assert compiled is not None, problems
    return plain, runtime, compiled


def run(bench) -> None:
    limits = Limits()
    with Sandbox(limits, pool_size=2) as sandbox:
        t0 = time.perf_counter()
        sandbox.start()
        bench.value("pool start (2 workers, in parallel)", f"{(time.perf_counter() - t0) * 1e3:.1f} ms")
        for label, source, function, args in CASES:
            plain, runtime, compiled = _in_process(source, function)
            expected = plain(**args)
            assert runtime.call(compiled, function, args) == expected
            assert sandbox.call(source, function, args).value == expected
            base = f"{label}: plain in-process call"
            rp = f"{label}: in-process RestrictedPython (fresh globals)"
            boxed = f"{label}: sandboxed call, warm pool"
            bench.time(base, lambda: plain(**args), n=3000)
            bench.time(rp, lambda: runtime.call(compiled, function, args), n=3000, baseline=base)
            bench.time(boxed, lambda: sandbox.call(source, function, args), n=3000, baseline=rp)
            added = bench.p50(boxed) - bench.p50(rp)
            bench.value(f"{label}: added over in-process RestrictedPython (p50)", f"{added * 1e6:.1f} µs",
                        target="≤ 100 µs")

    runaway = Limits(cpu_seconds=30, wall_seconds=1.0)
    for pool_size in (2, 1):
        with Sandbox(runaway, pool_size=pool_size) as sandbox:
            sandbox.start()
            kills, nexts = [], []
            for _ in range(bench.reps(10)):
                t0 = time.perf_counter()
                try:
                    sandbox.call(RUNAWAY, "spin", {})
                except LimitExceeded as exc:
                    assert exc.kind == "timeout", exc
                kills.append(time.perf_counter() - t0)
                t1 = time.perf_counter()
                assert sandbox.call(LOOP, "sum_squares", {"n": 10}).value == 285
                nexts.append(time.perf_counter() - t1)
            if pool_size == 2:
                bench.add("runaway (while True) stopped, wall limit 1 s", kills, target="≤ 1.10 s (wall + 100 ms)")
            bench.add(f"next call right after the kill, pool of {pool_size}", nexts, target="≤ 100 ms",
                      note="" if pool_size == 2 else "waits for the replacement worker to start")

    with Sandbox(Limits(cpu_seconds=0.5, wall_seconds=5.0), pool_size=1) as sandbox:
        sandbox.start()
        cpu = []
        for _ in range(bench.reps(5)):
            t0 = time.perf_counter()
            try:
                sandbox.call("def hog() -> int:\n    return sum(range(10**10))\n", "hog", {})
            except LimitExceeded as exc:
                assert exc.kind == "cpu", exc
            cpu.append(time.perf_counter() - t0)
        bench.add("sum(range(10**10)) stopped, cpu limit 0.5 s", cpu, note="killed by ITIMER_PROF inside C code")
