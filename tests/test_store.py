"""The registry store on real git repositories in temp folders: format, operations, git hygiene, history.

Concurrency and crashes are in test_store_concurrency.py, sync in test_store_sync.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from server import store
from server.errors import StoreError, ToolNotFound, VersionConflict
from server.models import Example, Provenance, ToolRecord
from server.store import TEST_TEMPLATE, Registry, dump_toml, parse_toml


def git(cwd: Path, *args: str, input: str | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, input=input).stdout


def record(name: str = "slugify", n: int = 0, **changes) -> ToolRecord:
    base = ToolRecord(
        name=name,
        description="Lower-case slug of a text.",
        code=f'def {name}(text: str) -> str:\n    """Slug."""\n    return text.lower()  # {n}\n',
        examples=(Example({"text": "A B"}, "a b"),),
        purpose=f"urls need slugs ({n})",
        tags=("text",),
    )
    return base.with_changes(**changes)


PROV = Provenance(client="pytest 9", checks="1/1 examples")


def add(registry: Registry, name: str = "slugify", **changes) -> tuple[ToolRecord, str]:
    return registry.save(record(name, **changes), action="add", base_version=None, provenance=PROV)


def update(registry: Registry, name: str = "slugify", n: int = 1, **changes) -> tuple[ToolRecord, str]:
    current = registry.read(name).version
    return registry.save(record(name, n, **changes), action="update", base_version=current, provenance=PROV)


def status(root: Path, *paths: str) -> str:
    return git(root, "status", "--porcelain", "--untracked-files=all", "--", *paths)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry")


# --------------------------------------------------------------------------- setup


def test_a_new_registry_folder_gets_git_init_a_default_identity_and_a_first_commit(tmp_path: Path) -> None:
    """With no git identity anywhere (HOME is empty), the new repository commits as Cairn."""
    assert subprocess.run(["git", "config", "--global", "user.name"], capture_output=True).returncode == 1
    root = tmp_path / "fresh"
    reg = Registry(root)
    assert (root / ".git").is_dir() and (root / "tools").is_dir() and (root / "README.md").is_file()
    assert git(root, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert git(root, "config", "user.name").strip() == "Cairn"
    assert git(root, "config", "user.email").strip() == "cairn@localhost"
    assert git(root, "log", "--format=%an <%ae>|%s").strip() == "Cairn <cairn@localhost>|Start a Cairn registry"
    assert status(root) == ""
    _, commit = add(reg)
    assert git(root, "log", "-1", "--format=%an <%ae>", commit).strip() == "Cairn <cairn@localhost>"


def test_the_first_commit_is_built_again_when_another_commit_lands_meanwhile(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "-c", "user.name=P", "-c", "user.email=p@x", "commit", "-q", "--allow-empty", "-m", "first")
    fired = []

    def other_program_commits_now(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "call" and frame.f_code.co_name == "_update_ref" and not fired:
            fired.append(True)
            commit = git(tmp_path, "-c", "user.name=P", "-c", "user.email=p@x", "commit-tree", "-p", "HEAD", "-m",
                         "meanwhile", git(tmp_path, "rev-parse", "HEAD^{tree}").strip()).strip()
            git(tmp_path, "update-ref", "refs/heads/main", commit)

    sys.setprofile(other_program_commits_now)
    try:
        Registry(tmp_path / "reg")
    finally:
        sys.setprofile(None)
    assert fired
    assert git(tmp_path, "log", "--format=%s").splitlines() == ["Start a Cairn registry", "meanwhile", "first"]
    assert status(tmp_path) == ""


def test_opening_a_registry_again_commits_nothing(registry: Registry) -> None:
    before = registry.head()
    again = Registry(registry.root)
    assert again.head() == before and again.root == registry.root


def test_an_existing_repository_without_identity_commits_as_cairn_and_keeps_its_config(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    reg = Registry(tmp_path / "reg")
    _, commit = add(reg)
    assert git(tmp_path, "log", "-1", "--format=%an <%ae>", commit).strip() == "Cairn <cairn@localhost>"
    assert subprocess.run(["git", "config", "user.name"], cwd=tmp_path, capture_output=True).returncode == 1


def test_the_first_commit_in_an_empty_repository_has_no_parent(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "README.md").write_text("readme\n")
    reg = Registry(tmp_path)  # README.md exists already: nothing is committed at open
    assert reg.head() is None
    _, commit = add(reg)
    assert git(tmp_path, "rev-list", "--parents", "-n", "1", commit).split() == [commit]
    assert git(tmp_path, "show", "--name-only", "--format=", commit).split() == [
        "tools/slugify/test_slugify.py", "tools/slugify/tool.py", "tools/slugify/tool.toml"]


def test_a_detached_head_is_a_store_error_that_says_what_to_do(registry: Registry) -> None:
    add(registry)
    git(registry.root, "checkout", "-q", "--detach")
    with pytest.raises(StoreError, match="detached HEAD.*switch"):
        update(registry)


def test_reading_works_without_git_on_a_plain_folder(tmp_path: Path, registry: Registry) -> None:
    saved, _ = add(registry)
    plain = tmp_path / "plain"
    (plain / "tools").mkdir(parents=True)
    subprocess.run(["cp", "-r", str(registry.tools_dir / "slugify"), str(plain / "tools")], check=True)
    reader = Registry(plain, init=False)
    assert reader.read("slugify") == saved
    assert reader.read_all() == ([saved], {})
    assert not (plain / ".git").exists() and reader.head() is None
    with pytest.raises(StoreError, match="not inside a git repository"):
        reader.history("slugify")


# --------------------------------------------------------------------------- format


def test_add_writes_the_three_files_in_the_documented_format(registry: Registry) -> None:
    code = 'def slugify(text: str) -> str:\r\n    return "é"  # no newline at the end'
    rec = record(code=code, tests="def test_a():\n    assert slugify('x') == 'é'\n",
                 examples=(Example({"text": "A"}, None), Example({"text": 1}, raises="TypeError")),
                 input_schema_sha256="a" * 64, output_schema_sha256="b" * 64, policy_version=3,
                 tags=("text", "url"))
    saved, _ = registry.save(rec, action="add", base_version=None, provenance=PROV)
    folder = registry.tools_dir / "slugify"
    assert sorted(p.name for p in folder.iterdir()) == ["test_slugify.py", "tool.py", "tool.toml"]
    assert (folder / "tool.py").read_bytes() == code.encode()
    assert (folder / "test_slugify.py").read_text() == TEST_TEMPLATE
    assert (folder / "tool.toml").read_text() == '''\
# Written by Cairn. Who and when: git log -- <this folder>.
name = "slugify"
version = 1
status = "active"
description = "Lower-case slug of a text."
purpose = "urls need slugs (0)"
tags = [
    "text",
    "url",
]
policy_version = 3
input_schema_sha256 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
output_schema_sha256 = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
tests = """
def test_a():
    assert slugify('x') == 'é'
