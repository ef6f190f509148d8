"""The ASGI layer in front of the routes: path clean-up, body limits, error envelopes.

* `//v1/...` collapses to `/v1/...` (the worker's login keeps a trailing `/` of its base,
  H3) and a trailing `/` is dropped, so no request is ever redirected (CONTRACT §4).
* A body larger than the limit is refused with 413 before the route reads it.
* Any exception that escapes a route becomes the JSON error envelope; an unexpected one is
  logged and answered with 500 `internal_error`, never with internals.
* A counted request's answer gets its `X-RateLimit-*` headers (the auth check leaves the
  `RateState` in the scope).
* Each routed request is recorded for `/metrics` (method, route template, status, time).

Pure ASGI, and the only layer in front of the router (`LeanStarlette` leaves out
Starlette's own error layers, whose work is done here): the send wrapper is the only
per-request allocation, and a request that declares no body gets no receive wrapper.
"""

from __future__ import annotations

import logging
import re

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, InternalError, RequestTooLarge, render
from .metrics import HttpStats
from .ratelimit import SCOPE_KEY, RateState
from .telemetry import stopwatch

__all__ = ["Edge", "LeanStarlette"]

log = logging.getLogger(__name__)
_SLASHES = re.compile(r"/{2,}")


async def send_error(send: Send, exc: ApiError) -> None:
    status, body, headers = render(exc)
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ] + [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class Edge:
    def __init__(self, app: ASGIApp, max_body_bytes: int, stats: HttpStats | None = None):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if "//" in path or (len(path) > 1 and path.endswith("/")):
            path = _SLASHES.sub("/", path)
            if len(path) > 1 and path.endswith("/"):
                path = path.rstrip("/") or "/"
            scope = dict(scope, path=path, raw_path=path.encode())
        status = 0  # none sent yet

        async def watch_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                state = scope.get(SCOPE_KEY)
                if isinstance(state, RateState):
                    message = {**message, "headers": [*message["headers"], *state.raw_headers()]}
            await send(message)

        started = stopwatch()
        routed = False
        try:
            length, chunked = _body_headers(scope)
            if length is not None and length > self.max_body_bytes:
                raise RequestTooLarge(f"Request body is larger than {self.max_body_bytes:,} bytes")
            if length or chunked:
                receive = self._limited(receive)
            routed = True
            await self.app(scope, receive, watch_send)
        except ApiError as exc:
            if not status:
                status = exc.status
                await send_error(send, exc)
        except HTTPException as exc:  # Starlette's own (a form it could not parse)
            if not status:
                status = exc.status_code
                await send_error(send, _api_error(exc))
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), path)
            if not status:
                status = 500
                await send_error(send, InternalError("Internal server error"))
        if routed and self.stats is not None:
            self.stats.record(scope, status or 500, stopwatch() - started)

    def _limited(self, receive: Receive) -> Receive:
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise RequestTooLarge(
                        f"Request body is larger than {self.max_body_bytes:,} bytes"
                    )
            return message

        return limited


def _body_headers(scope: Scope) -> tuple[int | None, bool]:
    """The declared Content-Length (None if absent or unreadable) and whether the body
    comes in chunks (or any other way that has no declared length)."""
    length: int | None = None
    chunked = False
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                chunked = True  # unreadable: count what arrives
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked


def _api_error(exc: HTTPException) -> ApiError:
    error = ApiError(str(exc.detail), "http_error", headers=dict(exc.headers or {}))
    error.status = exc.status_code  # type: ignore[misc]
    return error


class LeanStarlette(Starlette):
    """Starlette with the app's middleware around the router and nothing else: `Edge`
    renders every error, so Starlette's error and exception layers (two more `send`
    wrappers per request) are left out."""

    def build_middleware_stack(self) -> ASGIApp:
        app: ASGIApp = self.router
        for middleware in reversed(self.user_middleware):
            app = middleware.cls(app, *middleware.args, **middleware.kwargs)
        return app
