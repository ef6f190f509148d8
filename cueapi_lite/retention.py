"""History retention: what is old enough to prune, and when pruning runs.

Executions, alerts and expired login codes older than `history_retention_days` are
deleted in batches of `PRUNE_BATCH` rows, one short write each, a second apart, so a
large first prune never holds up fires; then the freed pages go back to the file system
(incremental vacuum). It runs from the scheduler's heap: once `FIRST_PASS_S` after
start, then hourly. `0` days keeps everything.
"""

from __future__ import annotations

from .clock import Clock
from .scheduler import Due, Kind, Scheduler
from .store import Store
from .telemetry import Telemetry

__all__ = ["Retention"]

DAY_MS = 86_400_000
PRUNE_BATCH = 500
FIRST_PASS_S = 600
EVERY_S = 3600
NEXT_BATCH_S = 1
KEY = "history"


class Retention:
    def __init__(
        self,
        store: Store,
        scheduler: Scheduler,
        clock: Clock,
        days: int,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.clock = clock
        self.keep_ms = days * DAY_MS
        self.telemetry = telemetry or Telemetry()
        self._freed = False  # rows were deleted since the last vacuum
        scheduler.on(Kind.RETENTION, self._due)

    def load(self) -> None:
        """At start: arm the first pass."""
        if self.keep_ms:
            self.scheduler.push(self.clock.now_ms() + FIRST_PASS_S * 1000, Kind.RETENTION, KEY)

    def cutoff_ms(self, now_ms: int) -> int:
        """History from before this instant is pruned."""
        return now_ms - self.keep_ms

    async def prune_once(self, now_ms: int) -> bool:
        """Prune one batch of each kind; True when a batch was full (more may be left)."""
        cutoff = self.cutoff_ms(now_ms)
        counts = await self.store.history.prune(cutoff, PRUNE_BATCH)
        self.telemetry.pruned_history(counts, cutoff)
        if any(counts.values()):
            self._freed = True
        return any(count >= PRUNE_BATCH for count in counts.values())

    async def _due(self, entries: list[Due], now_ms: int) -> None:
        if await self.prune_once(now_ms):
            self.scheduler.push(now_ms + NEXT_BATCH_S * 1000, Kind.RETENTION, KEY)
            return
        if self._freed:
            self._freed = False
            await self.store.history.vacuum()
        self.scheduler.push(now_ms + EVERY_S * 1000, Kind.RETENTION, KEY)
