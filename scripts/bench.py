#!/usr/bin/env python3
"""Cairn's benchmarks: measure, never assert. Prints one table per section with medians, p95 and the
ratio against a baseline measured in the same run, next to the target from the issue.

    .venv/bin/python scripts/bench.py                 # every section
    .venv/bin/python scripts/bench.py sandbox store   # some sections
    .venv/bin/python scripts/bench.py --quick         # fewer repetitions (a smoke run)

Each section is a module ``scripts/benches/<name>.py`` with ``run(bench: Bench) -> None``.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

SECTIONS = ["sandbox", "store", "server", "search"]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


def fmt_seconds(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


@dataclass
class Row:
    name: str
    p50: float
    p95: float
    n: int
    baseline: str | None = None
    ratio: float | None = None
    target: str = ""
    note: str = ""


@dataclass
class Bench:
    """Collects rows; sections call ``time`` for timings and ``value`` for non-time figures."""

    quick: bool = False
    rows: list[tuple[str, Row | str]] = field(default_factory=list)
    section: str = ""
    _p50: dict[str, float] = field(default_factory=dict)

    def reps(self, full: int) -> int:
        return max(5, full // 10) if self.quick else full

    def time(
        self,
        name: str,
        fn: Callable[[], object],
        *,
        n: int = 200,
        warmup: int = 5,
        baseline: str | None = None,
        target: str = "",
        note: str = "",
    ) -> Row:
        """Time ``fn`` n times (after a warm-up) and add a row; ``baseline`` names an earlier row."""
        for _ in range(warmup):
            fn()
        samples = []
        for _ in range(self.reps(n)):
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        return self.add(name, samples, baseline=baseline, target=target, note=note)

    def add(self, name: str, samples: list[float], *, baseline: str | None = None, target: str = "",
            note: str = "") -> Row:
        """Add a row from samples measured by the section itself (e.g. async calls)."""
        p50 = statistics.median(samples)
        row = Row(name, p50, percentile(samples, 0.95), len(samples), baseline, None, target, note)
        if baseline is not None and baseline in self._p50 and self._p50[baseline] > 0:
            row.ratio = p50 / self._p50[baseline]
        self._p50[name] = p50
        self.rows.append((self.section, row))
        return row

    def value(self, name: str, text: str, *, target: str = "", note: str = "") -> None:
        """A figure that is not a timing (a recall, a size, a count)."""
        self.rows.append((self.section, f"{name:<58} {text:>22}   {target:<26} {note}"))

    def p50(self, name: str) -> float:
        return self._p50[name]

    def print_section(self, section: str) -> None:
        print(f"\n## {section}")
        print(f"{'measurement':<58} {'p50':>10} {'p95':>10} {'n':>5} {'ratio':>8}   {'target':<26} note")
        for sec, row in self.rows:
            if sec != section:
                continue
            if isinstance(row, str):
                print(row)
                continue
            ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
            print(
                f"{row.name:<58} {fmt_seconds(row.p50):>10} {fmt_seconds(row.p95):>10} {row.n:>5} {ratio:>8}   "
                f"{row.target:<26} {row.note}"
            )
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", help=f"sections to run (default: all of {', '.join(SECTIONS)})")
    parser.add_argument("--quick", action="store_true", help="a tenth of the repetitions: a smoke run")
    args = parser.parse_args(argv)
    bench = Bench(quick=args.quick)
    chosen = args.sections or SECTIONS
    for section in chosen:
        if section not in SECTIONS:
            parser.error(f"unknown section {section!r}; choose from {', '.join(SECTIONS)}")
        try:
            module = importlib.import_module(f"benches.{section}")
        except ModuleNotFoundError as exc:
            if exc.name == f"benches.{section}":
                print(f"\n## {section}\n(not written yet)")
                continue
            raise
        bench.section = section
        module.run(bench)
        bench.print_section(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
