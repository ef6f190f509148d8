"""Helpers for tests and embedders: servers whose time you move, receivers that check.

`LiveServer` runs a `CueApiLite` under uvicorn on an ephemeral port in a background thread
(for synchronous clients such as the official SDK); on a `ManualClock` its `advance()`
moves time and returns once everything due has fired, been delivered and settled.
`InProcessServer` is the same on the caller's event loop with no sockets at all.
`WebhookReceiver` (a real HTTP endpoint) and `WebhookRecorder` (an in-memory `Deliverer`)
record deliveries, check their signatures and answer as told.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn

from .app import CueApiLite
from .clock import Clock, ManualClock
from .config import Settings
from .services.accounts import NewKey
from .webhooks import WebhookRequest, WebhookResponse, canonical_body, sign

__all__ = [
    "InProcessServer",
    "LiveServer",
    "ReceivedWebhook",
    "WebhookReceiver",
    "WebhookRecorder",
    "advance",
    "manual_clock",
]

# Steps one `advance` may take (each: move to the next deadline and settle).
MAX_STEPS = 1_000_000


def manual_clock(start: str | datetime | None = None) -> ManualClock:
    """A ManualClock at `start` (an ISO 8601 instant with an offset, or an aware
    datetime), or at the current time."""
    if start is None:
        return ManualClock()
    moment = start if isinstance(start, datetime) else datetime.fromisoformat(start)
    if moment.tzinfo is None:  # a wall time alone is ambiguous around a DST change
        raise ValueError(f"the start {start!r} needs a UTC offset")
    return ManualClock(int(moment.timestamp() * 1000))


def _seconds(seconds: float, minutes: float, hours: float, days: float) -> float:
    total = seconds + 60 * minutes + 3600 * hours + 86400 * days
    if total < 0:
        raise ValueError("time only moves forward")
    return total


async def advance(lite: CueApiLite, seconds: float) -> None:
    """Move `lite`'s ManualClock `seconds` ahead, stopping at every deadline on the way
    (a fire, a retry, a lease or outcome deadline, an alert) to run it, as if that time
    had passed; return once nothing due is left and every delivery has finished."""
    clock = lite.clock
    if not isinstance(clock, ManualClock):
        raise TypeError("advance() needs a server on a ManualClock")
    target_ms = clock.now_ms() + round(seconds * 1000)
    await lite.settle()
    for _ in range(MAX_STEPS):
        next_ms = lite.scheduler.next_due_ms()
        if next_ms is None or next_ms > target_ms:
            break
        if next_ms > clock.now_ms():
            clock.advance((next_ms - clock.now_ms()) / 1000)
        await lite.settle()
    else:
        raise RuntimeError(f"more than {MAX_STEPS} deadlines before the target time")
    if target_ms > clock.now_ms():
        clock.advance((target_ms - clock.now_ms()) / 1000)
    await lite.settle()


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Inherited by accepted connections: uvicorn writes a response's head and body
    # separately, and with Nagle's algorithm the body waits for the client's delayed
    # ACK, about 40 ms per request.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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

    `base_url` is for the SDK and worker, `base_url + "/v1"` for the CLI. With
    `clock=ManualClock()` (or `manual_clock("2027-03-13T12:00:00-05:00")`) time stands
    still until `advance()` moves it; deliveries still travel over real sockets.
    """

    def __init__(self, db: str, *, clock: Clock | None = None, **settings: Any) -> None:
        self._sock = _listen()
        port = self._sock.getsockname()[1]
        self.settings = Settings(db=db, host="127.0.0.1", port=port, **settings)
        self.base_url = self.settings.base_url
        self.clock = clock
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
        self.lite = CueApiLite(self.settings, clock=self.clock)
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

    def call(self, coroutine: Any, timeout: float = 30.0) -> Any:
        """Run a coroutine on the server's loop (e.g. to inspect `lite.store`)."""
        assert self._bg is not None
        return self._bg.call(coroutine, timeout)

    def advance(
        self,
        seconds: float = 0,
        *,
        minutes: float = 0,
        hours: float = 0,
        days: float = 0,
        timeout: float = 120.0,
    ) -> None:
        """Move the server's ManualClock forward and return once everything due up to
        then has fired, been delivered (to real receivers) and settled. `advance()` with
        no argument runs what is due now, such as a cue created "at now"."""
        assert self.lite is not None
        self.call(advance(self.lite, _seconds(seconds, minutes, hours, days)), timeout)

    def now(self) -> datetime:
        """The server's current time (UTC)."""
        assert self.lite is not None
        return datetime.fromtimestamp(self.lite.clock.now_ms() / 1000, UTC)

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


# --- receiving webhooks ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReceivedWebhook:
    """One delivery as it arrived. `signature_valid` is None when the receiver was not
    given the webhook secret; otherwise whether `X-CueAPI-Signature` is the HMAC of the
    timestamp and the exact bytes received, and those bytes are the canonical JSON the
    SDK's `verify_webhook` rebuilds."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    signature_valid: bool | None = None

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def execution_id(self) -> str:
        return str(self.json()["execution_id"])

    @property
    def scheduled_for(self) -> str:
        return str(self.json()["scheduled_for"])

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = self.json()["payload"]
        return payload


def signature_valid(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Whether a delivery is signed with `secret` (headers with lower-case names)."""
    try:
        timestamp_s = int(headers["x-cueapi-timestamp"])
        canonical = canonical_body(json.loads(body)) == body
    except (KeyError, ValueError):
        return False
    expected = sign(secret, timestamp_s, body)
    return canonical and hmac.compare_digest(expected, headers.get("x-cueapi-signature", ""))


