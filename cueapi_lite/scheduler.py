"""One heap of deadlines and one wake-up for everything that must happen at a time.

Entries are `(due_ms, seq, kind, key)`: a cue's next fire, an execution's next retry, an
outcome deadline, a lease expiry. Whoever changes a deadline pushes an entry; the loop
sleeps until the earliest one, pops everything due and hands each kind's batch to its
handler. Stale entries are not removed: handlers check the row's current deadline and
skip entries that no longer match. No polling, no timer per cue, no SQL in here.

A kind can be held to a horizon (`hold`): its entries due at or after it are not kept,
and the kind's owner reads them from the database when the heap gets there, so a
million cues cost the heap only the deadlines that are near.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum

from .clock import Clock

__all__ = ["OUTBOX", "Due", "Kind", "Scheduler"]

log = logging.getLogger(__name__)

Due = tuple[int, str]  # (due_ms, key)
Handler = Callable[[list[Due], int], Awaitable[None]]
ClockChangeHandler = Callable[[str, int, int], Awaitable[None]]

# A handler that raised gets its entries back this much later, so a passing fault (disk
# full, a locked file) delays work instead of dropping it.
RETRY_HANDLER_AFTER_MS = 1000
# Wall time running this much ahead of (or behind) monotonic time between two wake-ups
# means the host slept or the clock was set.
CLOCK_CHANGE_THRESHOLD_MS = 5000


# The one key of Kind.NOTIFY entries: "send what the alert outbox holds".
OUTBOX = "outbox"


class Kind(StrEnum):
    FIRE = "fire"
    FIRE_HORIZON = "fire_horizon"
    RETRY = "retry"
    OUTCOME_DEADLINE = "outcome_deadline"
    LEASE = "lease"
    UNCLAIMED = "unclaimed"
    MISSED_WINDOW = "missed_window"
    WINDOW_HORIZON = "window_horizon"
    NOTIFY = "notify"
    RETENTION = "retention"


class Scheduler:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._heap: list[tuple[int, int, str, str]] = []
        self._seq = itertools.count()
        self._handlers: dict[str, Handler] = {}
        # Kinds held to a horizon: entries due at or after it are left to the database.
        self._horizons: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._sleeping_until: float = float("inf")
        self._lock = asyncio.Lock()
        self._on_clock_change: ClockChangeHandler | None = None
        self._last_wall_ms = clock.now_ms()
        self._last_mono_ms = clock.monotonic_ms()
        self._last_boot_ms = clock.boottime_ms()
        self.running = False

    def on(self, kind: Kind, handler: Handler) -> None:
        self._handlers[kind] = handler

    def on_clock_change(self, handler: ClockChangeHandler) -> None:
        """`handler(reason, wall_gap_ms, now_ms)` runs when a sleep or a jump is seen."""
        self._on_clock_change = handler

    def push(self, due_ms: int, kind: Kind, key: str) -> None:
        name = kind.value
        if self._horizons and due_ms >= self._horizons.get(name, due_ms + 1):
            return  # beyond the kind's horizon: its owner reads it when the heap gets there
        heapq.heappush(self._heap, (due_ms, next(self._seq), name, key))
        if due_ms < self._sleeping_until:
            self._wake.set()

    def hold(self, kind: Kind, horizon_ms: int | None) -> None:
        """From now on keep only entries of `kind` due before `horizon_ms` (None: all).
        The kind's owner promises to read the later ones itself before the heap reaches
        the horizon; a horizon is set before the entries below it are pushed."""
        if horizon_ms is None:
            self._horizons.pop(kind.value, None)
        else:
            self._horizons[kind.value] = horizon_ms

    def horizon(self, kind: Kind) -> int | None:
        return self._horizons.get(kind.value)

    def clear(self) -> None:
        """Forget every entry and horizon (before re-planning all deadlines from the
        database)."""
        self._heap.clear()
        self._horizons.clear()

    def __len__(self) -> int:
        return len(self._heap)

    def next_due_ms(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def has_due(self, now_ms: int) -> bool:
        return bool(self._heap) and self._heap[0][0] <= now_ms

    async def tick(self, now_ms: int) -> int:
        """Run every entry due at `now_ms`, batched per kind; returns how many ran."""
        async with self._lock:
            batches: dict[str, list[Due]] = {}
            while self._heap and self._heap[0][0] <= now_ms:
                due_ms, _, kind, key = heapq.heappop(self._heap)
                batches.setdefault(kind, []).append((due_ms, key))
            for kind, entries in batches.items():
                handler = self._handlers.get(kind)
                if handler is None:
                    continue
                try:
                    await handler(entries, now_ms)
                except Exception:
                    log.exception("scheduler handler %s failed; retrying its entries", kind)
                    self.retry_later(Kind(kind), entries, now_ms)
            return sum(len(entries) for entries in batches.values())

    def retry_later(self, kind: Kind, entries: list[Due], now_ms: int) -> None:
        """Entries whose handling failed at `now_ms`: due again a moment later."""
        for due_ms, key in entries:
            self.push(max(due_ms, now_ms + RETRY_HANDLER_AFTER_MS), kind, key)

    async def check_clock(self) -> None:
        """Compare wall and monotonic progress since the last look; report a change.

        Under the loop's lock: a second caller (`settle()` beside the running loop) waits
        until a change the first one saw has been handled, instead of seeing no gap and
        going on as if the deadlines had already been moved."""
        async with self._lock:
            wall, mono, boot = (
                self.clock.now_ms(), self.clock.monotonic_ms(), self.clock.boottime_ms()
            )  # fmt: skip
            wall_gap = (wall - self._last_wall_ms) - (mono - self._last_mono_ms)
            boot_gap = (boot - self._last_boot_ms) - (mono - self._last_mono_ms)
            self._last_wall_ms, self._last_mono_ms, self._last_boot_ms = wall, mono, boot
            if abs(wall_gap) < CLOCK_CHANGE_THRESHOLD_MS or self._on_clock_change is None:
                return
            # Suspended: boot time ran on while the monotonic clock stood still. Otherwise
            # the wall clock alone moved.
            asleep = wall_gap > 0 and abs(boot_gap - wall_gap) < CLOCK_CHANGE_THRESHOLD_MS
            reason = "host_asleep" if asleep else "clock_jump"
            await self._on_clock_change(reason, wall_gap, wall)

    async def run(self) -> None:
        """The loop: check the clock, run what is due, sleep until the next deadline."""
        self.running = True
        try:
            while True:
                self._sleeping_until = float("-inf")
                try:
                    await self.check_clock()
                except Exception:
                    log.exception("clock change handling failed")
                await self.tick(self.clock.now_ms())
                next_due = self.next_due_ms()
                self._sleeping_until = float("inf") if next_due is None else next_due
                await self.clock.sleep_until(next_due, self._wake)
                self._wake.clear()
        finally:
            self.running = False
