"""MCP (Model Context Protocol) for agents: one tool table over two transports.

`tools` holds every tool once; `backend` what they act on (the running server's services,
or a server's HTTP API); `server` builds the MCP server and serves it at `/mcp` inside
`serve` or on stdio for `cueapi-lite mcp`.
"""

from __future__ import annotations

from .backend import ApiBackend, Backend, ServicesBackend, ToolFailure
from .server import McpEndpoint, build_server, run_stdio
from .tools import TOOLS, Tool

__all__ = [
    "TOOLS",
    "ApiBackend",
    "Backend",
    "McpEndpoint",
    "ServicesBackend",
    "Tool",
    "ToolFailure",
    "build_server",
    "run_stdio",
]
