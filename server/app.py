"""The MCP edge: the only module that imports ``mcp``. It parses, delegates to ``Cairn``, and translates.

``CairnServer`` is an ``MCPServer`` whose tool list is computed, not registered: the eight meta-tools
plus the bounded working set of registered tools (``Cairn.exposed``), each described with the schemas
the trusted side built from its source. Nothing is added to the SDK's tool manager, so start-up costs
nothing per tool and a changed tool is simply listed differently on the next ``tools/list``.

Notifications reach every connected agent:

* legacy (handshake-era) connections are remembered (weakly) by a middleware that sees every inbound
  message; on a change each gets ``notifications/tools/list_changed`` (dead ones are dropped);
* 2026-07-28 clients that opened ``subscriptions/listen`` get a ``ToolsListChanged`` event on the
  subscription bus this server owns;
* ``tools.listChanged`` is advertised as ``true`` on the legacy handshake too (mcp 2.3 says ``false``
  unless told otherwise; see ``_advertise_list_changed``).

Changes made elsewhere (another Cairn process on the same registry, ``cairn rollback``, ``git pull``, a
person's edit) are found by ``CairnApp.running``'s watcher, which polls the registry every
``watch_interval`` seconds and notifies the same way.

Errors: what an agent can fix (a rejected submission, a failing tool, a conflict) comes back as a tool
result with ``isError`` and a message naming the problem; calling a tool name that does not exist at all
is a protocol error, as the MCP spec asks.
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import anyio
import anyio.to_thread
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourcesListChanged, ToolsListChanged
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult, TextContent, ToolAnnotations
from mcp_types import Tool as MCPTool
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from server import __version__
from server.errors import CairnError, ToolNotFound
from server.service import Cairn, LoadedTool

log = logging.getLogger("cairn")

INSTRUCTIONS = """\
Cairn keeps the code agents write as tested, versioned tools that every connected agent can call.
- Before writing code for a task, call search_tools with a few words describing it: a tool may exist.
- To keep a function for reuse, call author_tool with its source, a description and examples; Cairn runs
  the examples in a sandbox, commits the tool to a git registry and lists it for every agent.
- If a tool you found or just authored is not in your tool list (many hosts do not refresh the list
  mid-session, and only the most recent tools are listed), call it with call_tool(name, arguments).
- For one-off computation that need not be kept, use run_code.
"""

AUTHOR_DESCRIPTION = """\
Save a Python function as a permanent, tested, versioned tool that every agent connected to this registry \
can call. Search first (search_tools): update an existing tool rather than writing a near-copy.

