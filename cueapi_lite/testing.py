"""Helpers for tests and embedders: a live server on a real socket, a webhook receiver.

`LiveServer` runs a `CueApiLite` under uvicorn on an ephemeral port in a background thread
(so synchronous clients such as the official SDK can call it). `WebhookReceiver` is a real
HTTP server that records every request and answers with a programmable response.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

import uvicorn

from .app import CueApiLite
from .config import Settings
from .services.accounts import NewKey

__all__ = ["LiveServer", "ReceivedWebhook", "WebhookReceiver"]


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


class _Background:
    """An event loop in a daemon thread; `call(coro)` runs a coroutine on it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def call(self, coroutine: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class LiveServer:
    """A real cueapi-lite on 127.0.0.1:<free port>. Use as a context manager.

    `base_url` is for the SDK and worker, `base_url + "/v1"` for the CLI.
    """

    def __init__(self, db: str, **settings: Any) -> None:
        self._sock = _listen()
        port = self._sock.getsockname()[1]
        self.settings = Settings(db=db, host="127.0.0.1", port=port, **settings)
        self.base_url = self.settings.base_url
        self.lite: CueApiLite | None = None
        self._bg: _Background | None = None
        self._server: uvicorn.Server | None = None
        self._serving: Any = None

    def __enter__(self) -> LiveServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._bg = _Background("cueapi-lite-live")
        self.lite = CueApiLite(self.settings)
        config = uvicorn.Config(
            self.lite.asgi, lifespan="on", log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._serving = asyncio.run_coroutine_threadsafe(
            self._server.serve(sockets=[self._sock]), self._bg.loop
        )
        self._bg.call(self._wait_started())

    async def _wait_started(self) -> None:
        assert self._server is not None
        while not self._server.started:
            if self._serving is not None and self._serving.done():
                self._serving.result()
            await asyncio.sleep(0.01)

    def mint_key(self, email: str = "user@example.com") -> NewKey:
        """A new API key (and the user's webhook secret) on this server."""
        assert self.lite is not None
        assert self._bg is not None
        result: NewKey = self._bg.call(self.lite.accounts.mint_key(email))
        return result

    def call(self, coroutine: Any) -> Any:
        """Run a coroutine on the server's loop (e.g. to inspect `lite.store`)."""
        assert self._bg is not None
        return self._bg.call(coroutine)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            if self._serving is not None:
                self._serving.result(30)
            self._server = None
        if self._bg is not None:
            self._bg.stop()
            self._bg = None
        self._sock.close()


@dataclasses.dataclass(frozen=True)
class ReceivedWebhook:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Callable[[ReceivedWebhook], tuple[int, Any]]


class WebhookReceiver:
    """A real HTTP endpoint on 127.0.0.1 that records requests.

    `respond(received) -> (status, json_body)` decides each answer (default: 200 `{}`);
    `delay(received) -> seconds` holds an answer back (a slow or hung endpoint).
    `wait_for(n)` blocks until n requests arrived.
    """

    def __init__(
        self,
        respond: Responder | None = None,
        delay: Callable[[ReceivedWebhook], float] | None = None,
    ) -> None:
        self.respond: Responder = respond or (lambda _r: (200, {}))
        self.delay = delay or (lambda _r: 0.0)
        self.received: list[ReceivedWebhook] = []
        self._arrived = threading.Condition()
        self._sock = _listen()
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._bg: _Background | None = None
        self._server: uvicorn.Server | None = None
        self._serving: Any = None

    def __enter__(self) -> WebhookReceiver:
        self._bg = _Background("cueapi-lite-receiver")
        config = uvicorn.Config(
            self._app, lifespan="off", log_level="warning", access_log=False, interface="asgi3"
        )
        self._server = uvicorn.Server(config)
        self._serving = asyncio.run_coroutine_threadsafe(
            self._server.serve(sockets=[self._sock]), self._bg.loop
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True  # do not wait for held-back answers
            self._serving.result(30)
        if self._bg is not None:
            self._bg.stop()
        self._sock.close()

    async def _app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        received = ReceivedWebhook(
            method=scope["method"],
            path=scope["path"],
            headers={k.decode().lower(): v.decode() for k, v in scope["headers"]},
            body=body,
        )
        status, data = self.respond(received)
        with self._arrived:
            self.received.append(received)
            self._arrived.notify_all()
        hold_s = self.delay(received)
        if hold_s > 0:
            await asyncio.sleep(hold_s)
        payload = json.dumps(data).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": payload})

    def wait_for(self, count: int, timeout: float = 30.0) -> list[ReceivedWebhook]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise TimeoutError(f"expected {count} webhooks, got {len(self.received)}")
            return list(self.received)
