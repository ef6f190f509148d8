"""Small helpers shared by tests."""

from __future__ import annotations

import socket
from datetime import UTC, datetime


def ms(text: str) -> int:
    """Epoch ms of an ISO 8601 instant (`Z` or offset required)."""
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, "give tests explicit offsets"
    return int(moment.timestamp() * 1000)


def iso_at(at_ms: int) -> str:
    """The API's rendering of an instant (UTC, `+00:00`)."""
    from cueapi_lite.models import iso

    value = iso(at_ms)
    assert value is not None
    return value


def utc(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (just bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
