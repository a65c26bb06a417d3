"""Several processes on one registry, and processes killed mid-save (SIGKILL, real git, no mocks).

The worker processes run tests/helpers/store_worker.py. A crash "at a step" is a worker that SIGKILLs itself
when the store enters a given function (a profile hook), so each step of a save is hit deterministically;
the random test kills workers from outside after a random delay, many times.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.models import Example, Provenance, ToolRecord
from server.store import Registry

WORKER = Path(__file__).resolve().parent / "helpers" / "store_worker.py"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def worker(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(WORKER), *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_consistent(root: Path, messages: list[str] | None = None) -> Registry:
    """Recovered, the registry is whole: every tool on disk is HEAD's, git is sound, nothing is broken."""
    registry = Registry(root)
    messages = registry.recover() if messages is None else messages
    assert git(root, "status", "--porcelain", "--untracked-files=all") == ""
    assert not (root / ".git" / "index.lock").exists()  # a person's git is not blocked afterwards
    fsck = subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=root, capture_output=True, text=True)
    assert fsck.returncode == 0 and fsck.stdout == "", fsck.stdout + fsck.stderr
    records, broken = registry.read_all()
    assert broken == {}
    committed = set(git(root, "ls-tree", "--name-only", "HEAD", "tools/").split())
    assert {f"tools/{r.name}" for r in records} == committed
    for rec in records:
        assert rec == registry.read_version(rec.name, rec.version)
    return registry


def assert_gapless(registry: Registry, name: str) -> list[int]:
    """Versions 1..N each appear once in the tool's history (deletions repeat the number they removed)."""
    versions = [h.version for h in registry.history(name) if h.action != "delete"]
    assert sorted(versions) == list(range(1, len(versions) + 1)), versions
    return versions


def victim(n: int) -> ToolRecord:
    return ToolRecord(name="victim", description=f"Return {n} plus x.",
                      code=f"def victim(x: int) -> int:\n    return x + {n}\n", examples=(Example({"x": 1}, 1 + n),),
                      purpose=f"change number {n}", tests=f"def test_{n}():\n    assert victim(0) == {n}\n")


# The steps of one update, in order, and whether a crash there leaves the old version (1) or the new (2).
# From the journal on (written just before the branch moves), recovery completes the commit.
SAVE_STEPS = [
    ("_heal", 1, 1),
    ("_write_object", 1, 1),
    ("_write_object", 4, 1),
    ("_write_journal", 1, 1),
    ("_stage", 1, 1),  # the journal's own temp file
    ("_start_update_ref", 1, 2),
    ("_stage", 2, 2),  # tool.py's temp file, while git moves the branch
    ("_stage", 3, 2),  # tool.toml's temp file (the unchanged test file is not rewritten)
    ("_update_index", 1, 2),
    ("_after_commit", 1, 2),
]


@pytest.mark.parametrize("func, nth, expected", SAVE_STEPS, ids=[f"{f}#{n}" for f, n, _ in SAVE_STEPS])
def test_an_update_killed_at_any_step_leaves_the_old_or_the_new_version_fully_committed(
        tmp_path: Path, func: str, nth: int, expected: int) -> None:
    root = tmp_path / "registry"
    Registry(root).save(victim(1), action="add", base_version=None, provenance=Provenance())
    proc = worker("crash", root, func, nth, "update")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (out, err)
    registry = assert_consistent(root)
    current = registry.read("victim")
    assert current.version == expected
    assert current.code == victim(expected).code
    assert_gapless(registry, "victim")


DELETE_STEPS = [("_write_journal", 1, True), ("_update_ref", 1, False), ("_prune_folder", 1, False),
                ("_update_index", 1, False)]


@pytest.mark.parametrize("func, nth, survives", DELETE_STEPS, ids=[f"{f}#{n}" for f, n, _ in DELETE_STEPS])
def test_a_delete_killed_at_any_step_leaves_the_tool_whole_or_gone(tmp_path: Path, func: str, nth: int,
                                                                   survives: bool) -> None:
    root = tmp_path / "registry"
    Registry(root).save(victim(1), action="add", base_version=None, provenance=Provenance())
    proc = worker("crash", root, func, nth, "delete")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (out, err)
    registry = assert_consistent(root)
    assert registry.names() == (["victim"] if survives else [])
    assert (root / "tools" / "victim").exists() == survives


