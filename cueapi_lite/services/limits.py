"""Usage and plan limits: active cues, monthly executions (E19, E40, CONTRACT §2.4).

Limits are per user and come from the settings (0 = no limit, the self-hosted default).
The cue limit is checked by the cue store inside the insert's transaction; the monthly
execution limit refuses manual fires at once and lets scheduled fires run for 24 h of
grace (see `Firing`). With no limits set, nothing here runs on the fire path.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from ..clock import Clock
from ..config import Settings
from ..errors import Forbidden
from ..limits import UNLIMITED, Budget, month_bounds, shown_limit
from ..models import Cue, CueStatus, User
from ..store import Store

__all__ = ["LimitService", "Usage"]

DAY_MS = 86_400_000


@dataclasses.dataclass(frozen=True, slots=True)
class Usage:
    """One user's counts against the limits, in the current billing month (UTC)."""

    plan: str
    period_start_ms: int
    period_end_ms: int
    cues_active: int
    cues_counted: int  # active + paused: what the cue limit counts
    cue_limit: int  # as shown (UNLIMITED when there is none)
    executions_used: int
    execution_limit: int  # as shown

    def days_remaining(self, now_ms: int) -> int:
        return max(0, -(-(self.period_end_ms - now_ms) // DAY_MS))

    @property
    def percent_used(self) -> int:
        return min(100, self.executions_used * 100 // self.execution_limit)


def _month_name(start_ms: int) -> str:
    return datetime.fromtimestamp(start_ms / 1000, UTC).strftime("%Y-%m-%d")


class LimitService:
    def __init__(self, store: Store, clock: Clock, settings: Settings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings

    @property
    def cue_limit(self) -> int | None:
        """Most active + paused cues per user, or None for no limit."""
        return self.settings.cue_limit or None

    @property
    def execution_limit(self) -> int | None:
        """Most executions per user and month, or None for no limit."""
        return self.settings.monthly_execution_limit or None

    async def usage(self, user: User) -> Usage:
        now_ms = self.clock.now_ms()
        start_ms, end_ms = month_bounds(now_ms)
        cues = await self.store.usage.cues_by_status(user.id)
        executions = await self.store.usage.executions([user.id], start_ms, end_ms)
        active = cues.get(CueStatus.ACTIVE.value, 0)
        return Usage(
            plan=self.settings.plan,
            period_start_ms=start_ms,
            period_end_ms=end_ms,
            cues_active=active,
            cues_counted=active + cues.get(CueStatus.PAUSED.value, 0),
            cue_limit=shown_limit(self.settings.cue_limit),
            executions_used=executions.get(user.id, 0),
            execution_limit=shown_limit(self.settings.monthly_execution_limit),
        )

    # --- the cue limit --------------------------------------------------------------

    def cue_limit_error(self, counted: int) -> Forbidden:
        return Forbidden(
            f"Cue limit reached: this server allows {self.cue_limit:,} active or paused cues"
            f" per user and you have {counted:,}. Delete a cue, or ask the operator to raise"
            " CUEAPI_LITE_CUE_LIMIT.",
            "cue_limit_exceeded",
        )

    async def check_revival(self, user: User, cue: Cue, new_status: str | None) -> None:
        """A completed or failed cue set back to active or paused counts again (E4)."""
        limit = self.cue_limit
        counted_statuses = (CueStatus.ACTIVE, CueStatus.PAUSED)
        if limit is None or new_status not in counted_statuses or cue.status in counted_statuses:
            return
        cues = await self.store.usage.cues_by_status(user.id)
        counted = sum(cues.get(status.value, 0) for status in counted_statuses)
        if counted >= limit:
            raise self.cue_limit_error(counted)

    # --- the monthly execution limit ------------------------------------------------

    async def check_execution_limit(self, user: User) -> None:
        """Refuse a manual fire or replay (E6, E11) at the monthly limit: no grace."""
        limit = self.execution_limit
        if limit is None:
            return
        start_ms, end_ms = month_bounds(self.clock.now_ms())
        used = (await self.store.usage.executions([user.id], start_ms, end_ms)).get(user.id, 0)
        if used >= limit:
            raise Forbidden(
                f"Monthly execution limit reached: {used:,} of {limit:,} executions this"
                f" month; it resets on {_month_name(end_ms)} (UTC). Scheduled runs go on for"
                " 24 hours after the limit is reached.",
                "execution_limit_exceeded",
            )

    async def budgets(self, user_ids: list[str], now_ms: int) -> dict[str, Budget]:
        """Each user's budget for this month: one count for all of them, plus one lookup
        per user already at the limit (when did they reach it?)."""
        limit = self.execution_limit
        if limit is None:
            return {user_id: Budget(UNLIMITED, 0, None) for user_id in user_ids}
        start_ms, end_ms = month_bounds(now_ms)
        used = await self.store.usage.executions(user_ids, start_ms, end_ms)
        budgets = {}
        for user_id in user_ids:
            count = used.get(user_id, 0)
            reached = None
            if count >= limit:
                reached = await self.store.usage.nth_execution_ms(user_id, start_ms, end_ms, limit)
            budgets[user_id] = Budget(limit, count, reached)
        return budgets
