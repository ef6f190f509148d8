"""The MCP server over the tool table, and its two transports.

`McpEndpoint` serves streamable HTTP at `/mcp` inside `serve`: each request is
authenticated and rate-counted like any API request, and its tools call the running
server's services as that user. `run_stdio` serves the same tools on stdin/stdout to a
desktop client, calling a server over its HTTP API.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jsonschema
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from .. import __version__
from ..routes.common import caller_of
from .backend import ApiBackend, Backend, ServicesBackend, ToolFailure
from .tools import TOOLS, tool_named

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

    from ..app import CueApiLite

__all__ = ["McpEndpoint", "build_server", "run_stdio"]

SERVER_NAME = "cueapi-lite"
INSTRUCTIONS = (
    "Schedule cues (cron or one-time) that deliver signed webhooks or queue work for"
    " workers, and read their executions, outcomes and alerts."
)
# Where the authenticated caller of an HTTP request waits for the tool call.
CALLER_KEY = "cueapi_lite.mcp_backend"

BackendFor = Callable[["ServerRequestContext[Any]"], Backend]


def _listed() -> list[types.Tool]:
    return [
        types.Tool(
            name=tool.name,
            description=tool.description,
            input_schema=tool.input_schema,
            annotations=types.ToolAnnotations(
                read_only_hint=tool.read_only,
                destructive_hint=tool.destructive,
                idempotent_hint=tool.idempotent,
                open_world_hint=False,
            ),
        )
        for tool in TOOLS
    ]


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def _argument_problem(schema: dict[str, Any], arguments: dict[str, Any]) -> str | None:
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(arguments), key=lambda e: e.path
    )
    if not errors:
        return None
    first = errors[0]
    where = ".".join(str(part) for part in first.absolute_path) or "arguments"
    return f"{where}: {first.message}"


def build_server(backend_for: BackendFor) -> Server[Any]:
    """An MCP server with every tool; `backend_for(ctx)` says whom a call acts for."""
    tools = _listed()

    async def list_tools(
        _ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        tool = tool_named(params.name)
        if tool is None:
            return _error(f"Unknown tool: {params.name}")
        arguments = dict(params.arguments or {})
        problem = _argument_problem(tool.input_schema, arguments)
        if problem is not None:
            return _error(f"Invalid arguments for {tool.name}: {problem}")
        try:
            result = await tool.run(backend_for(ctx), arguments)
        except ToolFailure as exc:
            return _error(str(exc))
        text = json.dumps(result, ensure_ascii=False)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], structured_content=result
        )

    return Server(
        SERVER_NAME,
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def _request_backend(ctx: ServerRequestContext[Any]) -> Backend:
    request = ctx.request
    backend = request.scope.get(CALLER_KEY) if isinstance(request, Request) else None
    if backend is None:  # the endpoint authenticates every request before the SDK sees it
        raise RuntimeError("MCP request without an authenticated caller")
    assert isinstance(backend, ServicesBackend)
    return backend


class McpEndpoint:
    """The ASGI endpoint at `/mcp`: authenticate like the API, then hand the request to
    the SDK's streamable HTTP session manager, whose task group lives from `start()` to
    `aclose()` of the server (a fresh manager each time: one cannot be run twice)."""

    def __init__(self, lite: CueApiLite) -> None:
        self.lite = lite
        self.server = build_server(_request_backend)
        self._manager: StreamableHTTPSessionManager | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        # Stateless: every request carries its own bearer token and needs no session
        # kept in memory; JSON answers, since no tool streams. The DNS-rebinding Host
        # check is off: a page cannot make a browser send the user's bearer key.
        manager = StreamableHTTPSessionManager(
            app=self.server,
            json_response=True,
            stateless=True,
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            max_request_body_size=self.lite.settings.max_body_bytes,
        )
        started = asyncio.Event()
        self._stop = asyncio.Event()

        async def run() -> None:
            # The manager's anyio task group must be entered and left by one task.
            async with manager.run():
                started.set()
                await self._stop.wait()

        self._task = asyncio.create_task(run(), name="cueapi-lite-mcp")
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not started.is_set():
            waiter.cancel()
            self._task.result()  # raises why the manager did not start
        self._manager = manager

    async def aclose(self) -> None:
        self._manager = None
        if self._task is not None:
            self._stop.set()
            await self._task
            self._task = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        caller = await caller_of(request, self.lite.accounts)  # 401 / 429 in the envelope
        scope[CALLER_KEY] = ServicesBackend(self.lite, caller.user)
        if self._manager is None:
            raise RuntimeError("the MCP endpoint is not running")
        await self._manager.handle_request(scope, receive, send)


async def run_stdio(base_url: str, api_key: str) -> None:
    """Serve the tools on stdin/stdout, acting on the server at `base_url` as the owner
    of `api_key`."""
    backend = ApiBackend(base_url, api_key)
    server = build_server(lambda _ctx: backend)
    try:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        await backend.aclose()
