"""``cairn`` as a person uses it, on a real registry in a temp dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.cli import main
from server.config import Settings
from server.service import Cairn
from tests.conftest import SLUGIFY, SLUGIFY_EXAMPLES, git

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def populated(settings: Settings) -> Path:
    with Cairn(settings) as cairn:
        cairn.start(verify="none")
        cairn.author(name="slugify", description="Turn text into a URL slug.", code=SLUGIFY,
                     examples=SLUGIFY_EXAMPLES, purpose="titles become URLs")
        cairn.author(name="slugify", description="Slugs, second edition.", code=SLUGIFY,
                     examples=SLUGIFY_EXAMPLES, base_version=1)
    return settings.registry


def cli(registry: Path, *args: str) -> int:
    return main([*args[:1], "--registry", str(registry), *args[1:]], environ={})


def test_list_prints_a_table_of_tools(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(populated, "list") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "VERSION", "STATUS", "UPDATED", "DESCRIPTION"]
    assert out[1].split()[:3] == ["slugify", "2", "active"]


def test_list_json_is_machine_readable(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(populated, "list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["name"] == "slugify" and rows[0]["version"] == 2 and rows[0]["problems"] == []


def test_show_prints_metadata_source_and_examples(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(populated, "show", "slugify") == 0
    out = capsys.readouterr().out
    assert out.startswith("slugify v2 (active)")
    assert "def slugify(text: str, separator: str = \"-\") -> str:" in out
    assert '[0] {"text": "Hello, World!"} -> "hello-world"' in out


def test_history_lists_every_version(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(populated, "history", "slugify") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:2] == ["2", "update"] and lines[2].split()[:2] == ["1", "add"]


def test_diff_shows_what_changed(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(populated, "diff", "slugify", "1", "2") == 0
    out = capsys.readouterr().out
    assert "-description = \"Turn text into a URL slug.\"" in out
    assert "+description = \"Slugs, second edition.\"" in out


def test_test_runs_examples_in_the_sandbox(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(populated, "test") == 0
    out = capsys.readouterr().out
    assert "PASS slugify: 2/2 examples passed" in out
    assert out.rstrip().endswith("1 passed, 0 failed")


def test_test_fails_when_a_tool_is_broken_by_hand(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = populated / "tools" / "slugify" / "tool.py"
    path.write_text(path.read_text().replace('separator.join(words)', 'separator.join(words).upper()'))
    assert cli(populated, "test", "slugify") == 1
    out = capsys.readouterr().out
    assert "FAIL slugify" in out and '"HELLO-WORLD"' in out


def test_rollback_deprecate_and_delete_are_commits(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(populated, "rollback", "slugify", "1") == 0
    assert "version 3 restores version 1" in capsys.readouterr().out
    assert cli(populated, "deprecate", "slugify", "--reason", "use slug_v2") == 0
    assert "deprecated in version 4" in capsys.readouterr().out
    assert cli(populated, "delete", "slugify") == 0
    capsys.readouterr()
    assert not (populated / "tools" / "slugify").exists()
    subjects = git(populated, "log", "--format=%s").splitlines()
    assert subjects[0].startswith("delete slugify")
    assert subjects[1].startswith("deprecate slugify v4")
    assert subjects[2].startswith("rollback slugify v3")
    assert cli(populated, "history", "slugify") == 0
    assert "add" in capsys.readouterr().out


def test_search_prints_ranked_matches(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(populated, "search", "url", "slug") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["SCORE", "NAME"] and out[1].split()[1] == "slugify"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "nope"], "no tool named 'nope'"),
        (["history", "nope"], "nope"),
        (["rollback", "slugify", "9"], "9"),
        (["diff", "slugify", "1", "7"], "7"),
    ],
)
def test_errors_are_one_line_and_exit_1(populated: Path, capsys: pytest.CaptureFixture[str], args, message) -> None:
    assert cli(populated, *args) == 1
    err = capsys.readouterr().err
    assert err.startswith("cairn: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_bad_environment_value_is_a_clear_error(registry_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--registry", str(registry_dir)], environ={"CAIRN_POOL_SIZE": "many"}) == 1
    assert "CAIRN_POOL_SIZE" in capsys.readouterr().err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["rollback", "slugify"], environ={})
    assert info.value.code == 2


def test_registry_comes_from_the_environment(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"], environ={"CAIRN_REGISTRY": str(populated)}) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "slugify"


def test_python_dash_m_server_is_the_cairn_command(populated: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "server", "list", "--registry", str(populated)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "slugify" in proc.stdout


def test_pytest_runs_a_registry_outside_this_repo(populated: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(populated)],
                          capture_output=True, text=True, cwd=populated, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


def test_pytest_item_ids_are_readable_and_failures_show_values(populated: Path) -> None:
    path = populated / "tools" / "slugify" / "tool.py"
    path.write_text(path.read_text().replace('separator.join(words)', 'separator.join(words).upper()'))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", str(populated)],
                          capture_output=True, text=True, cwd=populated, timeout=120)
    assert proc.returncode == 1
    assert "tools/slugify/test_slugify.py::test_example[0] FAILED" in proc.stdout
    assert '"hello-world"' in proc.stdout and '"HELLO-WORLD"' in proc.stdout


def test_output_cut_short_by_the_reader_ends_quietly(registry_dir: Path) -> None:
    """`cairn show big | head -1`: no traceback when the pipe closes before everything is written."""
    import fcntl

    padding = "".join(f"# line {i} of a long comment that makes the source large\n" for i in range(600))
    with Cairn(Settings(registry=registry_dir)) as cairn:
        cairn.start(verify="none")
        cairn.author(name="slugify", description="d", code=SLUGIFY + padding, examples=SLUGIFY_EXAMPLES)
    read_end, write_end = os.pipe()
    fcntl.fcntl(read_end, 1031, 4096)  # F_SETPIPE_SZ: one page, far less than the ~35 KB `show` prints
    proc = subprocess.Popen([sys.executable, "-m", "server", "show", "slugify", "--registry", str(registry_dir)],
                            stdout=write_end, stderr=subprocess.PIPE, cwd=ROOT)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        reader.readline()  # the reader takes one line and goes away
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err, err.decode()
    assert proc.returncode == 141


def test_changing_a_tool_that_is_on_disk_but_never_committed_says_how_to_commit_it(
        registry_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Cairn(Settings(registry=registry_dir)) as cairn:
        cairn.start(verify="none")
        cairn.author(name="slugify", description="d", code=SLUGIFY, examples=SLUGIFY_EXAMPLES)
    copy = registry_dir.parent / "copied"
    copy.mkdir()
    import shutil

    shutil.copytree(registry_dir / "tools", copy / "tools")  # a folder of tools, but no git history
    assert cli(copy, "deprecate", "slugify", "--reason", "old") == 1
    err = capsys.readouterr().err
    assert "on disk but not committed to git" in err and "git -C" in err
    assert cli(copy, "history", "slugify") == 1
    assert "not committed" in capsys.readouterr().err
