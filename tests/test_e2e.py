"""End to end with real server processes: ``cairn serve`` over stdio and over HTTP, the Python SDK client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.conftest import SLUGIFY, SLUGIFY_EXAMPLES

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env["CAIRN_WATCH_INTERVAL"] = "0.2"
    env["PYTHONPATH"] = str(ROOT)
    return env


def stdio(registry: Path) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "server", "serve", "--registry", str(registry)],
                                 env=server_env(), cwd=str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def http_server(registry: Path, *extra: str, token: str | None = None) -> Iterator[str]:
    port = free_port()
    env = server_env()
    if token:
        env["CAIRN_TOKEN"] = token
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--http", "--port", str(port), "--registry", str(registry), *extra],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {proc.stderr.read().decode()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                    break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def notified(event: anyio.Event):
    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            event.set()
    return on_message


async def author(client: Client, name: str = "slugify") -> dict[str, Any]:
    result = await client.call_tool("author_tool", {
        "name": name, "description": "Turn text into a URL slug.", "code": SLUGIFY.replace("def slugify", f"def {name}"),
        "examples": SLUGIFY_EXAMPLES})
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def test_stdio_tool_authored_in_one_process_reaches_another(registry_dir: Path) -> None:
    changed = anyio.Event()
    async with Client(stdio(registry_dir), mode="legacy") as first, \
            Client(stdio(registry_dir), mode="legacy", message_handler=notified(changed)) as second:
        assert "slugify" not in [t.name for t in (await second.list_tools()).tools]
        await author(first)
        with anyio.fail_after(10):
            await changed.wait()
        assert "slugify" in [t.name for t in (await second.list_tools()).tools]
        result = await second.call_tool("slugify", {"text": "Across Processes"})
        assert result.structured_content == {"result": "across-processes"}


async def test_stdio_tool_prints_never_reach_the_protocol_stream(registry_dir: Path) -> None:
    code = 'def shout(text: str) -> str:\n    """Upper-case text, noisily."""\n    print("noise on stdout")\n    return text.upper()\n'
    async with Client(stdio(registry_dir), mode="legacy") as client:
        result = await client.call_tool("author_tool", {"name": "shout", "description": "d", "code": code,
                                                         "examples": [{"args": {"text": "a"}, "expected": "A"}]})
        assert not result.is_error, result.content[0].text
        result = await client.call_tool("shout", {"text": "hi"})
        assert result.structured_content == {"result": "HI"}
        run = await client.call_tool("run_code", {"code": "print('x' * 10)\n42"})
        assert run.structured_content == {"printed": "x" * 10 + "\n", "result": 42}


async def test_tools_survive_a_restart(registry_dir: Path) -> None:
    async with Client(stdio(registry_dir), mode="legacy") as client:
        await author(client)
    async with Client(stdio(registry_dir), mode="legacy") as client:
        assert "slugify" in [t.name for t in (await client.list_tools()).tools]
        result = await client.call_tool("slugify", {"text": "Back Again"})
        assert result.structured_content == {"result": "back-again"}


async def test_http_three_sessions_are_all_notified_and_can_call(registry_dir: Path) -> None:
    events = [anyio.Event() for _ in range(3)]
    with http_server(registry_dir) as url:
        async with Client(url, mode="legacy", message_handler=notified(events[0])) as a, \
                Client(url, mode="legacy", message_handler=notified(events[1])) as b, \
                Client(url, mode="legacy", message_handler=notified(events[2])) as c:
            for client in (a, b, c):
                await client.list_tools()
            await author(b)
            with anyio.fail_after(10):
                for event in events:
                    await event.wait()
            for client in (a, b, c):
                result = await client.call_tool("slugify", {"text": "Over HTTP"})
                assert result.structured_content == {"result": "over-http"}


async def test_http_modern_client_works_too(registry_dir: Path) -> None:
    with http_server(registry_dir) as url:
        async with Client(url) as client:
            await author(client)
            result = await client.call_tool("call_tool", {"name": "slugify", "arguments": {"text": "Modern Era"}})
            assert result.structured_content == {"result": "modern-era"}


def test_http_off_loopback_without_a_token_refuses_to_start(registry_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--http", "--host", "0.0.0.0", "--registry", str(registry_dir)],
        env=server_env(), cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert "needs a bearer token" in proc.stderr
    assert proc.stdout == ""


async def test_http_with_a_token_refuses_requests_without_it(registry_dir: Path) -> None:
    with http_server(registry_dir, token="s3cret") as url:
        request = urllib.request.Request(url, data=b"{}", headers={"content-type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as info:
            await anyio.to_thread.run_sync(lambda: urllib.request.urlopen(request, timeout=5))
        assert info.value.code == 401
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        async with httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret"}) as http, \
                Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
            await author(client)
            result = await client.call_tool("slugify", {"text": "With Token"})
            assert result.structured_content == {"result": "with-token"}