Rules for `code` (all problems are reported at once):
- Define a top-level function named exactly like `name`, with a docstring, every parameter and the return \
annotated with JSON types: str, int, float, bool, None, list[T], dict[str, T], T | None, Literal[...], Any. \
Parameters may have literal defaults. No *args/**kwargs.
- Top level may hold only imports, constants, helper functions and classes.
- Allowed imports: {modules}. No file, network or OS access; names starting with "_" are off limits.
- Runs in a sandbox with limits (about {cpu} s CPU, {wall} s wall clock, {memory} MiB memory); results \
must be JSON.

`examples`: 1-50 objects {{"args": {{...}}, "expected": <JSON result>}} or {{"args": {{...}}, "raises": \
"ValueError"}}. Every example must pass before anything is saved. `tests` (optional): Python defining \
test_* functions that call the tool by name and assert.

To change an existing tool, pass `base_version` = its current version (from get_tool); without it, an \
existing name is a conflict. The reply gives the new version, its commit and its schemas; the tool is then \
listed for every agent, and callable right away through call_tool(name, arguments) if your host has not \
refreshed its tool list."""

RUN_CODE_DESCRIPTION = """\
Run Python once in the sandbox and keep nothing (ephemeral "REPL" mode). Returns what it printed and the \
value of a final expression statement (JSON), or null. Same restrictions and allowed imports as \
author_tool. Use author_tool instead when the code is worth keeping."""

_READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False, idempotent_hint=True,
                             destructive_hint=False)


def _obj(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


@dataclass(frozen=True)
class MetaTool:
    name: str
    description: str
    input_schema: dict[str, Any]
    run: Callable[[Cairn, dict[str, Any], str | None], Any]
    changes: bool = False
    annotations: ToolAnnotations | None = None


def _search(c: Cairn, a: dict[str, Any], _client: str | None) -> dict[str, Any]:
    hits = c.search(a["query"], a.get("limit", 10))
    return {
        "matches": [h.__dict__ for h in hits],
        "hint": "Call a match directly if it is in your tool list, else call_tool(name=..., arguments={...}). "
        "get_tool shows its source and examples." if hits else
        "No tool matches; author one with author_tool if the task is worth keeping.",
    }


def _history(c: Cairn, a: dict[str, Any], _client: str | None) -> dict[str, Any]:
    return {"name": a["name"], "versions": [v.__dict__ for v in c.history(a["name"])]}


META_TOOLS: tuple[MetaTool, ...] = (
    MetaTool(
        "author_tool", AUTHOR_DESCRIPTION,
        _obj({
            "name": {"type": "string", "description": "snake_case tool name, also the function's name"},
            "description": {"type": "string", "description": "what the tool does, shown to every agent"},
            "code": {"type": "string", "description": "Python source defining the function"},
            "examples": {"type": "array", "items": {"type": "object"}, "minItems": 1, "maxItems": 50,
                         "description": 'objects {"args": {...}, "expected": value} or {"args": {...}, "raises": "ValueError"}'},
            "tests": {"type": "string", "description": "optional Python defining test_* functions that assert"},
            "base_version": {"type": "integer", "description": "current version when updating; omit to create"},
            "purpose": {"type": "string", "description": "why the tool exists (goes into the commit message)"},
            "tags": {"type": "array", "items": {"type": "string"}, "description": "keywords for search"},
        }, ["name", "description", "code", "examples"]),
        lambda c, a, client: c.author(**a, client=client), changes=True,
    ),
    MetaTool(
        "run_code", RUN_CODE_DESCRIPTION,
        _obj({"code": {"type": "string", "description": "Python source to run once"}}, ["code"]),
        lambda c, a, _client: c.run_code(a["code"]).__dict__,
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False, destructive_hint=False),
    ),
    MetaTool(
        "search_tools",
        "Find registered tools by describing the task in a few words. Returns ranked matches with name, "
        "description, signature, version, status and score. Call a match directly or through call_tool.",
        _obj({"query": {"type": "string"}, "limit": {"type": "integer", "default": 10, "minimum": 1,
                                                      "maximum": 100}}, ["query"]),
        _search, annotations=_READ_ONLY,
    ),
    MetaTool(
        "call_tool",
        "Call any registered tool by name, with its arguments as an object. Returns exactly what calling the "
        "tool directly returns. Use it for tools your host has not listed (yet).",
        _obj({"name": {"type": "string"}, "arguments": {"type": "object", "default": {}}}, ["name"]),
        lambda c, a, _client: None,  # handled in CairnServer.call_tool: it returns the tool's own result
    ),
    MetaTool(
        "get_tool",
        "Show a registered tool: source, signature, schemas, examples, tests, status, problems (when "
        "disabled) and recent versions. Use its version as base_version to update it.",
        _obj({"name": {"type": "string"}}, ["name"]),
        lambda c, a, _client: c.describe(a["name"]), annotations=_READ_ONLY,
    ),
    MetaTool(
        "tool_history",
        "Every version of a tool, newest first: number, action, commit, author, date, message, checks.",
        _obj({"name": {"type": "string"}}, ["name"]), _history, annotations=_READ_ONLY,
    ),
    MetaTool(
        "rollback_tool",
        "Restore an earlier version of a tool as a new version (history is kept). Its examples and tests "
        "must still pass.",
        _obj({"name": {"type": "string"}, "version": {"type": "integer", "minimum": 1}}, ["name", "version"]),
        lambda c, a, client: c.rollback(a["name"], a["version"], client=client), changes=True,
    ),
    MetaTool(
        "deprecate_tool",
        "Mark a tool deprecated with a reason (say what to use instead). It stays callable and readable, and "
        "ranks below active tools in search.",
        _obj({"name": {"type": "string"}, "reason": {"type": "string"}}, ["name", "reason"]),
        lambda c, a, client: c.deprecate(a["name"], a["reason"], client=client), changes=True,
    ),
)
META_BY_NAME = {m.name: m for m in META_TOOLS}


def _text_result(payload: Any, *, structured: Any = None, is_error: bool = False) -> CallToolResult:
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, indent=1)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured,
                          is_error=is_error)


class CairnServer(MCPServer):
    """An MCPServer whose tools are Cairn's meta-tools plus the registry's working set."""

    def __init__(self, cairn: Cairn) -> None:
        from server.sandbox import ALLOWED_MODULES

        self.cairn = cairn
        self.bus = InMemorySubscriptionBus()
        self._sessions: weakref.WeakSet[Any] = weakref.WeakSet()
        limits = cairn.settings.limits
        author = AUTHOR_DESCRIPTION.format(modules=", ".join(ALLOWED_MODULES), cpu=limits.cpu_seconds,
                                           wall=limits.wall_seconds, memory=limits.memory_mib)
        self._meta_tools = {m.name: (replace(m, description=author) if m.name == "author_tool" else m)
                            for m in META_TOOLS}
        super().__init__(
            "cairn", title="Cairn", version=__version__, instructions=INSTRUCTIONS,
            subscriptions=self.bus, log_level=cairn.settings.log_level,  # type: ignore[arg-type]
        )
        self.middleware.append(self._remember_session)
        _advertise_list_changed(self)
        self.resource("cairn://tools/{name}", name="tool_source", mime_type="text/x-python",
                      description="The Python source of a registered tool")(self._tool_source)

    # ------------------------------------------------------------ sessions and notifications

    async def _remember_session(self, ctx: Any, call_next: Any) -> Any:
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            connection = _connection_of(ctx.session)
            if connection is not None:
                self._sessions.add(connection)
        return await call_next(ctx)

    async def broadcast_change(self) -> None:
        """Tell every connected agent that the tool list changed."""
        for session in list(self._sessions):
            try:
                await session.send_tool_list_changed()
                await session.send_resource_list_changed()
            except Exception as exc:  # closed or broken transport: forget the session
                log.debug("dropping session after failed notification: %r", exc)
                self._sessions.discard(session)
        await self.bus.publish(ToolsListChanged())
        await self.bus.publish(ResourcesListChanged())

    # ------------------------------------------------------------ tools

    async def list_tools(self) -> list[MCPTool]:
        exposed = await anyio.to_thread.run_sync(self.cairn.exposed)
        self.cairn.served()
        tools = [
            MCPTool(name=m.name, description=m.description, input_schema=m.input_schema, annotations=m.annotations)
            for m in self._meta_tools.values()
        ]
        tools.extend(self._describe(t) for t in exposed)
        return tools

    @staticmethod
    def _describe(tool: LoadedTool) -> MCPTool:
        record, sig = tool.record, tool.signature
        assert sig is not None  # exposed() lists verified, enabled tools only
        description = record.description
        if record.status == "deprecated":
            description = f"[DEPRECATED: {record.deprecation_reason or 'see get_tool'}] {description}"
        return MCPTool(
            name=record.name,
            title=record.name.replace("_", " "),
            description=description,
            input_schema=sig.input_schema,
            output_schema=sig.output_schema,
            annotations=_READ_ONLY,
            _meta={"cairn/version": record.version, "cairn/status": record.status},
        )

    def _tool_input_schema(self, name: str) -> dict[str, Any] | None:
        meta = self._meta_tools.get(name)
        if meta is not None:
            return meta.input_schema
        try:
            tool = self.cairn.tool(name)
        except ToolNotFound:
            return None
        return tool.signature.input_schema if tool.signature else None

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> CallToolResult:
        client = _client_name(context)
        meta = self._meta_tools.get(name)
        try:
            if meta is None:
                return await self._call_registered(name, arguments, unknown_is_protocol_error=True)
            if meta.name == "call_tool":
                target = arguments.get("name")
                args = arguments.get("arguments") or {}
                if not isinstance(target, str) or not isinstance(args, dict):
                    return _text_result("call_tool needs name (a string) and arguments (an object)", is_error=True)
                if target in self._meta_tools:
                    return await self.call_tool(target, args, context)
                return await self._call_registered(target, args, unknown_is_protocol_error=False)
            missing = [k for k in meta.input_schema.get("required", []) if k not in arguments]
            unknown = sorted(set(arguments) - set(meta.input_schema["properties"]))
            if missing or unknown:
                problems = [f"missing argument {k!r}" for k in missing] + [f"unknown argument {k!r}" for k in unknown]
                return _text_result(f"{name}: " + "; ".join(problems), is_error=True)
            payload = await anyio.to_thread.run_sync(meta.run, self.cairn, dict(arguments), client)
            if meta.changes:
                await self.broadcast_change()
            return _text_result(payload, structured=payload)
        except CairnError as exc:
            return _text_result(str(exc), is_error=True)
        except MCPError:
            raise
        except Exception as exc:  # the server stays up; the agent learns something went wrong
            log.exception("internal error in %s", name)
            return _text_result(f"internal error in {name}: {type(exc).__name__}: {exc}", is_error=True)

    async def _call_registered(self, name: str, arguments: dict[str, Any], *,
                               unknown_is_protocol_error: bool) -> CallToolResult:
        try:
            outcome = await self.cairn.call_async(name, arguments)
        except ToolNotFound as exc:
            if unknown_is_protocol_error:
                raise MCPError(INVALID_PARAMS, f"Unknown tool: {name}") from None
            return _text_result(str(exc), is_error=True)
        content = [TextContent(type="text", text=json.dumps(outcome.value, ensure_ascii=False))]
        if outcome.printed:
            content.append(TextContent(type="text", text=f"(printed)\n{outcome.printed}"))
        return CallToolResult(content=content, structured_content={"result": outcome.value})

    def _tool_source(self, name: str) -> str:
        try:
            return self.cairn.tool(name).record.code
        except ToolNotFound as exc:
            raise ResourceNotFoundError(str(exc)) from None


def _advertise_list_changed(server: MCPServer) -> None:
    """Make the legacy handshake advertise ``tools.listChanged: true`` (and resources).

    mcp 2.3 builds its initialization options with a default ``NotificationOptions()`` (all false), and
    every transport calls ``create_initialization_options()`` without arguments; hosts such as Claude
    Code and the TypeScript SDK then ignore our notifications. Until the SDK has a public setting, wrap
    the low-level server's method so the default says what we do. Tested in tests/test_app.py.
    """
    lowlevel = server._lowlevel_server
    original = lowlevel.create_initialization_options

    def create_initialization_options(notification_options: Any = None, *args: Any, **kwargs: Any) -> Any:
        options = notification_options or NotificationOptions(tools_changed=True, resources_changed=True)
        return original(options, *args, **kwargs)

    lowlevel.create_initialization_options = create_initialization_options  # type: ignore[method-assign]


def _connection_of(session: Any) -> Any:
    """The per-connection object behind a request's ``ServerSession``.

    mcp 2.3 builds a new ``ServerSession`` wrapper for every inbound message, so the wrapper cannot
    identify a client between messages; the ``Connection`` it wraps lives exactly as long as the client
    is connected and can send ``notifications/tools/list_changed`` on its standalone channel. The SDK has
    no public accessor for it yet, hence this one guarded attribute read (tested in tests/test_app.py).
    """
    connection = getattr(session, "_connection", None)
    return connection if hasattr(connection, "send_tool_list_changed") else None


def _client_name(context: Any) -> str | None:
    try:
        info = context.request_context.session.client_params.client_info
    except (AttributeError, ValueError):
        return None
    if info is None:
        return None
    return f"{info.name} {info.version}".strip()


class CairnApp:
    """A started ``Cairn`` plus its MCP server and the watcher that notices changes made elsewhere."""

    def __init__(self, cairn: Cairn) -> None:
        self.cairn = cairn
        self.server = CairnServer(cairn)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[CairnApp]:
        """Run the change watcher for as long as the block lasts."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()

    async def _watch(self) -> None:
        """Poll the registry every ``watch_interval`` seconds, or less often when a poll itself is costly.

        A poll stats two files per tool (tens of milliseconds at 10,000 tools on an idle machine); waiting
        at least four times as long as the last poll took keeps the watcher under a fifth of a core
        however large the registry grows, at the price of slower notice on very large registries.
        """
        wait = self.cairn.settings.watch_interval
        while True:
            await anyio.sleep(wait)
            started = anyio.current_time()
            try:
                changed = await anyio.to_thread.run_sync(self.cairn.poll_changes)
            except Exception:  # keep watching: a transient read error must not stop notifications
                log.exception("checking the registry for changes failed")
                continue
            finally:
                wait = max(self.cairn.settings.watch_interval, 4 * (anyio.current_time() - started))
            if changed:
                await self.server.broadcast_change()

    async def serve_stdio(self) -> None:
        async with self.running():
            await self.server.run_stdio_async()

    async def serve_http(self, host: str, port: int, token: str | None) -> None:
        import uvicorn

        app: Any = self.server.streamable_http_app(host=host)
        if token:
            app = BearerTokenMiddleware(app, token)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        async with self.running():
            log.info("serving MCP over HTTP at http://%s:%d/mcp", host, port)
            await server.serve()


class BearerTokenMiddleware:
    """Refuse every HTTP request without ``Authorization: Bearer <token>`` (constant-time compare)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        import hmac

        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                body = b'{"error": "missing or wrong bearer token"}'
                await send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
