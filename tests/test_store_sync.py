"""``Registry.sync``: two clones of one bare repository in a temp folder, as two machines sharing tools."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from server.errors import StoreError, SyncConflict
from server.models import Example, Provenance, ToolRecord
from server.store import Registry


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def tool(name: str, n: int) -> ToolRecord:
    return ToolRecord(name=name, description=f"Add {n}.", code=f"def {name}(x: int) -> int:\n    return x + {n}\n",
                      examples=(Example({"x": 0}, n),), purpose=f"change {n}")


def add(reg: Registry, name: str, n: int = 0) -> str:
    return reg.save(tool(name, n), action="add", base_version=None, provenance=Provenance(client="test"))[1]


def update(reg: Registry, name: str, n: int) -> str:
    current = reg.read(name).version
    return reg.save(tool(name, n), action="update", base_version=current, provenance=Provenance(client="test"))[1]


def clean(reg: Registry) -> None:
    assert git(reg.root, "status", "--porcelain", "--untracked-files=all") == ""
    assert subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=reg.root,
                          capture_output=True).returncode == 0
    assert reg.read_all()[1] == {}


@pytest.fixture
def machines(tmp_path: Path) -> tuple[Registry, Registry]:
    """Machine A starts a registry and publishes it to a bare repository; machine B clones it."""
    bare = tmp_path / "shared.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(bare, "symbolic-ref", "HEAD", "refs/heads/main")
    a = Registry(tmp_path / "a")
    git(a.root, "remote", "add", "origin", str(bare))
    add(a, "first")
    report = a.sync()
    assert report.pushed == 2 and report.pulled == [] and report.conflicts == []
    git(tmp_path, "clone", "-q", str(bare), "b")
    b = Registry(tmp_path / "b")
    assert b.names() == ["first"]
    return a, b


def test_sync_without_a_remote_says_how_to_add_one(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "alone")
    with pytest.raises(StoreError, match=r"no git remote named 'origin'.*git -C .*alone remote add origin <url>"):
        reg.sync()


def test_tools_authored_on_two_machines_both_survive(machines: tuple[Registry, Registry]) -> None:
    a, b = machines
    add(b, "from_b")
    assert b.sync().pushed == 1
    add(a, "from_a")
    report = a.sync()  # both sides have new commits: a merge, then a push
    assert report.pulled == ["from_b"] and report.conflicts == [] and report.pushed == 2
    assert a.names() == ["first", "from_a", "from_b"]
    report = b.sync()  # fast-forward
    assert report.pulled == ["from_a"] and report.pushed == 0
    assert b.names() == a.names() and b.head() == a.head() == report.head
    for reg in (a, b):
        clean(reg)
        assert [h.version for h in reg.history("from_a")] == [1]
    assert b.read("from_a") == a.read("from_a")


def test_a_tool_changed_on_both_machines_keeps_both_versions_and_reports_which_is_current(
        machines: tuple[Registry, Registry]) -> None:
    a, b = machines
    a_commit = update(a, "first", 10)
    a.sync()
    b_commit = update(b, "first", 20)
    report = b.sync()
    assert len(report.conflicts) == 1
    message = report.conflicts[0]
    assert message.startswith("first: both changed (local v2, origin v2); current is origin's v2")
    assert a_commit[:12] in message and b_commit[:12] in message and "saved as v3" in message
    assert "roll back to it" in message
    current = b.read("first")
    assert (current.version, current.code) == (3, tool("first", 10).code)
    history = b.history("first")
    assert [h.version for h in history] == [3, 2, 2, 1]
    assert {h.commit for h in history if h.version == 2} == {a_commit, b_commit}
    assert b.read_version("first", 2, commit=b_commit).code == tool("first", 20).code
    assert b.read_version("first", 2, commit=a_commit).code == tool("first", 10).code
    a.sync()
    assert a.read("first") == current and a.head() == b.head()
    for reg in (a, b):
        clean(reg)


@pytest.mark.parametrize("a_updates, b_updates, winner", [(2, 1, "a"), (1, 2, "b")])
def test_on_a_sync_conflict_the_higher_version_wins(machines: tuple[Registry, Registry], a_updates: int,
                                                    b_updates: int, winner: str) -> None:
    a, b = machines
    for i in range(a_updates):
        update(a, "first", 100 + i)
    a.sync()
    for i in range(b_updates):
        update(b, "first", 200 + i)
    report = b.sync()
    expected = tool("first", 100 + a_updates - 1) if winner == "a" else tool("first", 200 + b_updates - 1)
    current = b.read("first")
    assert current.code == expected.code and current.version == max(a_updates, b_updates) + 2
    side = "origin's" if winner == "a" else "the local"
    assert f"current is {side} v{max(a_updates, b_updates) + 1}" in report.conflicts[0]


def test_a_tool_deleted_on_one_machine_and_changed_on_the_other_is_kept_changed(
        machines: tuple[Registry, Registry]) -> None:
    a, b = machines
    a.delete("first", provenance=Provenance())
    a.sync()
    update(b, "first", 5)
    report = b.sync()
    assert report.conflicts and report.conflicts[0].startswith("first: deleted on origin")
    assert b.read("first").code == tool("first", 5).code
    a.sync()
    assert a.read("first").code == tool("first", 5).code
    clean(a)


def test_sync_stops_before_overwriting_uncommitted_work(machines: tuple[Registry, Registry]) -> None:
    a, b = machines
    update(a, "first", 1)
    a.sync()
    edited = b.tools_dir / "first" / "tool.py"
    edited.write_text("# work in progress\n")
    head = b.head()
    with pytest.raises(SyncConflict, match="not committed: tools/first/tool.py"):
        b.sync()
    assert edited.read_text() == "# work in progress\n" and b.head() == head


def test_files_outside_tools_changed_on_both_machines_stop_the_sync(machines: tuple[Registry, Registry]) -> None:
    a, b = machines
    for reg, text in ((a, "A\n"), (b, "B\n")):
        (reg.root / "README.md").write_text(text)
        git(reg.root, "-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qam", "readme")
    a.sync()
    head = b.head()
    with pytest.raises(SyncConflict, match="not tools.*README.md.*git pull"):
        b.sync()
    assert b.head() == head and (b.root / "README.md").read_text() == "B\n"


def test_a_machine_that_cloned_the_shared_repository_while_empty_still_syncs(tmp_path: Path) -> None:
    """Two registries started apart (unrelated histories) merge: same files agree, tools add up."""
    bare = tmp_path / "shared.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(bare, "symbolic-ref", "HEAD", "refs/heads/main")
    git(tmp_path, "clone", "-q", str(bare), "b")
    b = Registry(tmp_path / "b")  # commits its README on an unborn branch
    add(b, "from_b")
    a = Registry(tmp_path / "a")
    git(a.root, "remote", "add", "origin", str(bare))
    add(a, "from_a")
    assert a.sync().pushed == 2
    report = b.sync()
    assert report.pulled == ["from_a"] and report.conflicts == []
    assert b.names() == ["from_a", "from_b"] and (b.root / ".gitignore").exists()
    a.sync()
    assert a.names() == b.names() and a.head() == b.head()
    clean(a)
    clean(b)


def test_sync_of_a_registry_inside_a_larger_repository_merges_the_persons_files_too(tmp_path: Path) -> None:
    bare = tmp_path / "shared.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(bare, "symbolic-ref", "HEAD", "refs/heads/main")
    one = tmp_path / "one"
    one.mkdir()
    git(one, "init", "-q", "-b", "main")
    (one / "app.py").write_text("v1\n")
    git(one, "add", "app.py")
    git(one, "-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qm", "app")
    git(one, "remote", "add", "origin", str(bare))
    a = Registry(one / "registry")
    add(a, "shared_tool")
    a.sync()
    git(tmp_path, "clone", "-q", str(bare), "two")
    b = Registry(tmp_path / "two" / "registry")
    (tmp_path / "two" / "app.py").write_text("v2\n")
    git(tmp_path / "two", "-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qam", "app v2")
    update(b, "shared_tool", 1)
    add(a, "other_tool")
    b.sync()
    report = a.sync()
    assert report.pulled == ["shared_tool"] and report.conflicts == []
    assert (one / "app.py").read_text() == "v2\n" and a.read("shared_tool").version == 2
    assert git(one, "status", "--porcelain") == ""
