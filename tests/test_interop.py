"""Interop: Cairn driven by MCP clients nobody on the team wrote, installed from npm into tests/interop
(``scripts/setup.sh --interop``): the official TypeScript SDK client (through ``tests/interop/ts_client.mjs``)
and the MCP Inspector CLI. Real server processes over stdio and streamable HTTP, no mocks. Skipped when
node or the npm packages are missing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from server.config import Settings
from server.service import Cairn
from tests.conftest import SLUGIFY, SLUGIFY_EXAMPLES
from tests.test_e2e import ROOT, http_server, server_env

pytestmark = pytest.mark.interop

INTEROP = ROOT / "tests" / "interop"
TS_CLIENT = INTEROP / "ts_client.mjs"
NPM = INTEROP / "node_modules" / "@modelcontextprotocol"
INSPECTOR = NPM / "inspector" / "clients" / "launcher" / "build" / "index.js"
AUTHOR = {"name": "slugify", "description": "Turn text into a URL slug.", "code": SLUGIFY, "examples": SLUGIFY_EXAMPLES}
META_TOOLS = {"author_tool", "run_code", "search_tools", "call_tool", "get_tool", "tool_history", "rollback_tool",
              "deprecate_tool"}


@pytest.fixture
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not on PATH: the interop tests need Node.js 18+")
    for needed in (NPM / "sdk", INSPECTOR):
        if not needed.exists():
            pytest.skip(f"{needed.relative_to(ROOT)} is missing: run scripts/setup.sh --interop")
    return path


def serve_stdio(registry: Path) -> list[str]:
    return [sys.executable, "-m", "server", "serve", "--registry", str(registry)]


def run_node(node: str, *args: str, timeout: float = 45) -> subprocess.CompletedProcess[str]:
    return subprocess.run([node, *args], cwd=ROOT, env=server_env(), capture_output=True, text=True,
                          timeout=timeout)


# ------------------------------------------------------------------ TypeScript SDK client


def ts_client(node: str, target: list[str], *, observers: Sequence[str] = (), token: str | None = None,
              text: str = "Crème Brûlée", separator: str | None = None,
              expected: str = "creme-brulee") -> dict[str, Any]:
    """Run ts_client.mjs against ``target``; return its JSON report (it has checked everything it reports)."""
    arguments = {"text": text} | ({"separator": separator} if separator else {})
    args = [str(TS_CLIENT), "--author", json.dumps(AUTHOR), "--call", json.dumps({"arguments": arguments,
                                                                                     "result": expected})]
    for observer in observers:
        args += ["--observer", observer]
    if token:
        args += ["--token", token]
    proc = run_node(node, *args, "--", *target)
    assert proc.returncode == 0, f"ts_client failed (exit {proc.returncode}):\n{proc.stderr}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"TypeScript SDK negotiated protocol version {report['protocolVersion']} "
          f"(observers: {report['observerProtocolVersions']}); notified after {report['notifiedAfterMs']} ms; "
          f"notifications heard: {report['notifications']}; noise while closing: {report['closeNoise']}")
    assert report["ok"] is True
    assert report["capabilities"]["tools"]["listChanged"] is True
    assert META_TOOLS <= set(report["toolsBefore"]) and "slugify" not in report["toolsBefore"]
    assert report["tool"]["outputSchema"] == {"type": "object", "properties": {"result": {"type": "string"}},
                                              "required": ["result"]}
    assert report["tool"]["annotations"]["readOnlyHint"] is True
    assert report["structuredContent"] == report["viaCallTool"] == {"result": expected}
    assert report["observerResults"] == [{"result": expected}] * len(observers)
    assert report["clientErrors"] == {label: [] for label in report["clientErrors"]}
    return report


def test_ts_sdk_over_stdio_authors_and_another_server_process_is_notified(node: str, registry_dir: Path) -> None:
    # The primary spawns one `cairn serve`, the observer a second one on the same registry.
    report = ts_client(node, serve_stdio(registry_dir), observers=[json.dumps(serve_stdio(registry_dir))])
    assert report["observers"] == [f"stdio {' '.join(serve_stdio(registry_dir))}"]


def test_ts_sdk_over_http_every_session_and_a_stdio_process_are_notified(node: str, registry_dir: Path) -> None:
    with http_server(registry_dir) as url:
        report = ts_client(node, [url], observers=[url, json.dumps(serve_stdio(registry_dir))],
                           text="Hello World", separator="_", expected="hello_world")
    assert report["observers"] == [f"http {url}", f"stdio {' '.join(serve_stdio(registry_dir))}"]


def test_ts_sdk_over_http_sends_the_bearer_token(node: str, registry_dir: Path) -> None:
    with http_server(registry_dir, token="s3cret") as url:
        report = ts_client(node, [url], observers=[url], token="s3cret", text="With Token", expected="with-token")
    assert report["withoutToken"]["code"] == 401


# ------------------------------------------------------------------ MCP Inspector CLI


@pytest.fixture
def authored(settings: Settings) -> Path:
    """A registry holding slugify, written through the same domain API the CLI uses."""
    with Cairn(settings) as cairn:
        cairn.start(verify="none")
        cairn.author(**AUTHOR)
    return settings.registry


def inspector(node: str, *args: str, target: list[str], expect_exit: int = 0) -> dict[str, Any]:
    """Run ``inspector --cli --format json ARGS -- TARGET``; return its JSON output (``result`` or ``error``)."""
    proc = run_node(node, str(INSPECTOR), "--cli", "--format", "json", *args, "--", *target, timeout=30)
    assert proc.returncode == expect_exit, f"inspector exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout if proc.stdout.strip() else proc.stderr.strip().splitlines()[-1])


STDIO_OPTIONS = ("-e", f"PYTHONPATH={ROOT}", "-e", "CAIRN_WATCH_INTERVAL=0.2", "--cwd", str(ROOT))


def test_inspector_cli_over_stdio_lists_and_calls(node: str, authored: Path) -> None:
    # --strict: exit 6 if any listed tool schema has an error-severity portability problem.
    listed = inspector(node, *STDIO_OPTIONS, "--method", "tools/list", "--strict", target=serve_stdio(authored))
    tools = {t["name"]: t for t in listed["result"]["tools"]}
    assert META_TOOLS | {"slugify"} == set(tools)
    assert tools["slugify"]["outputSchema"]["properties"] == {"result": {"type": "string"}}

    called = inspector(node, *STDIO_OPTIONS, "--method", "tools/call", "--tool-name", "slugify",
                       "--tool-arg", "text=Crème Brûlée", "separator=_", target=serve_stdio(authored))
    assert called["result"]["structuredContent"] == {"result": "creme_brulee"}
    assert called["result"]["isError"] is False
    assert json.loads(called["result"]["content"][0]["text"]) == "creme_brulee"

    source = inspector(node, *STDIO_OPTIONS, "--method", "resources/read", "--uri", "cairn://tools/slugify",
                       target=serve_stdio(authored))
    assert source["result"]["contents"][0]["text"] == SLUGIFY

    via_meta = inspector(node, *STDIO_OPTIONS, "--method", "tools/call", "--tool-name", "call_tool", "--tool-args-json",
                         json.dumps({"name": "slugify", "arguments": {"text": "Via Call Tool"}}),
                         target=serve_stdio(authored))
    assert via_meta["result"]["structuredContent"] == {"result": "via-call-tool"}


def test_inspector_cli_over_http_sees_a_new_tool_on_its_next_list(node: str, registry_dir: Path,
                                                                    settings: Settings) -> None:
    with http_server(registry_dir, token="s3cret") as url:
        auth = ("--header", "Authorization: Bearer s3cret")
        refused = inspector(node, "--method", "tools/list", "--stored-auth-only", target=[url], expect_exit=3)
        assert refused["error"]["code"] == "auth_required"

        listed = inspector(node, "--transport", "http", "--server-url", url, *auth, "--method", "tools/list", target=[])
        assert {t["name"] for t in listed["result"]["tools"]} == META_TOOLS

        # Authored by another process (this one) on the same registry; the server's watcher picks it up.
        with Cairn(settings) as cairn:
            cairn.start(verify="none")
            cairn.author(**AUTHOR)
        deadline, lists = time.monotonic() + 10, 0
        while "slugify" not in {t["name"] for t in listed["result"]["tools"]}:
            assert time.monotonic() < deadline, "slugify never appeared in the Inspector's tools/list"
            listed = inspector(node, *auth, "--method", "tools/list", target=[url])
            lists += 1
        print(f"the Inspector's tools/list showed slugify after {lists} more list(s)")

        called = inspector(node, *auth, "--method", "tools/call", "--tool-name", "slugify", "--tool-arg",
                           "text=Over HTTP", target=[url])
        assert called["result"]["structuredContent"] == {"result": "over-http"}

        modern = inspector(node, *auth, "--protocol-era", "modern", "--method", "tools/call", "--tool-name",
                           "slugify", "--tool-arg", "text=Modern Era", target=[url])
        assert modern["result"]["structuredContent"] == {"result": "modern-era"}
