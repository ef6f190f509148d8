"""Reuse of the dashboard's widest reads (every cue's health, a day of executions).

A result is reused while nothing was committed to the database since it was read, and
while things are being committed, for at most `MIN_AGE_MS`: a busy server re-reads 10,000
cues at most every two seconds, however many tabs are open. A page built from a reused
result carries that result's (older) version, so the live script asks again and gets the
fresh one.
"""

from __future__ import annotations

import contextvars
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from ..clock import Clock

__all__ = ["MIN_AGE_MS", "Snapshots", "served_versions"]

T = TypeVar("T")
MIN_AGE_MS = 2000
MAX_ENTRIES = 64  # a user's 10,000 cues take about 1 MB
# The versions of the results one page was built from (set per request).
served_versions: contextvars.ContextVar[list[int]] = contextvars.ContextVar("served_versions")


class Snapshots:
    def __init__(self, clock: Clock, version: Callable[[], int]) -> None:
        self.clock = clock
        self.version = version
        self._entries: OrderedDict[Hashable, tuple[int, int, Any]] = OrderedDict()

    async def get(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        version = self.version()
        now_ms = self.clock.monotonic_ms()
        entry = self._entries.get(key)
        if entry is not None and (entry[0] == version or now_ms - entry[1] < MIN_AGE_MS):
            self._entries.move_to_end(key)
            served = served_versions.get(None)
            if served is not None:
                served.append(entry[0])
            value: T = entry[2]
            return value
        value = await read()
        self._entries[key] = (version, now_ms, value)
        self._entries.move_to_end(key)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)
        return value
