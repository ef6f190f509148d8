"""A real SMTP server for tests (aiosmtpd), listening on 127.0.0.1:<free port>."""

from __future__ import annotations

import socket
import threading
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.arrived:
            self.messages.append(message_from_bytes(envelope.content))
            self.arrived.notify_all()
        return "250 OK"


class _BoundController(Controller):
    """aiosmtpd's controller on a socket bound beforehand (so port 0 works)."""

    def __init__(self, handler: Any, sock: socket.socket) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=sock.getsockname()[1])
        self._sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


class SmtpServer:
    """Use as a context manager; `messages` holds what arrived, `wait_for(n)` blocks."""

    def __init__(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._inbox = _Inbox()
        self._controller = _BoundController(self._inbox, sock)

    @property
    def messages(self) -> list[Message]:
        return self._inbox.messages

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Message]:
        with self._inbox.arrived:
            if not self._inbox.arrived.wait_for(lambda: len(self.messages) >= count, timeout):
                raise TimeoutError(f"expected {count} emails, got {len(self.messages)}")
            return list(self.messages)

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
