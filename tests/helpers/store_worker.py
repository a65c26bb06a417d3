"""Drives a ``Registry`` from its own process, for the store's concurrency and crash tests.

    store_worker.py add ROOT PREFIX COUNT      add COUNT tools PREFIX_0 ... (waits for a line on stdin first)
    store_worker.py bump ROOT NAME COUNT       update NAME COUNT times, retrying on VersionConflict (waits too)
    store_worker.py churn ROOT SEED            print "ready", then add/update/rollback/deprecate/delete forever
    store_worker.py crash ROOT FUNC N ACTION   SIGKILL itself on the Nth call of store.FUNC during one ACTION
                                               ("update" or "delete") of the tool "victim"
"""

from __future__ import annotations

import os
import random
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from server.errors import ToolNotFound, VersionConflict  # noqa: E402
from server.models import Example, Provenance, ToolRecord  # noqa: E402
from server.store import Registry  # noqa: E402

NAMES = ["alpha", "beta", "gamma", "delta", "epsilon"]


def record(name: str, n: int) -> ToolRecord:
    return ToolRecord(
        name=name,
        description=f"Return {n} plus x.",
        code=f"def {name}(x: int) -> int:\n    return x + {n}\n",
        examples=(Example({"x": 1}, 1 + n),),
        purpose=f"change number {n}",
        tests=f"def test_{n}():\n    assert {name}(0) == {n}\n",
    )


def provenance(n: int) -> Provenance:
    return Provenance(client=f"worker {os.getpid()}", checks="1/1 examples", reason=f"change {n}")


def add(registry: Registry, prefix: str, count: int) -> None:
    sys.stdin.readline()
    for i in range(count):
        registry.save(record(f"{prefix}_{i}", i), action="add", base_version=None, provenance=provenance(i))


def bump(registry: Registry, name: str, count: int) -> None:
    sys.stdin.readline()
    done = 0
    while done < count:
        current = registry.read(name).version
        try:
            registry.save(record(name, done), action="update", base_version=current, provenance=provenance(done))
        except VersionConflict:
            continue
        done += 1


def churn(registry: Registry, seed: int) -> None:
    rng = random.Random(seed)
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        name = rng.choice(NAMES)
        try:
            current = registry.read(name)
        except ToolNotFound:
            registry.save(record(name, n), action="add", base_version=None, provenance=provenance(n))
            continue
        roll = rng.random()
        if roll < 0.6:
            registry.save(record(name, n), action="update", base_version=current.version, provenance=provenance(n))
        elif roll < 0.75:
            registry.save(current.with_changes(status="deprecated", deprecation_reason=f"reason {n}"),
                          action="deprecate", base_version=current.version, provenance=provenance(n))
        elif roll < 0.9 and current.version > 1:
            old = registry.read_version(name, rng.randint(1, current.version - 1))
            registry.save(old, action="rollback", base_version=current.version, provenance=provenance(n))
        else:
            registry.delete(name, base_version=current.version, provenance=provenance(n))


def crash(registry: Registry, func: str, nth: int, action: str) -> None:
    """Die by SIGKILL on the nth call of the store's ``func``: a crash at a precise step, no mocks."""
    calls = 0

    def hook(frame, event, arg):  # type: ignore[no-untyped-def]
        nonlocal calls
        if event == "call" and frame.f_code.co_name == func and frame.f_code.co_filename.endswith("store.py"):
            calls += 1
            if calls == nth:
                os.kill(os.getpid(), signal.SIGKILL)

    current = registry.read("victim")
    sys.setprofile(hook)
    if action == "delete":
        registry.delete("victim", base_version=current.version, provenance=provenance(2))
    else:
        registry.save(record("victim", 2), action="update", base_version=current.version, provenance=provenance(2))
    sys.setprofile(None)
    print("finished", flush=True)


def main() -> None:
    mode, root = sys.argv[1], Path(sys.argv[2])
    registry = Registry(root)
    if mode == "add":
        add(registry, sys.argv[3], int(sys.argv[4]))
    elif mode == "bump":
        bump(registry, sys.argv[3], int(sys.argv[4]))
    elif mode == "churn":
        churn(registry, int(sys.argv[3]))
    elif mode == "crash":
        crash(registry, sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
