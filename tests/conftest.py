"""Shared fixtures. One autouse fixture isolates every test from real state: no test writes to the real
``registry/`` or the user's home, and git sees no global or system configuration (so the registry's own
default identity is what commits carry)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.config import Limits, Settings


@pytest.fixture(autouse=True)
def isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    for name in ("CAIRN_REGISTRY", "CAIRN_TOKEN", "CAIRN_EXPOSED_TOOLS", "CAIRN_PINNED", "CAIRN_SEARCH"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    """An empty folder for a registry of its own (Cairn runs ``git init`` there)."""
    path = tmp_path / "registry"
    path.mkdir()
    return path


@pytest.fixture
def settings(registry_dir: Path) -> Settings:
    return Settings(registry=registry_dir, limits=Limits(cpu_seconds=2, wall_seconds=5), pool_size=2,
                    watch_interval=0.1)


@pytest.fixture
def cairn(settings: Settings) -> Iterator:
    from server.service import Cairn

    with Cairn(settings) as c:
        c.start(verify="all")
        yield c


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


SLUGIFY = '''
import re
import unicodedata

def slugify(text: str, separator: str = "-") -> str:
    """Lower-case ASCII slug of text: accents dropped, runs of other characters become one separator."""
    normal = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[a-z0-9]+", normal.lower())
    return separator.join(words)
'''

SLUGIFY_EXAMPLES = [
    {"args": {"text": "Hello, World!"}, "expected": "hello-world"},
    {"args": {"text": "Crème Brûlée", "separator": "_"}, "expected": "creme_brulee"},
]
