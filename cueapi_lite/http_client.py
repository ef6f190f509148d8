"""A lean HTTP/1.1 client for webhooks: one request per connection at a time, reused.

An `asyncio.Protocol` per connection with `httptools` (llhttp, a dependency of
uvicorn[standard]) parsing the answer, and a keep-alive pool per host. It does only what
delivery needs: a whole request written at once, the status and at most `READ_LIMIT`
bytes of the body (gzip/deflate undone), no redirects followed, no cookies. Names are
resolved through `Resolve`, so every address is checked before connecting. About a
quarter of aiohttp's cost per request (`bench/burst.py`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

__all__ = ["READ_LIMIT", "ConnectFailed", "HttpPool", "Target"]

READ_LIMIT = 64 * 1024
# An idle connection is closed after this long (receivers close theirs after a few
# seconds; ours goes first so a request rarely meets a connection closing under it).
KEEPALIVE_S = 4.0
_TARGETS_KEPT = 4096

Resolve = Callable[[str, int], Awaitable[list[str]]]


class ConnectFailed(Exception):
    """No connection could be made (DNS, refused, unreachable, TLS handshake)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True, slots=True)
class Target:
    """Where a URL's request goes: the pool key, the Host header and the request path."""

    https: bool
    host: str  # without brackets
    port: int
    authority: str  # the Host header
    path: str
    literal: bool  # the host is an IP address: nothing to resolve

    @classmethod
    def of(cls, url: str) -> Target:
        parts = urlsplit(url)
        https = parts.scheme == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if https else 80)
        authority = f"[{host}]" if ":" in host else host
        if port != (443 if https else 80):
            authority += f":{port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return cls(https, host, port, authority, path, literal=False)
        return cls(https, host, port, authority, path, literal=True)


