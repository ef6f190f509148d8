"""The webhook HTTP client against a real socket: what goes on the wire, what comes back,
connection reuse, limits, and every way an attempt fails."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from cueapi_lite.callbacks import CallbackPolicy
from cueapi_lite.http_client import READ_LIMIT
from cueapi_lite.webhooks import DeliveryFailed, HttpDeliverer, WebhookRequest

# The raw request -> the raw answer (None: say nothing; b"": close without answering).
Answer = Callable[[bytes], bytes | None]


class Receiver:
    """A TCP server on 127.0.0.1 that records each request and answers with `answer`."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[bytes] = []
        self.answer: Answer = lambda _request: ok(b"{}")
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = self.answer(request)
                if answer is None:
                    await asyncio.sleep(3600)  # never answers; the client gives up
                    return
                if not answer:
                    return
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


def ok(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


@pytest.fixture
async def deliverer() -> AsyncIterator[HttpDeliverer]:
    sender = HttpDeliverer(CallbackPolicy("local"))
    yield sender
    await sender.close()


def post(port: int, path: str = "/hook?x=1", **fields: Any) -> WebhookRequest:
    request = {
        "url": f"http://127.0.0.1:{port}{path}",
        "method": "POST",
        "headers": {"Content-Type": "application/json", "X-CueAPI-Attempt": "1"},
        "body": b'{"n": 1}',
        "timeout_s": 5.0,
    }
    return WebhookRequest(**(request | fields))


async def test_the_request_on_the_wire_and_one_connection_for_many(
    receiver: Receiver, deliverer: HttpDeliverer
) -> None:
    for _ in range(3):
        response = await deliverer.send(post(receiver.port))
        assert (response.status, response.body) == (200, b"{}")
    assert receiver.connections == 1  # kept alive and reused
    head, _, body = receiver.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /hook?x=1 HTTP/1.1"
    assert set(lines[1:]) == {
        f"Host: 127.0.0.1:{receiver.port}", "Content-Type: application/json",
        "X-CueAPI-Attempt: 1", "Content-Length: 8",
    }  # fmt: skip
    assert body == b'{"n": 1}'


async def test_a_get_carries_no_body_and_no_length(
    receiver: Receiver, deliverer: HttpDeliverer
) -> None:
    await deliverer.send(post(receiver.port, "/get", method="GET", body=None))
    head, _, body = receiver.requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"GET /get HTTP/1.1\r\n")
    assert b"content-length" not in head.lower()
    assert body == b""


async def test_a_connection_the_receiver_closes_is_not_reused(
    receiver: Receiver, deliverer: HttpDeliverer
) -> None:
    receiver.answer = lambda _request: ok(b"{}", "Connection: close")
    for _ in range(2):
        assert (await deliverer.send(post(receiver.port))).status == 200
    assert receiver.connections == 2


async def test_a_kept_alive_connection_closed_as_a_request_arrives_sends_it_again(
    receiver: Receiver, deliverer: HttpDeliverer
) -> None:
    # The receiver's idle timeout closes the connection just as the next request goes out.
    answers = iter([ok(b"{}"), b"", ok(b'{"again": true}')])
    receiver.answer = lambda _request: next(answers)
    assert (await deliverer.send(post(receiver.port))).status == 200
    response = await deliverer.send(post(receiver.port))
    assert (response.status, response.body) == (200, b'{"again": true}')
    assert (receiver.connections, len(receiver.requests)) == (2, 3)


async def test_a_fresh_connection_closed_without_an_answer_fails_the_attempt_once(
    receiver: Receiver, deliverer: HttpDeliverer
) -> None:
    receiver.answer = lambda _request: b""
    with pytest.raises(DeliveryFailed, match="closed the connection"):
        await deliverer.send(post(receiver.port))
    assert len(receiver.requests) == 1  # a connection that never answered is not retried


async def test_redirects_come_back_as_answers_and_are_not_followed(
    receiver: Receiver, deliverer: HttpDeliverer
) -> None:
    receiver.answer = lambda _request: ok(b"", "Location: /elsewhere", status="302 Found")
    response = await deliverer.send(post(receiver.port))
    assert response.status == 302
    assert len(receiver.requests) == 1


async def test_chunked_gzip_and_close_delimited_bodies_are_read_whole(
    receiver: Receiver, deliverer: HttpDeliverer
) -> None:
    receiver.answer = lambda _request: (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5\r\n{"suc\r\nb\r\ncess": true\r\n1\r\n}\r\n0\r\n\r\n'
    )
    assert (await deliverer.send(post(receiver.port))).body == b'{"success": true}'
    packed = gzip.compress(b'{"result": "zipped"}')
    receiver.answer = lambda _request: ok(packed, "Content-Encoding: gzip")
    assert (await deliverer.send(post(receiver.port))).body == b'{"result": "zipped"}'
    receiver.answer = lambda _request: b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"
    assert (await deliverer.send(post(receiver.port))).body == b"until the end"