"""

[[examples]]
args = "{\\"text\\": \\"A\\"}"
expected = "null"

[[examples]]
args = "{\\"text\\": 1}"
raises = "TypeError"
'''
    assert saved.version == 1 and registry.read("slugify") == saved


def test_the_test_template_is_the_one_the_lead_specified() -> None:
    assert TEST_TEMPLATE.startswith('"""Generated by Cairn for the tool in this folder')
    assert "from server.testing import tool_cases\n\nexample, restricted = tool_cases(__file__)\n" in TEST_TEMPLATE
    assert TEST_TEMPLATE.endswith("test_example = example\ntest_restricted = restricted\n")


def test_deprecation_reason_is_written_only_when_set(registry: Registry) -> None:
    add(registry)
    assert "deprecation_reason" not in (registry.tools_dir / "slugify" / "tool.toml").read_text()
    current = registry.read("slugify")
    registry.save(current.with_changes(status="deprecated", deprecation_reason="use slugify2"),
                  action="deprecate", base_version=1, provenance=Provenance(reason="use slugify2"))
    text = (registry.tools_dir / "slugify" / "tool.toml").read_text()
    assert 'status = "deprecated"' in text and 'deprecation_reason = "use slugify2"\n' in text


AWKWARD = ["", 'a "quoted" word', "back\\slash", "tab\there", "two\nlines", "crlf\r\nline", "lone\rcr",
           '"""', 'ends with a quote"', "ends with a backslash\\", "\x00\x01\x1f\x7f", "ünïcødé ✓ 😀",
           "\u2028", "\\n is not a newline", "\\u0041", "\n\nleading", "trailing\n\n", "# not a comment",
           "[[examples]]", "key = value", "\\\n"]


