"""Read-only counts behind usage, plan limits and list totals (E19, E40, CONTRACT §2.4).

The counts are kept by the database itself (migration 0005's triggers) as cues and
executions are written, so each read is a primary-key lookup however much data there is.
An execution counts towards the month of its `scheduled_for` when it was not `missed` (a
missed occurrence never ran); deleting a cue does not give its runs back.
"""

from __future__ import annotations

from .db import Database

__all__ = ["UsageStore"]


class UsageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def cues_by_status(self, user_id: str) -> dict[str, int]:
        rows = self.db.fetchall(
            "SELECT status, cues FROM cue_counts WHERE user_id = ? AND cues > 0", (user_id,)
        )
        return {str(row[0]): int(row[1]) for row in rows}

    async def executions(self, user_ids: list[str], start_ms: int, end_ms: int) -> dict[str, int]:
        """Counted executions per user in the months starting in `start_ms <= m < end_ms`
        (`start_ms` is a month's start; users with none are left out)."""
        found: dict[str, int] = {}
        for first in range(0, len(user_ids), 500):
            chunk = user_ids[first : first + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.fetchall(
                "SELECT user_id, SUM(counted) FROM execution_counts"  # noqa: S608
                f" WHERE user_id IN ({marks}) AND month_ms >= ? AND month_ms < ?"
                " GROUP BY user_id",
                [*chunk, start_ms, end_ms],
            )
            found.update({str(row[0]): int(row[1]) for row in rows if row[1]})
        return found

    async def nth_execution_ms(
        self, user_id: str, start_ms: int, end_ms: int, n: int
    ) -> int | None:
        """`scheduled_for` of the user's n-th counted execution (1-based) in the range:
        when a limit of n was reached. None when there are fewer than n stored."""
        row = self.db.fetchone(
            "SELECT scheduled_for_ms FROM executions WHERE user_id = ?"
            " AND scheduled_for_ms >= ? AND scheduled_for_ms < ? AND status != 'missed'"
            " ORDER BY scheduled_for_ms LIMIT 1 OFFSET ?",
            (user_id, start_ms, end_ms, n - 1),
        )
        return None if row is None else int(row[0])
