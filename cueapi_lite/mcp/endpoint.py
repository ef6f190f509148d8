"""The ASGI endpoint at `/mcp`: authenticate like the API, then hand the request to the
SDK's streamable HTTP handler, whose tools call the running server's services as that
user. The SDK is loaded, and its handler started, on the first request, so a server that
never sees MCP traffic pays nothing for it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from ..routes.common import caller_of
from .backend import BACKEND_KEY, ServicesBackend

if TYPE_CHECKING:
    from ..app import CueApiLite

__all__ = ["McpEndpoint"]


class McpEndpoint:
    """`/mcp`. The handler's task group lives in one task of its own, from the first
    request to `aclose()` (anyio requires the task that enters it to leave it)."""

    def __init__(self, lite: CueApiLite) -> None:
        self.lite = lite
        self._manager: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._starting = asyncio.Lock()

    async def _started(self) -> Any:
        async with self._starting:
            if self._manager is not None:
                return self._manager
            from .server import http_manager

            manager = http_manager(self.lite.settings.max_body_bytes)
            running = asyncio.Event()
            self._stop = asyncio.Event()

            async def run() -> None:
                async with manager.run():
                    running.set()
                    await self._stop.wait()

            self._task = asyncio.create_task(run(), name="cueapi-lite-mcp")
            waiter = asyncio.create_task(running.wait())
            await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
            if not running.is_set():
                waiter.cancel()
                self._task.result()  # raises why the handler did not start
            self._manager = manager
            return manager

    async def aclose(self) -> None:
        """Stop the handler (if a request started it)."""
        self._manager = None
        if self._task is not None:
            self._stop.set()
            await self._task
            self._task = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = await caller_of(Request(scope, receive), self.lite.accounts)  # 401 / 429
        manager = await self._started()
        scope[BACKEND_KEY] = ServicesBackend(self.lite, caller.user)
        await manager.handle_request(scope, receive, send)
