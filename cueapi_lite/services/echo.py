"""The quickstart echo (E46): a webhook the server delivers to itself, kept 300 s.

`cueapi quickstart` points a `once` cue at `<base>/v1/echo/<token>` and polls the GET.
Echoes live in memory only (bounded in count and bytes). An echo delivered for a cue is
readable only by that cue's owner; the token itself is a 64-bit secret.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Any

from ..clock import Clock
from ..errors import BadRequest, RequestTooLarge
from ..models import User
from ..store import Store

__all__ = ["Echo", "EchoService"]

KEEP_MS = 300_000
MAX_ECHO_BYTES = 1024 * 1024
MAX_ECHOES = 1000
MAX_TOTAL_BYTES = 32 * 1024 * 1024
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
# Never kept: credentials a caller may have sent along.
_DROPPED_HEADERS = {"authorization", "cookie", "proxy-authorization"}


@dataclasses.dataclass(frozen=True, slots=True)
class Echo:
    payload: dict[str, Any]
    headers: dict[str, str]
    received_at_ms: int
    owner_id: str | None  # the owner of the cue named in X-CueAPI-Cue-Id, if any
    size: int


def check_token(token: str) -> str:
    if not _TOKEN.match(token):
        raise BadRequest("Echo token: 16 to 128 letters, digits, '-' or '_'", "invalid_token")
    return token


class EchoService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._echoes: collections.OrderedDict[str, Echo] = collections.OrderedDict()
        self._bytes = 0

    async def store_echo(
        self, token: str, payload: dict[str, Any], headers: dict[str, str], size: int
    ) -> None:
        check_token(token)
        if size > MAX_ECHO_BYTES:
            raise RequestTooLarge(f"Echo bodies are limited to {MAX_ECHO_BYTES:,} bytes")
        cue_id = headers.get("x-cueapi-cue-id")
        owner = None
        if cue_id:
            cues = await self.store.cues.get_many([cue_id[:64]])
            owner = cues[0].user_id if cues else None
        kept = {k: v for k, v in headers.items() if k not in _DROPPED_HEADERS}
        self._forget(token)
        self._expire()
        while self._echoes and (
            len(self._echoes) >= MAX_ECHOES or self._bytes + size > MAX_TOTAL_BYTES
        ):
            self._forget(next(iter(self._echoes)))
        self._echoes[token] = Echo(payload, kept, self.clock.now_ms(), owner, size)
        self._bytes += size

    def read(self, user: User, token: str) -> Echo | None:
        """The echo for this token, if delivered, unexpired and the caller's to see."""
        check_token(token)
        self._expire()
        echo = self._echoes.get(token)
        if echo is None or (echo.owner_id is not None and echo.owner_id != user.id):
            return None
        return echo

    def _forget(self, token: str) -> None:
        echo = self._echoes.pop(token, None)
        if echo is not None:
            self._bytes -= echo.size

    def _expire(self) -> None:
        cutoff_ms = self.clock.now_ms() - KEEP_MS
        while self._echoes:
            token, echo = next(iter(self._echoes.items()))
            if echo.received_at_ms > cutoff_ms:
                return
            self._forget(token)