Responder = Callable[[ReceivedWebhook], tuple[int, Any]]


class _Answers:
    """What a receiver answers, and what it has recorded (shared by both receivers)."""

    def __init__(self, respond: Responder | None = None, secret: str | None = None) -> None:
        self.respond: Responder = respond or (lambda _hook: (200, {}))
        self.secret = secret
        self.received: list[ReceivedWebhook] = []
        self._arrived = threading.Condition()

    def answer(self, status: int = 200, body: Any = None) -> None:
        """Answer every following delivery with this status and JSON body."""
        self.respond = lambda _hook: (status, {} if body is None else body)

    def answer_outcome(self, success: bool = True, **fields: Any) -> None:
        """Answer 200 with an outcome in the body (`result`, `error`, `external_id`, ...),
        which the server records as the execution's outcome."""
        self.answer(200, {"success": success, **fields})

    def _record(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        valid = None if self.secret is None else signature_valid(self.secret, headers, body)
        hook = ReceivedWebhook(method, path, headers, body, valid)
        answer = self.respond(hook)
        with self._arrived:
            self.received.append(hook)
            self._arrived.notify_all()
        return hook, answer

    def _checked(self, hooks: list[ReceivedWebhook]) -> list[ReceivedWebhook]:
        bad = [hook.path for hook in hooks if hook.signature_valid is False]
        assert not bad, f"deliveries with a bad signature: {bad}"
        return hooks

    def wait_for(self, count: int, timeout: float = 30.0) -> list[ReceivedWebhook]:
        """Block until `count` deliveries arrived; return all so far, each signature
        checked when the secret is known (an AssertionError names a bad one)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise TimeoutError(f"expected {count} webhooks, got {len(self.received)}")
            return self._checked(list(self.received))

    def assert_received(self, count: int) -> list[ReceivedWebhook]:
        """Assert that exactly `count` deliveries arrived (after `advance()` nothing is
        in flight), each validly signed when the secret is known; return them."""
        with self._arrived:
            hooks = list(self.received)
        assert len(hooks) == count, f"expected {count} webhooks, got {len(hooks)}"
        return self._checked(hooks)


class WebhookReceiver(_Answers):
    """A real HTTP endpoint on 127.0.0.1 that records requests. Use as a context manager.

    `secret` (the user's `whsec_…`) makes it check every signature. `respond(hook) ->
    (status, json_body)` decides each answer (default: 200 `{}`; see `answer` and
    `answer_outcome`); `delay(hook) -> seconds` holds an answer back (a slow endpoint).
    """

    def __init__(
        self,
        respond: Responder | None = None,
        delay: Callable[[ReceivedWebhook], float] | None = None,
        *,
        secret: str | None = None,
    ) -> None:
        super().__init__(respond, secret)
        self.delay = delay or (lambda _hook: 0.0)
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
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        hook, (status, data) = self._record(scope["method"], scope["path"], headers, body)
        hold_s = self.delay(hook)
        if hold_s > 0:
            await asyncio.sleep(hold_s)
        payload = json.dumps(data).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": payload})


class WebhookRecorder(_Answers):
    """A `Deliverer` that records deliveries in memory instead of sending them, for an
    in-process server with no sockets; answers like `WebhookReceiver`."""

    async def send(self, request: WebhookRequest) -> WebhookResponse:
        headers = {name.lower(): value for name, value in request.headers.items()}
        path = httpx.URL(request.url).path
        _hook, (status, data) = self._record(request.method, path, headers, request.body or b"")
        return WebhookResponse(status, json.dumps(data).encode())

    async def close(self) -> None:
        pass


class InProcessServer:
    """A `CueApiLite` on a ManualClock in the caller's event loop, with deliveries
    recorded by `webhooks` (a `WebhookRecorder`) instead of sent: no sockets at all.

    `async with InProcessServer(db) as server:`; `server.client(key)` calls the API,
    `await server.advance(hours=24)` moves time and settles.
    """

    def __init__(self, db: str, *, start: str | datetime | None = None, **settings: Any) -> None:
        self.clock = manual_clock(start)
        self.webhooks = WebhookRecorder()
        self.lite = CueApiLite(Settings(db=db, **settings), clock=self.clock,
                               deliverer=self.webhooks)  # fmt: skip

    async def __aenter__(self) -> InProcessServer:
        await self.lite.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.lite.aclose()

    async def mint_key(self, email: str = "user@example.com") -> NewKey:
        """A new API key for `email`; its webhook secret becomes the one `webhooks`
        checks signatures with."""
        key = await self.lite.accounts.mint_key(email)
        self.webhooks.secret = key.user.webhook_secret
        return key

    def client(self, api_key: str | None = None) -> httpx.AsyncClient:
        """An httpx client calling the API in-process (`base_url` is ignored)."""
        return self.lite.client(api_key)

    async def advance(
        self, seconds: float = 0, *, minutes: float = 0, hours: float = 0, days: float = 0
    ) -> None:
        """Move time forward; return once everything due up to then has fired, been
        recorded and settled."""
        await advance(self.lite, _seconds(seconds, minutes, hours, days))

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now_ms() / 1000, UTC)
