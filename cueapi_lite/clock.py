"""The only place that reads wall time or waits for it.

`SystemClock` is the real thing; `ManualClock` lets tests (and embedders) move time by
hand. Everything else takes a `Clock` and calls `now_ms()`; background loops wait with
`sleep_until(deadline_ms, wake)` so a test can advance the clock and wake them at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]

# A long sleep is cut into pieces of at most this much so that a host that slept (the
# monotonic clock stops while suspended) or a wall clock that jumped is noticed soon.
MAX_SLEEP_S = 30.0


class Clock(Protocol):
    """Wall time in epoch milliseconds, plus the two clocks that expose sleep and jumps."""

    def now_ms(self) -> int:
        """Wall-clock time, UTC epoch milliseconds."""
        ...

    def monotonic_ms(self) -> int:
        """A clock that never jumps and stops while the host is suspended."""
        ...

    def boottime_ms(self) -> int:
        """A clock that never jumps and keeps counting while the host is suspended."""
        ...

    async def sleep_until(self, deadline_ms: int | None, wake: asyncio.Event) -> None:
        """Return at `deadline_ms` (wall time), when `wake` is set, or after MAX_SLEEP_S.

        `None` waits for `wake` alone (bounded by MAX_SLEEP_S). The caller clears `wake`.
        """
        ...


def _boottime_ms() -> int:
    clock_id = getattr(time, "CLOCK_BOOTTIME", None)
    if clock_id is None:  # not Linux: the best available is the monotonic clock
        return time.monotonic_ns() // 1_000_000
    return time.clock_gettime_ns(clock_id) // 1_000_000


class SystemClock:
    """The host's clocks."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000

    def boottime_ms(self) -> int:
        return _boottime_ms()

    async def sleep_until(self, deadline_ms: int | None, wake: asyncio.Event) -> None:
        if wake.is_set():
            return
        delay_s = MAX_SLEEP_S
        if deadline_ms is not None:
            delay_s = min(delay_s, (deadline_ms - time.time_ns() / 1_000_000) / 1000.0)
        if delay_s <= 0:
            return
        # One timer handle instead of asyncio.wait_for: no task per sleep on the hot path.
        handle = asyncio.get_running_loop().call_later(delay_s, wake.set)
        try:
            await wake.wait()
        finally:
            handle.cancel()


class ManualClock:
    """A clock that moves only when told to; waiters wake when it moves.

    `advance` moves all three clocks (time passing while awake), `sleep_host` moves wall
    and boot time but not the monotonic clock (a suspended laptop), and `jump` moves the
    wall clock alone (someone set the clock).
    """

    def __init__(self, start_ms: int | None = None) -> None:
        self._wall_ms = time.time_ns() // 1_000_000 if start_ms is None else int(start_ms)
        self._mono_ms = 1_000_000
        self._boot_ms = 1_000_000
        self._waiters: set[asyncio.Event] = set()

    def now_ms(self) -> int:
        return self._wall_ms

    def monotonic_ms(self) -> int:
        return self._mono_ms

    def boottime_ms(self) -> int:
        return self._boot_ms

    def advance(self, seconds: float) -> None:
        step = round(seconds * 1000)
        self._wall_ms += step
        self._mono_ms += step
        self._boot_ms += step
        self._wake_all()

    def sleep_host(self, seconds: float) -> None:
        step = round(seconds * 1000)
        self._wall_ms += step
        self._boot_ms += step
        self._wake_all()

    def jump(self, seconds: float) -> None:
        self._wall_ms += round(seconds * 1000)
        self._wake_all()

    def _wake_all(self) -> None:
        for event in self._waiters:
            event.set()

    async def sleep_until(self, deadline_ms: int | None, wake: asyncio.Event) -> None:
        if wake.is_set() or (deadline_ms is not None and deadline_ms <= self._wall_ms):
            return
        self._waiters.add(wake)
        try:
            await wake.wait()
        finally:
            self._waiters.discard(wake)
