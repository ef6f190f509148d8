"""The ASGI layer in front of the routes: path clean-up, body limits, error envelopes.

* `//v1/...` collapses to `/v1/...` (the worker's login keeps a trailing `/` of its base,
  H3) and a trailing `/` is dropped, so no request is ever redirected (CONTRACT §4).
* A body larger than the limit is refused with 413 before the route reads it.
* Any exception that escapes a route becomes the JSON error envelope; an unexpected one is
  logged and answered with 500 `internal_error`, never with internals.
* A counted request's answer gets its `X-RateLimit-*` headers (the auth check leaves the
  `RateState` in the scope).

Pure ASGI, one layer: the send wrapper is the only per-request allocation, and a request
that declares no body gets no receive wrapper.
"""

from __future__ import annotations

import logging
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, InternalError, RequestTooLarge, render
from .ratelimit import SCOPE_KEY, RateState

__all__ = ["Edge"]

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
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

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
        started = False

        async def watch_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                state = scope.get(SCOPE_KEY)
                if isinstance(state, RateState):
                    message = {**message, "headers": [*message["headers"], *state.raw_headers()]}
            await send(message)

        try:
            length, chunked = _body_headers(scope)
            if length is not None and length > self.max_body_bytes:
                raise RequestTooLarge(f"Request body is larger than {self.max_body_bytes:,} bytes")
            if length or chunked:
                receive = self._limited(receive)
            await self.app(scope, receive, watch_send)
        except ApiError as exc:
            if not started:
                await send_error(send, exc)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), path)
            if not started:
                await send_error(send, InternalError("Internal server error"))

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
