"""Signed webhook requests: the canonical body, the signature and the HTTP transport.

`Deliverer` is the seam: the service hands it a finished `WebhookRequest` and gets a
`WebhookResponse` or a `DeliveryFailed`. `HttpDeliverer` is the real one: a bounded
keep-alive pool (`http_client`), a per-attempt timeout, no redirects, and every resolved
address checked against the callback policy before connecting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import socket
import time
from json.encoder import encode_basestring_ascii
from typing import Any, Protocol

from .callbacks import CallbackPolicy, CallbackRefused
from .http_client import ConnectFailed, HttpPool

__all__ = [
    "Deliverer",
    "DeliveryFailed",
    "HttpDeliverer",
    "WebhookRequest",
    "WebhookResponse",
    "canonical_body",
    "execution_body",
    "sign",
]

USER_AGENT = "CueAPI/1.0"
# How long a name's checked addresses are used before it is resolved again.
DNS_CACHE_S = 10.0
# Headers a cue's callback.headers may not set: they carry the signature and framing.
RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding",
                              "connection"})  # fmt: skip


# One encoder for every body: `json.dumps(..., sort_keys=True)` builds a new one per call.
_encode_sorted = json.JSONEncoder(sort_keys=True).encode
_string = encode_basestring_ascii


def canonical_body(body: dict[str, Any]) -> bytes:
    """The bytes that are signed and sent (CONTRACT §7.3).

    `json.dumps(sort_keys=True)` with its default separators and ASCII escapes is what the
    SDK's `verify_webhook` rebuilds from the parsed body; sending exactly these bytes also
    satisfies verifiers that hash the raw body.
    """
    return _encode_sorted(body).encode("utf-8")


def execution_body(
    execution_id: str, cue_id: str, name: str, scheduled_for: str, attempt: int,
    payload: dict[str, Any],
) -> bytes:  # fmt: skip
    """`canonical_body` of an execution's webhook, written field by field in the sorted
    order: the same bytes for less than half the cost (one per delivery)."""
    return (
        f'{{"attempt": {int(attempt)}, "cue_id": {_string(cue_id)},'
        f' "execution_id": {_string(execution_id)}, "name": {_string(name)},'
        f' "payload": {_encode_sorted(payload)}, "scheduled_for": {_string(scheduled_for)}}}'
    ).encode()


def sign(secret: str, timestamp_s: int, body: bytes) -> str:
    message = str(timestamp_s).encode("ascii") + b"." + body
    return "v1=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookRequest:
    url: str
    method: str
    headers: dict[str, str]
    body: bytes | None
    timeout_s: float


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookResponse:
    status: int
    body: bytes  # at most READ_LIMIT (64 KiB) bytes


class DeliveryFailed(Exception):
    """The attempt got no HTTP answer: timeout, refused, blocked address, bad TLS."""


class Deliverer(Protocol):
    async def send(self, request: WebhookRequest) -> WebhookResponse: ...

    async def close(self) -> None: ...


class HttpDeliverer:
    """Webhook requests over `http_client`: the URL the callback policy decided on, each
    resolved address checked before connecting, one timeout for the whole attempt."""

    def __init__(self, policy: CallbackPolicy) -> None:
        self._policy = policy
        self._pool = HttpPool(self._resolve)
        self._resolved: dict[tuple[str, int], tuple[float, list[str]]] = {}

    async def _resolve(self, host: str, port: int) -> list[str]:
        """The host's addresses the policy allows (remembered for DNS_CACHE_S)."""
        now = time.monotonic()
        known = self._resolved.get((host, port))
        if known is not None and known[0] > now:
            return known[1]
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found = list(dict.fromkeys(str(info[4][0]) for info in infos))
        allowed = [address for address in found if self._policy.address_allowed(address)]
        if not allowed:
            raise OSError(f"{host} resolves only to addresses the callback policy blocks")
        if len(self._resolved) >= 1024:
            self._resolved.clear()
        self._resolved[(host, port)] = (now + DNS_CACHE_S, allowed)
        return allowed

    async def send(self, request: WebhookRequest) -> WebhookResponse:
        try:
            # Connect to the canonical URL the policy decided on: nothing is left to
            # normalise, and IP literals never reach the resolver.
            url = self._policy.check(request.url)
        except CallbackRefused as exc:
            raise DeliveryFailed(str(exc)) from None
        target = self._pool.target(url)
        lines = [f"{request.method} {target.path} HTTP/1.1", f"Host: {target.authority}"]
        lines += [f"{name}: {value}" for name, value in request.headers.items()]
        if request.body is not None:
            lines.append(f"Content-Length: {len(request.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        try:
            if head.count("\n") != len(lines) + 1 or "\r\r" in head or "\x00" in head:
                raise ValueError("a header carries a line break or NUL")
            deadline = asyncio.get_running_loop().time() + request.timeout_s
            status, body = await self._pool.request(
                target, head.encode("utf-8"), request.body, deadline
            )
            return WebhookResponse(status, body)
        except TimeoutError:
            raise DeliveryFailed(f"Timed out after {request.timeout_s:g}s") from None
        except ConnectFailed as exc:
            raise DeliveryFailed(f"Connection failed: {exc.error}") from None
        except (OSError, ValueError) as exc:
            raise DeliveryFailed(f"Delivery failed: {exc.__class__.__name__}: {exc}") from None

    async def close(self) -> None:
        self._pool.close()
        await asyncio.sleep(0)
