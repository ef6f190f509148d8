"""Plan-limit arithmetic with no I/O: the billing month, "unlimited", execution budgets.

Limits are settings where 0 means "no limit"; the API never shows null or 0 for that and
shows `UNLIMITED` instead, because the CLI does arithmetic on limits (CONTRACT §2.4, H12).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from .models import epoch_ms

__all__ = ["GRACE_MS", "UNLIMITED", "Budget", "month_bounds", "shown_limit"]

UNLIMITED = 1_000_000_000
# Scheduled fires go on this long after the monthly execution limit is reached
# (the API document's "24h grace"), then are recorded as missed.
GRACE_MS = 24 * 3600 * 1000


def shown_limit(setting: int) -> int:
    """A limit as the API shows it: the setting, or UNLIMITED for 0 (no limit)."""
    return setting if setting > 0 else UNLIMITED


def month_bounds(now_ms: int) -> tuple[int, int]:
    """Start (inclusive) and end (exclusive) of the UTC calendar month holding `now_ms`."""
    moment = datetime.fromtimestamp(now_ms / 1000, UTC)
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else (start.replace(month=start.month + 1))
    )
    return epoch_ms(start), epoch_ms(end)


@dataclasses.dataclass(slots=True)  # mutable: admitting runs spends it
class Budget:
    """One user's monthly executions while a fire is being planned."""

    limit: int
    used: int
    reached_at_ms: int | None  # when `used` reached `limit` this month, if it has

    def admit(self, count: int, now_ms: int) -> bool:
        """Whether `count` new runs may go ahead now; spends them if so. Past the limit,
        runs go ahead for GRACE_MS after the moment the limit was reached."""
        if self.used >= self.limit:
            if self.reached_at_ms is None:
                self.reached_at_ms = now_ms
            if now_ms - self.reached_at_ms >= GRACE_MS:
                return False
        self.used += count
        if self.used >= self.limit and self.reached_at_ms is None:
            self.reached_at_ms = now_ms
        return True