def test_a_reader_never_loads_a_tool_a_dead_writer_left_half_written(tmp_path: Path) -> None:
    """Killed between the branch move and the file writes: until recovery, read_all reports the tool."""
    root = tmp_path / "registry"
    Registry(root).save(victim(1), action="add", base_version=None, provenance=Provenance())
    proc = worker("crash", root, "_stage", 3, "update")
    proc.communicate(timeout=60)
    registry = Registry(root)
    records, broken = registry.read_all()
    assert records == [] and "stopped while saving" in broken["victim"][0]
    messages = registry.recover()
    assert any("save of victim v2" in m for m in messages)
    assert registry.read("victim").version == 2


def test_two_processes_adding_50_tools_each_lose_nothing(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    Registry(root)
    procs = [worker("add", root, prefix, 50) for prefix in ("left", "right")]
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    registry = assert_consistent(root)
    names = registry.names()
    assert len(names) == 100 and names == sorted(f"{p}_{i}" for p in ("left", "right") for i in range(50))
    assert int(git(root, "rev-list", "--count", "HEAD")) == 101  # the start commit and one per tool
    for name in names:
        assert assert_gapless(registry, name) == [1]


def test_two_processes_updating_one_tool_20_times_each_make_versions_1_to_41(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    Registry(root).save(victim(0).with_changes(name="shared", code="def shared(x: int) -> int:\n    return x\n"),
                        action="add", base_version=None, provenance=Provenance())
    procs = [worker("bump", root, "shared", 20) for _ in range(2)]
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    registry = assert_consistent(root)
    versions = assert_gapless(registry, "shared")
    assert versions == list(range(41, 0, -1))
    clients = {h.client for h in registry.history("shared")[:-1]}
    assert len(clients) == 2  # both processes committed


def test_processes_killed_at_random_points_leave_a_consistent_registry(tmp_path: Path) -> None:
    """30 workers, each saving, rolling back, deprecating and deleting in a loop, each SIGKILLed after a
    random delay; after each, a new Registry's recover() leaves everything committed and readable."""
    root = tmp_path / "registry"
    Registry(root)
    rng = random.Random(20241125)
    killed_mid_work = interrupted = 0
    for iteration in range(30):
        proc = worker("churn", root, iteration)
        assert proc.stdout.readline().strip() == "ready"
        head = git(root, "rev-parse", "HEAD")
        time.sleep(rng.uniform(0.005, 0.15))  # the random kill point, not a wait for anything
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_mid_work += git(root, "rev-parse", "HEAD") != head
        messages = Registry(root).recover()
        interrupted += any("interrupted" in m for m in messages)
        registry = assert_consistent(root, messages)
    for name in git(root, "log", "--format=", "--name-only", "--", "tools/").split():
        assert_gapless(registry, name.split("/")[1])
    assert killed_mid_work >= 5  # the workers did get work done between kills
    assert interrupted >= 1  # and some were killed in the middle of a save (7 of 30 in a sample run)


def test_several_first_starts_on_a_new_registry_at_once_all_succeed(tmp_path: Path) -> None:
    """Desktop hosts may each start Cairn on the same new folder at the same moment."""
    import subprocess
    import sys

    code = "import sys; from server.store import Registry; Registry(__import__('pathlib').Path(sys.argv[1]))"
    root = Path(__file__).resolve().parent.parent
    for attempt in range(5):
        folder = tmp_path / f"r{attempt}"
        folder.mkdir()
        procs = [subprocess.Popen([sys.executable, "-c", code, str(folder)], cwd=root, stderr=subprocess.PIPE)
                 for _ in range(3)]
        errors = [p.communicate(timeout=60)[1].decode() for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], errors
        log = subprocess.run(["git", "log", "--format=%s"], cwd=folder, capture_output=True, text=True).stdout
        assert log.splitlines() == ["Start a Cairn registry"]
        status = subprocess.run(["git", "status", "--porcelain"], cwd=folder, capture_output=True, text=True).stdout
        assert status == ""
