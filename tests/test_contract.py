"""The registry's and the docs' contracts, checked like datasette's test_docs.py: every tool folder is
complete and consistent, and the README documents every CLI flag, environment variable and meta-tool."""

from __future__ import annotations

import argparse
import ast
import re
import tomllib
from pathlib import Path

import pytest

from server.app import META_TOOLS
from server.cli import _parser
from server.config import ENVIRONMENT
from server.validate import analyse, schema_sha256

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "registry" / "tools"
README = (ROOT / "README.md").read_text() if (ROOT / "README.md").exists() else ""
FOLDERS = sorted(p for p in TOOLS.iterdir() if p.is_dir()) if TOOLS.exists() else []


def test_the_registry_ships_at_least_five_starter_tools() -> None:
    assert len(FOLDERS) >= 5, [p.name for p in FOLDERS]


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_tool_folder_has_its_three_files(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and p.name != "__pycache__") == \
        sorted(["tool.py", "tool.toml", f"test_{folder.name}.py"])


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_tool_metadata_matches_its_source(folder: Path) -> None:
    meta = tomllib.loads((folder / "tool.toml").read_text())
    sig = analyse((folder / "tool.py").read_text(), folder.name)  # raises when the source is unusable
    assert meta["name"] == folder.name
    assert meta["input_schema_sha256"] == schema_sha256(sig.input_schema)
    assert meta["output_schema_sha256"] == schema_sha256(sig.output_schema)
    assert sig.docstring.strip()
    assert len(meta["examples"]) >= 1
    assert meta["description"].strip()


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_generated_test_file_never_imports_the_tool(folder: Path) -> None:
    tree = ast.parse((folder / f"test_{folder.name}.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported == {"server.testing"}


def _flags() -> set[str]:
    flags: set[str] = set()
    parser = _parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                for a in sub._actions:
                    flags.update(o for o in a.option_strings if o.startswith("--") and o != "--help")
    return flags


def _commands() -> set[str]:
    for action in _parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


@pytest.mark.parametrize("flag", sorted(_flags()))
def test_readme_documents_every_cli_flag(flag: str) -> None:
    assert re.search(rf"{re.escape(flag)}\b", README), f"README.md does not mention {flag}"


@pytest.mark.parametrize("command", sorted(_commands()))
def test_readme_documents_every_cli_command(command: str) -> None:
    assert f"cairn {command}" in README, f"README.md does not show `cairn {command}`"


@pytest.mark.parametrize("variable", sorted(env for env, _, _ in ENVIRONMENT.values()))
def test_readme_documents_every_environment_variable(variable: str) -> None:
    assert variable in README


@pytest.mark.parametrize("tool", [m.name for m in META_TOOLS])
def test_readme_documents_every_meta_tool(tool: str) -> None:
    assert f"`{tool}`" in README


def test_readme_quick_start_has_the_two_commands() -> None:
    assert "scripts/serve" in README and "scripts/test" in README