class _Connection(asyncio.Protocol):
    """One connection; `exchange` sends a request and waits for the whole answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.exchanges = 0  # answers completed on this connection
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[tuple[int, bytes]] | None = None
        self._reset()

    def _reset(self) -> None:
        self.heard = False  # any byte of an answer to the current request
        self._status = 0
        self._body: list[bytes] = []
        self._size = 0
        self._encoding = b""
        self._delimited = False  # Content-Length or chunked: the end is not the EOF
        self.reusable = False

    # --- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not subclasses of asyncio's, but do the same.)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.heard = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ValueError(f"the answer is not HTTP/1.1: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._answer is None or self._answer.done():
            return
        if self._status and not self._delimited:
            self._complete()  # an answer that ends with the connection
        else:
            self._fail(ConnectionResetError("the receiver closed the connection"))

    # --- httptools callbacks ----------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-encoding":
            self._encoding = value.strip().lower()
        elif name in (b"content-length", b"transfer-encoding"):
            self._delimited = True

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self._size >= READ_LIMIT:
            return
        self._body.append(body)
        self._size += len(body)
        if self._size >= READ_LIMIT:
            self._complete()  # enough: the rest is not read (the connection closes)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:  # an interim answer (100 Continue): wait on
            self._reset()
            return
        self.reusable = self._parser.should_keep_alive()
        self.exchanges += 1
        self._complete()

    # --- the exchange -----------------------------------------------------------------

    def _complete(self) -> None:
        if self._answer is None or self._answer.done():
            return
        body = b"".join(self._body)
        try:
            if self._encoding in (b"gzip", b"deflate", b"x-gzip"):
                # 32 + 15: a zlib or gzip header, whichever it is.
                body = zlib.decompressobj(47).decompress(body, READ_LIMIT)
        except zlib.error as exc:
            self._fail(ValueError(f"the answer's body does not decompress: {exc}"))
            return
        self._answer.set_result((self._status, body[:READ_LIMIT]))

    def _fail(self, error: Exception) -> None:
        self.reusable = False
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)
        self.close()

    def _time_out(self) -> None:
        self._fail(TimeoutError())

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def exchange(self, request: bytes, deadline: float) -> tuple[int, bytes]:
        """Send `request` and wait for the answer until the loop's clock reads `deadline`
        (then TimeoutError, and the connection is closed)."""
        assert self.transport is not None
        self._reset()
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        # One timer on the answer, not `asyncio.timeout` around the request: the client's
        # CPU per webhook went from 71 to 51 µs (median, `bench/http_client.py`).
        timer = loop.call_at(deadline, self._time_out)
        self.transport.write(request)
        try:
            return await self._answer
        finally:
            timer.cancel()
            self._answer = None


class HttpPool:
    """Connections kept per (scheme, host, port), a request on each at a time.

    How many requests run at once is bounded by the callers (the delivery pool's workers,
    an alert batch), so a connection is never more than one of those. A limit of its own
    here would make an attempt that started beside a saturated delivery pool (a cue due
    during a burst) wait for a slot after all, and cost every request a wait on it.
    """

    def __init__(self, resolve: Resolve) -> None:
        self._resolve = resolve
        self._idle: dict[tuple[bool, str, int], list[_Connection]] = {}
        self._targets: dict[str, Target] = {}
        self._tls: ssl.SSLContext | None = None
        self._swept = 0.0

    def target(self, url: str) -> Target:
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) >= _TARGETS_KEPT:
                self._targets.clear()
            target = self._targets[url] = Target.of(url)
        return target

    async def request(
        self, target: Target, head: bytes, body: bytes | None, deadline: float
    ) -> tuple[int, bytes]:
        """Send one request (`head` ends with the blank line) and return the status and
        the body, by `deadline` (the loop's clock); raises TimeoutError, ConnectFailed,
        OSError, ValueError or ssl.SSLError."""
        request = head + body if body else head
        connection = self._idle_connection(target) or await self._connect_by(target, deadline)
        try:
            status, answer = await self._exchange(connection, request, deadline)
        except ConnectionError:
            if not connection.exchanges or connection.heard:
                raise
            # A kept-alive connection the receiver closed as the request went out (its
            # idle timeout met ours) has not read the request: it goes once more on a
            # fresh connection, as browsers and Go's client do.
            connection = await self._connect_by(target, deadline)
            status, answer = await self._exchange(connection, request, deadline)
        self._release(target, connection)
        return status, answer

    @staticmethod
    async def _exchange(
        connection: _Connection, request: bytes, deadline: float
    ) -> tuple[int, bytes]:
        try:
            return await connection.exchange(request, deadline)
        except BaseException:  # a timeout or error leaves the connection unusable
            connection.close()
            raise

    def _idle_connection(self, target: Target) -> _Connection | None:
        idle = self._idle.get((target.https, target.host, target.port))
        while idle:
            connection = idle.pop()
            if not connection.closed and time.monotonic() - connection.idle_since < KEEPALIVE_S:
                return connection
            connection.close()
        return None

    async def _connect_by(self, target: Target, deadline: float) -> _Connection:
        async with asyncio.timeout_at(deadline):
            return await self._connect(target)

    def _release(self, target: Target, connection: _Connection) -> None:
        now = time.monotonic()
        if connection.closed or not connection.reusable:
            connection.close()
        else:
            connection.idle_since = now
            self._idle.setdefault((target.https, target.host, target.port), []).append(connection)
        if now - self._swept > 1.0:
            self._swept = now
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Close connections idle for longer than KEEPALIVE_S (of hosts not sent to)."""
        for key, idle in list(self._idle.items()):
            kept = [c for c in idle if not c.closed and now - c.idle_since < KEEPALIVE_S]
            for connection in idle:
                if connection not in kept:
                    connection.close()
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]

    async def _connect(self, target: Target) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            addresses = [target.host] if target.literal else await self._resolve(
                target.host, target.port
            )  # fmt: skip
        except OSError as exc:
            raise ConnectFailed(exc) from None
        tls = self._tls_context() if target.https else None
        error: BaseException = OSError(f"no address to connect to for {target.host}")
        for address in addresses:
            try:
                _transport, connection = await loop.create_connection(
                    _Connection, address, target.port, ssl=tls,
                    server_hostname=target.host if tls else None,
                    family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                )  # fmt: skip
            except OSError as exc:  # ssl.SSLError included
                error = exc
                continue
            return connection
        raise ConnectFailed(error)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
