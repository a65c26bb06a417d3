"""The MCP server as agents meet it, in memory: ``Client(server)`` in both protocol eras, real sandbox
workers, a real git registry in a temp dir."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from server.app import META_BY_NAME, CairnApp
from server.service import Cairn
from tests.conftest import SLUGIFY, SLUGIFY_EXAMPLES, git

pytestmark = pytest.mark.anyio
MODES = ["legacy", "auto"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def app(cairn: Cairn) -> AsyncIterator[CairnApp]:
    app = CairnApp(cairn)
    async with app.running():
        yield app


def data(result: types.CallToolResult) -> Any:
    assert not result.is_error, result.content[0].text
    return result.structured_content


def error_text(result: types.CallToolResult) -> str:
    assert result.is_error, result.structured_content
    return result.content[0].text


async def author_slugify(client: Client, **overrides: Any) -> dict[str, Any]:
    args = {"name": "slugify", "description": "Turn text into a URL slug.", "code": SLUGIFY,
            "examples": SLUGIFY_EXAMPLES, "purpose": "titles become URLs", "tags": ["text", "url"]}
    args.update(overrides)
    return data(await client.call_tool("author_tool", args))


@pytest.mark.parametrize("mode", MODES)
async def test_meta_tools_are_listed_with_their_argument_names(app: CairnApp, mode: str) -> None:
    async with Client(app.server, mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(META_BY_NAME) <= set(tools)
    assert set(tools["author_tool"].input_schema["properties"]) == {
        "name", "description", "code", "examples", "tests", "base_version", "purpose", "tags"}
    assert tools["call_tool"].input_schema["required"] == ["name"]
    assert "allowed imports" in tools["author_tool"].description.lower()
    assert "math" in tools["author_tool"].description


async def test_legacy_handshake_advertises_tools_list_changed(app: CairnApp) -> None:
    async with Client(app.server, mode="legacy") as client:
        assert client.server_capabilities.tools is not None
        assert client.server_capabilities.tools.list_changed is True


async def test_instructions_tell_agents_to_search_first_and_how_to_reach_unlisted_tools(app: CairnApp) -> None:
    async with Client(app.server, mode="legacy") as client:
        assert "search_tools" in client.instructions
        assert "call_tool" in client.instructions


@pytest.mark.parametrize("mode", MODES)
async def test_authored_tool_is_listed_first_class_and_callable(app: CairnApp, mode: str) -> None:
    async with Client(app.server, mode=mode) as client:
        reply = await author_slugify(client)
        assert reply["name"] == "slugify" and reply["version"] == 1 and reply["status"] == "active"
        assert reply["checks"] == "2/2 examples passed"
        assert len(reply["commit"]) == 40
        assert reply["input_schema"]["required"] == ["text"]
        tools = {t.name: t for t in (await client.list_tools()).tools}
        tool = tools["slugify"]
        assert tool.description == "Turn text into a URL slug."
        assert tool.input_schema["properties"]["separator"] == {"type": "string", "default": "-"}
        assert tool.output_schema == {"type": "object", "properties": {"result": {"type": "string"}},
                                      "required": ["result"]}
        assert tool.annotations.read_only_hint is True
        assert tool.annotations.open_world_hint is False
        assert tool.annotations.idempotent_hint is True
        result = await client.call_tool("slugify", {"text": "Ünïcode Rocks"})
        assert data(result) == {"result": "unicode-rocks"}
        assert json.loads(result.content[0].text) == "unicode-rocks"


async def test_call_tool_returns_exactly_what_a_direct_call_returns(app: CairnApp) -> None:
    async with Client(app.server, mode="legacy") as client:
        await author_slugify(client)
        direct = await client.call_tool("slugify", {"text": "A B"})
        indirect = await client.call_tool("call_tool", {"name": "slugify", "arguments": {"text": "A B"}})
        assert indirect.structured_content == direct.structured_content
        assert [c.text for c in indirect.content] == [c.text for c in direct.content]


async def test_tool_errors_come_back_as_error_results_the_agent_can_read(app: CairnApp) -> None:
    code = 'def ratio(a: int, b: int) -> float:\n    """a over b."""\n    return a / b\n'
    async with Client(app.server, mode="legacy") as client:
        data(await client.call_tool("author_tool", {
            "name": "ratio", "description": "a/b", "code": code,
            "examples": [{"args": {"a": 1, "b": 2}, "expected": 0.5}, {"args": {"a": 1, "b": 0}, "raises": "ZeroDivisionError"}]}))
        text = error_text(await client.call_tool("ratio", {"a": 1, "b": 0}))
        assert text == "ZeroDivisionError: division by zero (line 3)"
        text = error_text(await client.call_tool("ratio", {"a": "x", "b": 0}))
        assert "argument 'a' should be an integer" in text
        text = error_text(await client.call_tool("ratio", {"a": 1}))
        assert "missing required argument 'b'" in text


@pytest.mark.parametrize("mode", MODES)
async def test_unknown_tool_name_is_a_protocol_error(app: CairnApp, mode: str) -> None:
    async with Client(app.server, mode=mode) as client:
        with pytest.raises(MCPError, match="Unknown tool"):
            await client.call_tool("no_such_tool", {})


async def test_call_tool_with_unknown_name_is_an_error_result(app: CairnApp) -> None:
    async with Client(app.server, mode="legacy") as client:
        text = error_text(await client.call_tool("call_tool", {"name": "nope", "arguments": {}}))
        assert "no tool named 'nope'" in text and "search_tools" in text


async def test_rejected_submission_lists_every_problem_and_saves_nothing(app: CairnApp) -> None:
    async with Client(app.server, mode="legacy") as client:
        text = error_text(await client.call_tool("author_tool", {
            "name": "Bad", "description": "", "code": "def Bad(x):\n    return x\n", "examples": [{"args": {}}]}))
        assert "problem(s)" in text
        for fragment in ("name 'Bad'", "description", "example 0"):
            assert fragment in text
    assert app.cairn.all_tools() == []
    assert not (app.cairn.registry.tools_dir / "Bad").exists()


async def test_failing_example_is_reported_with_args_expected_and_actual(app: CairnApp) -> None:
    async with Client(app.server, mode="legacy") as client:
        text = error_text(await client.call_tool("author_tool", {
            "name": "slugify", "description": "d", "code": SLUGIFY,
            "examples": [{"args": {"text": "A b"}, "expected": "a_b"}]}))
    assert "example 0" in text and '"a_b"' in text and '"a-b"' in text
    assert app.cairn.all_tools() == []


async def test_import_outside_the_allow_list_is_rejected_naming_the_allowed_modules(app: CairnApp) -> None:
    code = 'import os\n\ndef cwd(x: int) -> str:\n    """Where."""\n    return os.getcwd()\n'
    async with Client(app.server, mode="legacy") as client:
        text = error_text(await client.call_tool("author_tool", {
            "name": "cwd", "description": "d", "code": code, "examples": [{"args": {"x": 1}, "expected": "/"}]}))
    assert "os" in text and "math" in text


async def test_update_needs_the_current_base_version(app: CairnApp) -> None:
    async with Client(app.server, mode="legacy") as client:
        first = await author_slugify(client)
        text = error_text(await client.call_tool("author_tool", {
            "name": "slugify", "description": "d2", "code": SLUGIFY, "examples": SLUGIFY_EXAMPLES}))
        assert "already exists at version 1" in text and "base_version=1" in text
        second = await author_slugify(client, description="Slugs, v2.", base_version=1)
        assert second["version"] == 2 and second["commit"] != first["commit"]
        text = error_text(await client.call_tool("author_tool", {
            "name": "slugify", "description": "d3", "code": SLUGIFY, "examples": SLUGIFY_EXAMPLES,
            "base_version": 1}))
        assert "is at version 2" in text and "base_version=2" in text
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["slugify"].description == "Slugs, v2."


async def test_update_of_a_missing_tool_says_so(app: CairnApp) -> None:
    async with Client(app.server, mode="legacy") as client:
        text = error_text(await client.call_tool("author_tool", {
            "name": "slugify", "description": "d", "code": SLUGIFY, "examples": SLUGIFY_EXAMPLES,
            "base_version": 3}))
    assert "slugify" in text


@pytest.mark.parametrize("mode", MODES)
async def test_run_code_returns_printed_output_and_final_expression(app: CairnApp, mode: str) -> None:
    async with Client(app.server, mode=mode) as client:
        out = data(await client.call_tool("run_code", {"code": "import math\nprint('hi')\nmath.sqrt(16)"}))
    assert out == {"printed": "hi\n", "result": 4.0}
    assert app.cairn.all_tools() == []


async def test_run_code_error_is_an_error_result(app: CairnApp) -> None:
    async with Client(app.server, mode="legacy") as client:
        text = error_text(await client.call_tool("run_code", {"code": "x = 1\n1 / 0"}))
    assert "ZeroDivisionError" in text


async def test_search_tools_ranks_matches_and_hints_at_call_tool(app: CairnApp) -> None:
    async with Client(app.server, mode="legacy") as client:
        await author_slugify(client)
        out = data(await client.call_tool("search_tools", {"query": "make a url slug from a title"}))
    assert out["matches"][0]["name"] == "slugify"
    assert out["matches"][0]["signature"] == "slugify(text: str, separator: str = '-') -> str"
    assert set(out["matches"][0]) == {"name", "description", "signature", "version", "status", "score"}
    assert "call_tool" in out["hint"]


async def test_get_tool_shows_source_examples_and_recent_versions(app: CairnApp) -> None:
    async with Client(app.server, mode="legacy") as client:
        await author_slugify(client)
        info = data(await client.call_tool("get_tool", {"name": "slugify"}))
    assert info["source"] == SLUGIFY
    assert info["version"] == 1 and info["status"] == "active" and info["problems"] == []
    assert info["examples"] == SLUGIFY_EXAMPLES
    assert info["recent_versions"][0]["version"] == 1
    assert info["recent_versions"][0]["action"] == "add"


async def test_history_rollback_and_deprecate(app: CairnApp) -> None:
    async with Client(app.server, mode="legacy") as client:
        await author_slugify(client)
        await author_slugify(client, description="second", base_version=1)
        rolled = data(await client.call_tool("rollback_tool", {"name": "slugify", "version": 1}))
        assert rolled["version"] == 3 and rolled["restored_from"] == 1
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["slugify"].description == "Turn text into a URL slug."
        dep = data(await client.call_tool("deprecate_tool", {"name": "slugify", "reason": "use slug_v2"}))
        assert dep["status"] == "deprecated" and dep["version"] == 4
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["slugify"].description.startswith("[DEPRECATED: use slug_v2]")
        assert data(await client.call_tool("slugify", {"text": "still works"})) == {"result": "still-works"}
        history = data(await client.call_tool("tool_history", {"name": "slugify"}))
    assert [v["version"] for v in history["versions"]] == [4, 3, 2, 1]
    assert [v["action"] for v in history["versions"]] == ["deprecate", "rollback", "update", "add"]
    assert all(v["author"] and v["date"] and v["commit"] for v in history["versions"])


async def test_commit_records_the_client_and_the_checks(app: CairnApp) -> None:
    info = types.Implementation(name="test-agent", version="9.9")
    async with Client(app.server, mode="legacy", client_info=info) as client:
        await author_slugify(client)
    message = git(app.cairn.registry.root, "log", "-1", "--format=%B")
    assert message.startswith("add slugify v1: titles become URLs")
    assert "Cairn-Client: test-agent 9.9" in message
    assert "Cairn-Checks: 2/2 examples passed" in message


async def test_tool_source_is_readable_as_a_resource(app: CairnApp) -> None:
    async with Client(app.server, mode="legacy") as client:
        await author_slugify(client)
        result = await client.read_resource("cairn://tools/slugify")
    assert result.contents[0].text == SLUGIFY


async def test_every_legacy_session_is_notified_when_another_authors(app: CairnApp) -> None:
    received = [anyio.Event(), anyio.Event()]

    def handler(event: anyio.Event):
        async def on_message(message: Any) -> None:
            if isinstance(message, types.ToolListChangedNotification):
                event.set()
        return on_message

    async with Client(app.server, mode="legacy", message_handler=handler(received[0])) as watcher, \
            Client(app.server, mode="legacy", message_handler=handler(received[1])) as author:
        await watcher.list_tools()
        await author_slugify(author)
        with anyio.fail_after(5):
            for event in received:
                await event.wait()
        names = [t.name for t in (await watcher.list_tools()).tools]
    assert "slugify" in names


async def test_modern_client_listening_is_notified(app: CairnApp) -> None:
    async with Client(app.server) as listener, Client(app.server, mode="legacy") as author:
        async with listener.listen(tools_list_changed=True) as subscription:
            await author_slugify(author)
            with anyio.fail_after(5):
                event = await subscription.__anext__()
        assert type(event).__name__ == "ToolsListChanged"


async def test_change_by_another_process_reaches_clients(app: CairnApp, settings) -> None:
    """A second Cairn on the same registry (as another desktop host would start) authors a tool."""
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with Client(app.server, mode="legacy", message_handler=on_message) as client:
        await client.list_tools()
        with Cairn(settings) as other:
            other.start(verify="none")
            await anyio.to_thread.run_sync(lambda: other.author(
                name="slugify", description="from elsewhere", code=SLUGIFY, examples=SLUGIFY_EXAMPLES))
        with anyio.fail_after(5):
            await changed.wait()
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["slugify"].description == "from elsewhere"
        assert data(await client.call_tool("slugify", {"text": "X Y"})) == {"result": "x-y"}


async def test_hand_edit_that_breaks_metadata_disables_the_tool(app: CairnApp) -> None:
    async with Client(app.server, mode="legacy") as client:
        await author_slugify(client)
        path = app.cairn.registry.tools_dir / "slugify" / "tool.py"
        path.write_text(SLUGIFY.replace("text: str,", "text: int,"))
        with anyio.fail_after(5):
            while "slugify" in [t.name for t in (await client.list_tools()).tools]:
                await anyio.sleep(0.05)
        info = data(await client.call_tool("get_tool", {"name": "slugify"}))
    assert info["status"] == "disabled"
    assert any("input_schema_sha256" in p for p in info["problems"])


async def test_working_set_is_bounded_and_the_rest_reachable_through_call_tool(cairn: Cairn) -> None:
    import dataclasses

    cairn.settings = dataclasses.replace(cairn.settings, exposed_tools=2)
    app = CairnApp(cairn)
    code = 'def {n}(x: int) -> int:\n    """Add {k}."""\n    return x + {k}\n'
    for k in range(4):
        cairn.author(name=f"add{k}", description=f"add {k}", code=code.format(n=f"add{k}", k=k),
                     examples=[{"args": {"x": 1}, "expected": 1 + k}])
    async with Client(app.server, mode="legacy") as client:
        names = [t.name for t in (await client.list_tools()).tools if t.name not in META_BY_NAME]
        assert names == ["add3", "add2"]  # most recently changed first
        assert data(await client.call_tool("call_tool", {"name": "add0", "arguments": {"x": 1}})) == {"result": 1}


async def test_pinned_tools_are_listed_first(cairn: Cairn) -> None:
    import dataclasses

    code = 'def {n}(x: int) -> int:\n    """Add {k}."""\n    return x + {k}\n'
    for k in range(3):
        cairn.author(name=f"add{k}", description=f"add {k}", code=code.format(n=f"add{k}", k=k),
                     examples=[{"args": {"x": 1}, "expected": 1 + k}])
    cairn.settings = dataclasses.replace(cairn.settings, exposed_tools=2, pinned=("add0",))
    assert [t.name for t in cairn.exposed()] == ["add0", "add2"]


def test_own_write_is_not_mistaken_for_a_change_from_elsewhere(cairn: Cairn) -> None:
    cairn.author(name="slugify", description="d", code=SLUGIFY, examples=SLUGIFY_EXAMPLES)
    assert cairn.poll_changes() == set()


def test_another_process_change_is_not_hidden_by_our_own_write(cairn: Cairn, settings) -> None:
    with Cairn(settings) as other:
        other.start(verify="none")
        other.author(name="slugify", description="from elsewhere", code=SLUGIFY, examples=SLUGIFY_EXAMPLES)
    code = 'def add1(x: int) -> int:\n    """Add one."""\n    return x + 1\n'
    cairn.author(name="add1", description="d", code=code, examples=[{"args": {"x": 1}, "expected": 2}])
    assert cairn.poll_changes() == {"slugify"}
    assert cairn.tool("slugify").record.description == "from elsewhere"


async def test_reading_the_source_of_an_unknown_tool_says_it_does_not_exist(app: CairnApp) -> None:
    async with Client(app.server, mode="legacy") as client:
        with pytest.raises(MCPError, match="no tool named 'nosuch'"):
            await client.read_resource("cairn://tools/nosuch")
