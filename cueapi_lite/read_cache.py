"""Answers of the API's reads, reused while nothing was committed to the database.

A result is kept with the database's data version (SQLite's `PRAGMA data_version`, which
moves with every commit by any other connection: this process's writer, an admin command,
another process) and served again only while that version has not moved, so the first
read after any commit reads afresh. The version is read before the data, so a result is
never filed under a version newer than what it shows. Without a version source (a
PostgreSQL database shared by several nodes, whose transaction ids do not say when a
transaction that already holds one commits) nothing is kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

__all__ = ["MAX_BYTES", "MAX_ENTRIES", "ReadCache"]

T = TypeVar("T")
MAX_ENTRIES = 4096
MAX_BYTES = 32 * 1024 * 1024  # rendered bodies; a page of 20 cues is about 15 KB
_OBJECT_BYTES = 512  # what a kept value that is not a body is counted as


class ReadCache:
    def __init__(
        self,
        version: Callable[[], int] | None,
        max_entries: int = MAX_ENTRIES,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.version = version
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._version: int | None = None
        self._entries: dict[Hashable, tuple[Any, int]] = {}
        self._bytes = 0

    async def get(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        """`read()`'s result, or the one kept for `key` if nothing committed since."""
        if self.version is None:
            return await read()
        version = self.version()
        if version != self._version:
            self._entries.clear()
            self._bytes = 0
            self._version = version
        entry = self._entries.get(key)
        if entry is not None:
            kept: T = entry[0]
            return kept
        value = await read()
        # Another request may have seen a newer version while this one read: then the
        # cache holds that version's results and this one is not filed among them.
        if self._version == version:
            self._keep(key, value)
        return value

    def _keep(self, key: Hashable, value: Any) -> None:
        size = len(value) if isinstance(value, bytes) else _OBJECT_BYTES
        if size > self.max_bytes // 8:
            return  # one huge page would push out everything else
        previous = self._entries.pop(key, None)
        if previous is not None:
            self._bytes -= previous[1]
        self._entries[key] = (value, size)
        self._bytes += size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._bytes -= self._entries.pop(oldest)[1]