async def test_an_interim_answer_is_passed_over(
    receiver: Receiver, deliverer: HttpDeliverer
) -> None:
    receiver.answer = lambda _request: b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"{}", status="201 A")
    response = await deliverer.send(post(receiver.port))
    assert (response.status, response.body) == (201, b"{}")


async def test_a_huge_answer_is_cut_at_the_read_limit_and_its_connection_dropped(
    receiver: Receiver, deliverer: HttpDeliverer
) -> None:
    receiver.answer = lambda _request: ok(b"x" * (READ_LIMIT * 4))
    response = await deliverer.send(post(receiver.port))
    assert response.body == b"x" * READ_LIMIT
    await deliverer.send(post(receiver.port))
    assert receiver.connections == 2  # the unread rest made the first one unusable


async def test_a_receiver_that_never_answers_times_the_attempt_out(
    receiver: Receiver, deliverer: HttpDeliverer
) -> None:
    receiver.answer = lambda _request: None
    with pytest.raises(DeliveryFailed, match=r"^Timed out after 0.2s$"):
        await deliverer.send(post(receiver.port, timeout_s=0.2))
    receiver.answer = lambda _request: ok(b"{}")
    assert (await deliverer.send(post(receiver.port))).status == 200
    assert receiver.connections == 2  # the timed-out connection is not reused


async def test_an_answer_cut_short_fails_the_attempt(
    receiver: Receiver, deliverer: HttpDeliverer
) -> None:
    receiver.answer = lambda _request: (
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n{}"
    )
    with pytest.raises(DeliveryFailed, match="closed the connection"):
        await deliverer.send(post(receiver.port))


async def test_an_answer_that_is_not_http_fails_the_attempt(
    receiver: Receiver, deliverer: HttpDeliverer
) -> None:
    receiver.answer = lambda _request: b"SSH-2.0-OpenSSH_9.6\r\n\r\n"
    with pytest.raises(DeliveryFailed, match=r"not HTTP/1\.1"):
        await deliverer.send(post(receiver.port))


async def test_a_refused_connection_fails_the_attempt(deliverer: HttpDeliverer) -> None:
    async with Receiver() as gone:
        port = gone.port
    with pytest.raises(DeliveryFailed, match=r"^Connection failed: "):
        await deliverer.send(post(port))


async def test_a_header_with_a_line_break_is_never_sent(
    receiver: Receiver, deliverer: HttpDeliverer
) -> None:
    smuggled = {"X-Team": "ops\r\nX-Injected: 1"}
    with pytest.raises(DeliveryFailed, match="line break"):
        await deliverer.send(post(receiver.port, headers=smuggled))
    assert receiver.connections == 0


async def test_a_name_is_resolved_and_its_addresses_checked_before_connecting(
    receiver: Receiver,
) -> None:
    local = HttpDeliverer(CallbackPolicy("local"))
    public = HttpDeliverer(CallbackPolicy("public"))
    try:
        url = f"http://localhost:{receiver.port}/hook"
        assert (await local.send(post(receiver.port, url=url))).status == 200
        assert receiver.connections == 1
        with pytest.raises(DeliveryFailed, match="addresses the callback policy blocks"):
            await public.send(post(receiver.port, url=url.replace("http:", "https:")))
        assert receiver.connections == 1
    finally:
        await local.close()
        await public.close()


async def test_https_is_spoken_to_an_https_url(deliverer: HttpDeliverer) -> None:
    """The first bytes on the wire are a TLS handshake; a peer that hangs up on it fails
    the attempt as a connection failure."""
    first: list[bytes] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first.append(await reader.read(3))
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(DeliveryFailed, match=r"^Connection failed: "):
            await deliverer.send(post(port, url=f"https://127.0.0.1:{port}/hook"))
    finally:
        server.close()
    assert first == [b"\x16\x03\x01"]  # a TLS handshake record, not "POST"


async def test_the_attempts_timeout_covers_connecting(
    receiver: Receiver, deliverer: HttpDeliverer
) -> None:
    """A peer that takes the connection but never answers the TLS handshake: the attempt
    ends at its timeout, as one whose answer never comes does."""
    receiver.answer = lambda _request: None  # reads, and never says a word
    url = f"https://127.0.0.1:{receiver.port}/hook"
    with pytest.raises(DeliveryFailed, match=r"^Timed out after 0.2s$"):
        await deliverer.send(post(receiver.port, url=url, timeout_s=0.2))
    assert receiver.connections == 1
