"""MCP (Model Context Protocol) for agents: one tool table over two transports.

`tools` holds every tool once; `backend` what they act on (the running server's services,
or a server's HTTP API); `endpoint` serves them at `/mcp` inside `serve`; `server` builds
the MCP server with the SDK and runs it on stdio for `cueapi-lite mcp`. Only `server`
imports the SDK, and only when MCP is used.
"""

from __future__ import annotations

from .backend import ApiBackend, Backend, ServicesBackend, ToolFailure
from .endpoint import McpEndpoint
from .tools import TOOLS, Tool

__all__ = [
    "TOOLS",
    "ApiBackend",
    "Backend",
    "McpEndpoint",
    "ServicesBackend",
    "Tool",
    "ToolFailure",
]
