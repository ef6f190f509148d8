"""The MCP server over the tool table (built with the official `mcp` SDK) and its two
transports: `http_manager` for streamable HTTP at `/mcp` (see `endpoint`), `run_stdio`
for desktop clients on stdin/stdout, calling a server over its HTTP API.

Importing this module imports the SDK (about a second): only MCP use loads it.
"""

from __future__ import annotations

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

from .. import __version__
from ..json_input import JsonInputError, decode_json_body
from .backend import BACKEND_KEY, ApiBackend, Backend, ToolFailure, failure
from .tools import TOOLS, tool_named

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

__all__ = ["build_server", "http_manager", "run_stdio"]

SERVER_NAME = "cueapi-lite"
INSTRUCTIONS = (
    "Schedule cues (cron or one-time) that deliver signed webhooks or queue work for"
    " workers, and read their executions, outcomes and alerts."
)

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
        try:
            # The API's one decoder: the same refusals (depth, NaN, 64-bit integers, lone
            # surrogates) whichever way the arguments came.
            arguments = decode_json_body(json.dumps(params.arguments or {}))
        except JsonInputError as exc:
            return _error(str(failure(exc)))
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
    backend = request.scope.get(BACKEND_KEY) if isinstance(request, Request) else None
    if backend is None:  # the endpoint authenticates every request before the SDK sees it
        raise RuntimeError("MCP request without an authenticated caller")
    result: Backend = backend
    return result


def http_manager(max_body_bytes: int) -> StreamableHTTPSessionManager:
    """The SDK's streamable HTTP handler for the tools, acting for the backend each
    request carries under BACKEND_KEY. Stateless: every request brings its own bearer
    key and no session is kept in memory; JSON answers, since no tool streams. Its
    DNS-rebinding Host check is off: a web page cannot make a browser send the user's
    bearer key, which every request needs."""
    return StreamableHTTPSessionManager(
        app=build_server(_request_backend),
        json_response=True,
        stateless=True,
        security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        max_request_body_size=max_body_bytes,
    )


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
