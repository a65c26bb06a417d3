"""The domain service across restarts: the load cache is an accelerator, never a source of truth."""

from __future__ import annotations

from server.config import Settings
from server.service import Cairn
from tests.conftest import SLUGIFY, SLUGIFY_EXAMPLES


def author_slugify(settings: Settings) -> None:
    with Cairn(settings) as cairn:
        cairn.start(verify="none")
        cairn.author(name="slugify", description="Turn text into a URL slug.", code=SLUGIFY,
                     examples=SLUGIFY_EXAMPLES)


def test_restart_loads_tools_from_the_cache_and_rereads_edited_files(settings: Settings) -> None:
    author_slugify(settings)
    cache = settings.registry / ".cairn" / "load-cache.json"
    assert cache.exists()
    toml = settings.registry / "tools" / "slugify" / "tool.toml"
    toml.write_text(toml.read_text().replace("Turn text into a URL slug.", "Edited by a person."))
    with Cairn(settings) as cairn:
        cairn.start(verify="all")
        tool = cairn.tool("slugify")
        assert tool.record.description == "Edited by a person."
        assert tool.enabled


def test_unreadable_cache_is_ignored(settings: Settings) -> None:
    author_slugify(settings)
    (settings.registry / ".cairn" / "load-cache.json").write_text("{not json")
    with Cairn(settings) as cairn:
        cairn.start(verify="all")
        assert cairn.tool("slugify").enabled
        assert cairn.call("slugify", {"text": "A B"}).value == "a-b"


def test_cache_never_revives_a_broken_tool(settings: Settings) -> None:
    author_slugify(settings)
    source = settings.registry / "tools" / "slugify" / "tool.py"
    source.write_text(source.read_text().replace("def slugify(", "def slugify_renamed("))
    with Cairn(settings) as cairn:
        cairn.start(verify="all")
        assert not cairn.tool("slugify").enabled
    with Cairn(settings) as cairn:  # second start: the cached verdict is the same
        cairn.start(verify="all")
        assert any("named 'slugify'" in p for p in cairn.tool("slugify").problems)


def test_search_is_complete_right_after_a_background_start(settings: Settings) -> None:
    author_slugify(settings)
    (settings.registry / ".cairn" / "load-cache.json").unlink()
    with Cairn(settings) as cairn:
        cairn.start()  # verification and indexing run in the background; search waits for them
        assert [h.name for h in cairn.search("url slug")] == ["slugify"]


def test_private_state_never_shows_in_a_persons_git_status(tmp_path) -> None:
    """Inside a larger repository whose .gitignore says nothing about .cairn/, it still stays out."""
    from tests.conftest import git

    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.name", "Person")
    git(repo, "config", "user.email", "person@example.com")
    (repo / "notes.txt").write_text("mine\n")
    git(repo, "add", "notes.txt")
    git(repo, "commit", "-qm", "start")
    author_slugify(Settings(registry=repo / "registry"))
    assert (repo / "registry" / ".cairn" / "load-cache.json").exists()
    assert git(repo, "status", "--porcelain") == ""


def test_a_server_start_serves_tools_outside_the_working_set_at_once(settings: Settings) -> None:
    """Only the working set is read before serving; any other tool is read on demand meanwhile."""
    import dataclasses

    code = 'def {n}(x: int) -> int:\n    """Add {k}."""\n    return x + {k}\n'
    with Cairn(settings) as cairn:
        cairn.start(verify="none")
        for k in range(6):
            cairn.author(name=f"add{k}", description=f"add {k}", code=code.format(n=f"add{k}", k=k),
                         examples=[{"args": {"x": 1}, "expected": 1 + k}])
    small = dataclasses.replace(settings, exposed_tools=1)
    with Cairn(small) as cairn:
        cairn.start()
        assert cairn.call("add0", {"x": 1}).value == 1
        assert [t.name for t in cairn.exposed()] == ["add5"]
        assert len(cairn.all_tools()) == 6
        assert {h.name for h in cairn.search("add", limit=10)} == {f"add{k}" for k in range(6)}


def test_one_tools_stamp_matches_its_snapshot_entry(settings: Settings) -> None:
    """_install reads one tool's stamp instead of stat-ing the whole registry; both must agree."""
    author_slugify(settings)
    with Cairn(settings) as cairn:
        cairn.start(verify="none")
        assert cairn.registry.stamp("slugify") == cairn.registry.snapshot()["slugify"]
        assert cairn.registry.stamp("missing") is None
        assert cairn.poll_changes() == set()