@pytest.mark.parametrize("text", AWKWARD, ids=range(len(AWKWARD)))
def test_tool_toml_keeps_awkward_strings_exactly(text: str) -> None:
    rec = record(description=text, purpose=text, tags=(text,), deprecation_reason=text,
                 tests=f"def test_x():\n    assert {text!r}\n{text}",
                 examples=(Example({"text": text, "n": [1, 1.0, None, True]}, {"k": text}),)).with_changes(code="")
    dumped = dump_toml(rec.with_changes(version=4))
    assert parse_toml(dumped, "slugify") == rec.with_changes(version=4)
    fast = store._fast_toml(dumped)
    assert fast is None or fast == tomllib.loads(dumped)


HAND_WRITTEN = '''\
# edited by a person
name = 'slugify'   # literal string
version = 3
description = """
Makes slugs."""
examples = [ { args = '{"text": "A"}', expected = '"a"' } ]
'''


def test_hand_written_toml_in_any_valid_style_is_read() -> None:
    assert store._fast_toml(HAND_WRITTEN) is None  # not the shape Cairn writes: tomllib reads it
    rec = parse_toml(HAND_WRITTEN, "slugify")
    assert (rec.name, rec.version, rec.description, rec.examples) == (
        "slugify", 3, "Makes slugs.", (Example({"text": "A"}, "a"),))


@pytest.mark.parametrize("text, problem", [
    ("name = 'x'\nversion = 1\ndescription = 'd'\n", "names 'x' but the folder is 'slugify'"),
    ("name = 'slugify'\ndescription = 'd'\n", "has no 'version'"),
    ("name = 'slugify'\nversion = 'one'\ndescription = 'd'\n", "'version' has the wrong type"),
    ("name = 'slugify'\nversion = 1\ndescription = 'd'\nstatus = 'gone'\n", "status must be"),
    ("name = 'slugify'\nversion = 1\ndescription = 'd'\n[[examples]]\nargs = '{'\nexpected = '1'\n",
     "example 0: args is not JSON text"),
    ("name = 'slugify'\nversion = 1\ndescription = 'd'\n[[examples]]\nargs = '{}'\n", "needs expected"),
    ("name = = 1", "not valid TOML"),
])
def test_unreadable_tool_toml_names_its_problem(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_toml(text, "slugify")


# --------------------------------------------------------------------------- operations and commits


def test_each_change_is_one_commit_of_only_the_tool_folder_with_message_and_trailers(registry: Registry) -> None:
    root = registry.root
    _, first = add(registry)
    _, second = update(registry, n=1)
    assert git(root, "rev-list", "--count", f"{first}..{second}").strip() == "1"
    assert git(root, "show", "--name-only", "--format=", second).split() == [
        "tools/slugify/tool.py", "tools/slugify/tool.toml"]
    assert git(root, "log", "-1", "--format=%B", second) == (
        "update slugify v2: urls need slugs (1)\n\n"
        "Cairn-Tool: slugify\nCairn-Version: 2\nCairn-Action: update\n"
        "Cairn-Client: pytest 9\nCairn-Checks: 1/1 examples\n\n")
    assert git(root, "fsck", "--strict", "--no-dangling").strip() == ""


def test_the_commit_subject_is_one_line_and_a_long_reason_goes_to_the_body(registry: Registry) -> None:
    reason = "Because " + "very " * 30 + "long.\nSecond line."
    _, commit = registry.save(record(), action="add", base_version=None, provenance=Provenance(reason=reason))
    subject, _, rest = git(registry.root, "log", "-1", "--format=%B", commit).partition("\n\n")
    assert subject.startswith("add slugify v1: Because very") and subject.endswith("...") and len(subject) <= 72
    assert rest.startswith(reason + "\n\nCairn-Tool: slugify\n")


def test_adding_an_existing_tool_is_a_conflict_naming_its_version_and_commit(registry: Registry) -> None:
    add(registry)
    _, commit = update(registry)
    with pytest.raises(VersionConflict) as caught:
        add(registry)
    assert (caught.value.base_version, caught.value.current_version, caught.value.commit) == (None, 2, commit)
    assert "already exists at version 2" in str(caught.value) and commit[:12] in str(caught.value)


def test_an_update_from_a_stale_base_version_is_a_conflict_naming_the_current_version_and_commit(
        registry: Registry) -> None:
    add(registry)
    update(registry, n=1)
    _, commit = update(registry, n=2)
    with pytest.raises(VersionConflict) as caught:
        registry.save(record(n=9), action="update", base_version=1, provenance=PROV)
    assert (caught.value.base_version, caught.value.current_version, caught.value.commit) == (1, 3, commit)
    assert "is at version 3" in str(caught.value) and "base_version=3" in str(caught.value)
    assert registry.read("slugify").code == record(n=2).code


def test_updating_a_tool_that_does_not_exist_is_tool_not_found(registry: Registry) -> None:
    with pytest.raises(ToolNotFound):
        registry.save(record(), action="update", base_version=1, provenance=PROV)


def test_read_of_a_missing_tool_is_tool_not_found(registry: Registry) -> None:
    with pytest.raises(ToolNotFound):
        registry.read("nothing")
    with pytest.raises(ToolNotFound):
        registry.read("Not A Name")


def test_history_lists_every_version_newest_first_with_commit_author_date_message_checks_and_client(
        registry: Registry) -> None:
    _, c1 = add(registry)
    _, c2 = update(registry, n=1)
    _, c3 = registry.save(record(n=2), action="update", base_version=2,
                          provenance=Provenance(reason="faster", checks="2/2 examples"))
    history = registry.history("slugify")
    assert [(h.version, h.action, h.commit) for h in history] == [(3, "update", c3), (2, "update", c2),
                                                                  (1, "add", c1)]
    assert history[0].message == "update slugify v3: faster"
    assert (history[0].checks, history[0].client) == ("2/2 examples", None)
    assert (history[2].checks, history[2].client) == ("1/1 examples", "pytest 9")
    assert history[0].author == "Cairn <cairn@localhost>" and history[0].date[:2] == "20" and "T" in history[0].date
    assert registry.current_commit("slugify") == c3


def test_history_of_a_tool_committed_by_a_person_takes_the_version_from_its_toml(registry: Registry) -> None:
    add(registry)
    toml_path = registry.tools_dir / "slugify" / "tool.toml"
    toml_path.write_text(toml_path.read_text().replace("version = 1", "version = 2"))
    (registry.tools_dir / "slugify" / "tool.py").write_text(record(n=5).code)
    git(registry.root, "commit", "-qam", "tweak the slug by hand")
    history = registry.history("slugify")
    assert [(h.version, h.action, h.message) for h in history] == [
        (2, "update", "tweak the slug by hand"), (1, "add", "add slugify v1: urls need slugs (0)")]
    assert registry.read_version("slugify", 2).code == record(n=5).code
    saved, _ = update(registry, n=6)
    assert saved.version == 3


def test_read_version_returns_old_content_and_names_the_versions_that_exist(registry: Registry) -> None:
    first, _ = add(registry)
    update(registry, n=1)
    assert registry.read_version("slugify", 1) == first
    with pytest.raises(ToolNotFound, match="no version 7; its versions: 1, 2"):
        registry.read_version("slugify", 7)


def test_a_rollback_commits_the_old_content_as_a_new_version(registry: Registry) -> None:
    first, _ = add(registry)
    update(registry, n=1)
    old = registry.read_version("slugify", 1)
    saved, commit = registry.save(old, action="rollback", base_version=2,
                                  provenance=Provenance(reason="restore version 1"))
    assert saved.version == 3
    assert registry.read("slugify") == registry.read_version("slugify", 3) == first.with_changes(version=3)
    assert git(registry.root, "log", "-1", "--format=%s", commit).strip() == "rollback slugify v3: restore version 1"


def test_deprecate_changes_the_status_and_the_tool_stays_readable(registry: Registry) -> None:
    add(registry)
    current = registry.read("slugify")
    saved, _ = registry.save(current.with_changes(status="deprecated", deprecation_reason="use slug2"),
                             action="deprecate", base_version=1, provenance=Provenance(reason="use slug2"))
    assert registry.read("slugify") == saved and saved.status == "deprecated" and saved.version == 2
    assert registry.history("slugify")[0].action == "deprecate"


def test_delete_removes_the_folder_in_one_commit_and_history_keeps_it(registry: Registry) -> None:
    first, _ = add(registry)
    update(registry, n=1)
    commit = registry.delete("slugify", base_version=2, provenance=Provenance(reason="not needed"))
    assert not (registry.tools_dir / "slugify").exists()
    assert git(registry.root, "show", "--name-only", "--format=%s", commit).split() == [
        "delete", "slugify", "v2:", "not", "needed",
        "tools/slugify/test_slugify.py", "tools/slugify/tool.py", "tools/slugify/tool.toml"]
    with pytest.raises(ToolNotFound):
        registry.read("slugify")
    assert [(h.version, h.action) for h in registry.history("slugify")] == [(2, "delete"), (2, "update"), (1, "add")]
    assert registry.read_version("slugify", 1) == first
    assert status(registry.root) == ""


def test_a_deleted_tool_added_again_continues_its_version_numbers(registry: Registry) -> None:
    add(registry)
    registry.delete("slugify", provenance=PROV)
    again, _ = add(registry, n=3)
    assert again.version == 2
    assert [(h.version, h.action) for h in registry.history("slugify")] == [(2, "add"), (1, "delete"), (1, "add")]


def test_delete_with_a_stale_base_version_is_a_conflict(registry: Registry) -> None:
    add(registry)
    update(registry)
    with pytest.raises(VersionConflict):
        registry.delete("slugify", base_version=1, provenance=PROV)
    assert registry.read("slugify").version == 2


def test_diff_shows_what_changed_between_two_versions(registry: Registry) -> None:
    add(registry)
    update(registry, n=1)
    text = registry.diff("slugify", 1, 2)
    assert "--- v1/slugify/tool.py\n+++ v2/slugify/tool.py" in text
    assert "-    return text.lower()  # 0\n+    return text.lower()  # 1\n" in text
    assert "-version = 1\n+version = 2\n" in text
    assert registry.diff("slugify", 2, 2) == ""
    with pytest.raises(ToolNotFound, match="no version 5"):
        registry.diff("slugify", 1, 5)


def test_git_status_is_clean_after_every_operation(registry: Registry) -> None:
    root = registry.root
    add(registry)
    assert status(root) == ""
    update(registry)
    assert status(root) == ""
    registry.save(registry.read_version("slugify", 1), action="rollback", base_version=2, provenance=PROV)
    assert status(root) == ""
    registry.save(registry.read("slugify").with_changes(status="deprecated", deprecation_reason="r"),
                  action="deprecate", base_version=3, provenance=PROV)
    assert status(root) == ""
    registry.delete("slugify", provenance=PROV)
    assert status(root) == ""
    assert git(root, "diff", "--cached", "--name-only") == "" and git(root, "diff", "--name-only") == ""


def test_uncommitted_edits_to_a_tool_are_never_overwritten(registry: Registry) -> None:
    add(registry)
    tool_py = registry.tools_dir / "slugify" / "tool.py"
    tool_py.write_text("# a person's work in progress\n")
    with pytest.raises(StoreError, match="not committed.*tool.py.*commit them"):
        update(registry)
    with pytest.raises(StoreError, match="not committed"):
        registry.delete("slugify", provenance=PROV)
    assert tool_py.read_text() == "# a person's work in progress\n"
    (registry.tools_dir / "other").mkdir()
    (registry.tools_dir / "other" / "tool.py").write_text("def other() -> int:\n    return 1\n")
    with pytest.raises(StoreError, match="tools/other has changes that are not committed"):
        add(registry, "other")


def test_names_that_could_leave_the_registry_are_refused(registry: Registry, tmp_path: Path) -> None:
    for bad in ["../evil", "a/b", "", "Slugify", "x" * 49, "_x", "1x"]:
        with pytest.raises(StoreError, match="is not a tool name"):
            registry.save(record().with_changes(name=bad), action="add", base_version=None, provenance=PROV)
    outside = tmp_path / "outside"
    outside.mkdir()
    (registry.tools_dir / "linked").symlink_to(outside)
    with pytest.raises(StoreError, match="leads outside the registry"):
        add(registry, "linked")
    assert list(outside.iterdir()) == []


# --------------------------------------------------------------------------- a person's repository


@pytest.fixture
def product(tmp_path: Path) -> Path:
    """A person's repository with a committed file, a staged change and an unstaged edit."""
    root = tmp_path / "product"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Person")
    git(root, "config", "user.email", "person@example.com")
    (root / "app.py").write_text("print('v1')\n")
    (root / "notes.md").write_text("notes v1\n")
    git(root, "add", ".")
    git(root, "commit", "-qm", "start")
    (root / "app.py").write_text("print('v2, staged')\n")
    git(root, "add", "app.py")
    (root / "app.py").write_text("print('v3, unstaged on top of staged')\n")
    (root / "new.txt").write_text("a new staged file\n")
    git(root, "add", "new.txt")
    (root / "notes.md").write_text("notes v2, unstaged\n")
    return root


def test_a_persons_staged_and_unstaged_work_survives_an_author_byte_for_byte(product: Path) -> None:
    before = {p: (product / p).read_bytes() for p in ("app.py", "notes.md", "new.txt")}
    staged_before = git(product, "diff", "--cached")
    unstaged_before = git(product, "diff")
    reg = Registry(product / "registry")  # README.md is created and committed, nothing else
    add(reg)
    update(reg)
    assert {p: (product / p).read_bytes() for p in before} == before
    assert git(product, "diff", "--cached") == staged_before
    assert git(product, "diff") == unstaged_before
    assert git(product, "diff", "--cached", "--name-only").split() == ["app.py", "new.txt"]
    assert status(product, "registry") == ""


def test_a_registry_inside_a_larger_repository_commits_only_registry_paths(product: Path) -> None:
    reg = Registry(product / "registry")
    _, commit = add(reg)
    assert git(product, "show", "--name-only", "--format=", commit).split() == [
        "registry/tools/slugify/test_slugify.py", "registry/tools/slugify/tool.py", "registry/tools/slugify/tool.toml"]
    touched = git(product, "log", "--format=", "--name-only", "HEAD~2..HEAD").split()
    assert all(p.startswith("registry/") for p in touched) and "registry/README.md" in touched
    assert git(product, "log", "-1", "--format=%an", commit).strip() == "Person"
    history = reg.history("slugify")
    assert [h.commit for h in history] == [commit]
    assert reg.diff("slugify", 1, 1) == ""


# --------------------------------------------------------------------------- reading many


def test_read_all_reads_every_tool_and_reports_broken_folders(registry: Registry) -> None:
    good, _ = add(registry, "good")
    add(registry, "nofile")
    add(registry, "badtoml")
    add(registry, "renamed")
    (registry.tools_dir / "nofile" / "tool.py").unlink()
    (registry.tools_dir / "badtoml" / "tool.toml").write_text("name = = 'x'\n")
    toml = registry.tools_dir / "renamed" / "tool.toml"
    toml.write_text(toml.read_text().replace('name = "renamed"', 'name = "other"'))
    (registry.tools_dir / "Bad-Name").mkdir()
    (registry.tools_dir / "__pycache__").mkdir()
    records, broken = registry.read_all()
    assert records == [good]
    assert sorted(broken) == ["Bad-Name", "badtoml", "nofile", "renamed"]
    assert broken["nofile"] == ["tools/nofile/tool.py is missing"]
    assert "not valid TOML" in broken["badtoml"][0]
    assert "names 'other' but the folder is 'renamed'" in broken["renamed"][0]
    assert registry.names() == ["badtoml", "good", "nofile", "renamed"]
    with pytest.raises(StoreError, match="tool.py is missing"):
        registry.read("nofile")


def test_snapshot_and_head_change_when_a_tool_changes(registry: Registry) -> None:
    add(registry)
    snap, head = registry.snapshot(), registry.head()
    assert set(snap) == {"slugify"} and head == git(registry.root, "rev-parse", "HEAD").strip()
    update(registry)
    assert registry.snapshot()["slugify"] != snap["slugify"]
    assert registry.head() != head
    git(registry.root, "pack-refs", "--all")  # the ref now lives in packed-refs only
    assert registry.head() == git(registry.root, "rev-parse", "HEAD").strip()


# --------------------------------------------------------------------------- foreign writers, recovery


def test_a_foreign_commit_made_during_a_save_is_kept_and_the_save_builds_on_it(registry: Registry) -> None:
    """The branch is moved by compare-and-swap: a commit landing mid-save (here made the way programs that
    never touch the index make one: commit-tree and update-ref) makes the swap fail and the save rebuilds on
    the new head, so neither commit is lost."""
    add(registry)
    root = registry.root
    fired = []

    def other_program_commits_now(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "call" and frame.f_code.co_name == "_start_update_ref" and not fired:
            fired.append(True)
            blob = git(root, "hash-object", "-w", "--stdin", input="mine\n").strip()
            tree = git(root, "mktree", input=git(root, "ls-tree", "HEAD") + f"100644 blob {blob}\tperson.txt\n")
            commit = git(root, "-c", "user.name=Person", "-c", "user.email=p@x", "commit-tree", tree.strip(),
                         "-p", "HEAD", "-m", "person's commit").strip()
            git(root, "update-ref", "refs/heads/main", commit)

    sys.setprofile(other_program_commits_now)
    try:
        saved, commit = update(registry, n=1)
    finally:
        sys.setprofile(None)
    assert fired and saved.version == 2
    assert git(root, "log", "--format=%s", "-3").splitlines() == [
        "update slugify v2: urls need slugs (1)", "person's commit", "add slugify v1: urls need slugs (0)"]
    assert git(root, "show", "HEAD:person.txt") == "mine\n"
    assert status(root, "tools") == "" and registry.read("slugify") == saved


def test_a_persons_git_commit_cannot_land_between_the_branch_move_and_the_index_refresh(registry: Registry) -> None:
    """Git's index lock is held from before the ref update to the index refresh: a ``git commit`` in between
    fails the way git fails when another git runs, instead of recording the old index (which would undo
    the tool change in the person's commit). Run again afterwards, it commits and keeps the tool change."""
    add(registry)
    root = registry.root
    (root / "person.txt").write_text("mine\n")
    attempts: list[subprocess.CompletedProcess[str]] = []

    def person_commits_now(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "call" and frame.f_code.co_name == "_update_index" and not attempts:
            attempts.append(subprocess.run(["git", "-c", "user.name=Person", "-c", "user.email=p@x", "commit", "-qam",
                                            "person's commit", "--allow-empty"], cwd=root, capture_output=True,
                                           text=True))

    sys.setprofile(person_commits_now)
    try:
        saved, _ = update(registry, n=1)
    finally:
        sys.setprofile(None)
    assert attempts and attempts[0].returncode != 0 and "index.lock" in attempts[0].stderr
    assert not (root / ".git" / "index.lock").exists()
    git(root, "add", "person.txt")
    git(root, "-c", "user.name=Person", "-c", "user.email=p@x", "commit", "-qm", "person's commit")
    assert git(root, "log", "--format=%s", "-2").splitlines() == ["person's commit", "update slugify v2: urls need slugs (1)"]
    assert status(root) == "" and registry.read("slugify") == saved
    assert git(root, "show", "HEAD:tools/slugify/tool.py") == saved.code


def test_a_dead_writers_index_lock_is_removed_and_a_crashed_gits_is_waited_out(registry: Registry,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    add(registry)
    root = registry.root
    lock = root / ".git" / "index.lock"
    lock.write_bytes(store._INDEX_LOCK_MARK)  # what a Cairn writer killed while committing leaves
    messages = registry.recover()
    assert "removed the git index lock left by a Cairn process stopped while committing" in messages
    assert not lock.exists()
    lock.write_bytes(store._INDEX_LOCK_MARK)
    update(registry, n=1)  # a writer finding one removes it too, rather than waiting
    assert not lock.exists() and status(root) == ""
    # A lock that is not Cairn's (a git that crashed mid-write) is left alone: the save waits, then commits
    # without refreshing the index, and the next writer refreshes it once the lock is gone.
    lock.write_bytes(b"DIRC\0\0\0\2")
    monkeypatch.setattr(store, "_INDEX_LOCK_WAIT", 0.05)
    saved, _ = update(registry, n=2)
    assert lock.exists() and git(root, "show", "HEAD:tools/slugify/tool.py") == saved.code
    lock.unlink()
    update(registry, n=3)
    assert status(root) == ""
    assert not list((root / ".git" / "cairn").glob("index*"))


def test_recover_reports_a_dead_owners_lock_and_folders_that_are_not_committed(registry: Registry) -> None:
    add(registry)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = registry.root / ".git" / "cairn.lock"
    lock.write_text(f"{dead.pid}\n")
    (registry.tools_dir / "draft").mkdir()
    (registry.tools_dir / "draft" / "tool.py").write_text("def draft() -> int:\n    return 1\n")
    (registry.tools_dir / "slugify" / ".tool.py.cairn-tmp").write_text("half")
    (registry.tools_dir / "slugify" / "tool.py").write_text("# edited\n")
    messages = registry.recover()
    assert any(f"lock left by Cairn process {dead.pid}" in m for m in messages)
    assert any("tools/draft: not committed" in m for m in messages)
    assert any("tools/slugify: uncommitted changes to tool.py (kept)" in m for m in messages)
    assert any("removed a temp file" in m and ".tool.py.cairn-tmp" in m for m in messages)
    assert not (registry.tools_dir / "slugify" / ".tool.py.cairn-tmp").exists()
    assert (registry.tools_dir / "slugify" / "tool.py").read_text() == "# edited\n"
    assert lock.read_text() == ""


def test_recover_writes_a_commit_graph_with_changed_path_bloom_filters(registry: Registry) -> None:
    add(registry)
    assert registry.recover() == []
    info = registry.root / ".git" / "objects" / "info"
    assert (info / "commit-graphs" / "commit-graph-chain").exists() or (info / "commit-graph").exists()
    trace = subprocess.run(["git", "log", "--format=%H", "--", "tools/slugify"], cwd=registry.root,
                           capture_output=True, text=True, env={**os.environ, "GIT_TRACE2_PERF": "1"}).stderr
    assert '"filter_not_present":0' in trace


ODD_TOML = [
    'name = "a"\nname = "b"\n',
    'examples = []\n[[examples]]\nargs = "{}"\n',
    'name = "x"\r\nversion = 1\r\n',
    'name = "tab\tinside"\n',
    'name = "\\/"\n',
    'name = "\\U0001F600"\n',
    'name = "\\ud800"\n',
    'tests = """\nline \\\n  continued"""\n',
    'tests = """\na""""\n',
    'tests = """\nunclosed\n',
    'version = 0x10\n',
    'version = 1_000\n',
    'tags = ["a", "b"]\n',
    'tags = [\n    "a",\n    "b"\n]\n',
    'name = "x" # comment\n',
    '[tool]\nname = "x"\n',
]


@pytest.mark.parametrize("text", ODD_TOML, ids=range(len(ODD_TOML)))
def test_the_fast_toml_reader_agrees_with_tomllib_or_leaves_the_file_to_it(text: str) -> None:
    """The fast path reads only the shapes Cairn writes; on anything else it steps aside."""
    fast = store._fast_toml(text)
    try:
        expected = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        assert fast is None
        return
    assert fast is None or fast == expected


def test_changes_in_a_large_tools_folder_keep_the_tree_sorted_and_sound(registry: Registry) -> None:
    """Past a few dozen tools, tree entries are replaced by splicing the raw tree: git must agree with it."""
    names = [f"tool_{i:02d}" for i in range(0, 80, 2)]
    for name in names:
        add(registry, name)
    assert len(git(registry.root, "cat-file", "-p", "HEAD:tools")) > 1024
    registry.delete("tool_40", provenance=PROV)
    add(registry, "tool_41")
    add(registry, "tool_4")
    update(registry, "tool_78", n=2)
    expected = sorted((set(names) - {"tool_40"}) | {"tool_41", "tool_4"})
    assert git(registry.root, "ls-tree", "--name-only", "HEAD", "tools/").split() == [f"tools/{n}" for n in expected]
    assert git(registry.root, "fsck", "--strict", "--no-dangling").strip() == ""
    assert registry.read_version("tool_78", 2) == registry.read("tool_78")
    assert status(registry.root) == ""


def test_a_sha256_repository_works_too(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "--object-format=sha256", "-b", "main", "repo")
    reg = Registry(tmp_path / "repo")
    first, _ = add(reg)
    _, commit = update(reg)
    assert len(commit) == 64 and reg.read_version("slugify", 1) == first
    assert git(reg.root, "fsck", "--strict", "--no-dangling").strip() == "" and status(reg.root) == ""


def test_a_tool_deleted_by_a_person_with_git_rm_shows_as_deleted_in_history(registry: Registry) -> None:
    add(registry)
    update(registry)
    git(registry.root, "rm", "-rq", "tools/slugify")
    git(registry.root, "commit", "-qm", "remove slugify by hand")
    assert [(h.version, h.action) for h in registry.history("slugify")] == [(2, "delete"), (2, "update"), (1, "add")]
    again, _ = add(registry)
    assert again.version == 3


def test_a_stale_git_ref_lock_makes_a_save_fail_with_gits_own_advice(registry: Registry) -> None:
    add(registry)
    lock = registry.root / ".git" / "refs" / "heads" / "main.lock"
    lock.write_text("")
    with pytest.raises(StoreError, match="could not move the branch.*main.lock"):
        update(registry)
    lock.unlink()
    assert registry.read("slugify").version == 1 and status(registry.root) == ""
    assert update(registry)[0].version == 2
