"""Read-only counts behind usage and plan limits (E19, E40, CONTRACT §2.4).

An execution counts towards a month when its `scheduled_for` falls in that month and it
was not `missed` (a missed occurrence never ran). The counts use the existing
`executions_user (user_id, scheduled_for_ms)` index, so the hot write path carries no
extra index or counter.
"""

from __future__ import annotations

from .db import Database

__all__ = ["UsageStore"]

_COUNTED = "status != 'missed'"


class UsageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def cues_by_status(self, user_id: str) -> dict[str, int]:
        rows = self.db.fetchall(
            "SELECT status, COUNT(*) FROM cues WHERE user_id = ? GROUP BY status", (user_id,)
        )
        return {str(row[0]): int(row[1]) for row in rows}

    async def executions(self, user_ids: list[str], start_ms: int, end_ms: int) -> dict[str, int]:
        """Counted executions per user with `start_ms <= scheduled_for < end_ms` (users
        with none are left out)."""
        found: dict[str, int] = {}
        for first in range(0, len(user_ids), 500):
            chunk = user_ids[first : first + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.fetchall(
                f"SELECT user_id, COUNT(*) FROM executions WHERE user_id IN ({marks})"  # noqa: S608
                f" AND scheduled_for_ms >= ? AND scheduled_for_ms < ? AND {_COUNTED}"
                " GROUP BY user_id",
                [*chunk, start_ms, end_ms],
            )
            found.update({str(row[0]): int(row[1]) for row in rows})
        return found

    async def nth_execution_ms(
        self, user_id: str, start_ms: int, end_ms: int, n: int
    ) -> int | None:
        """`scheduled_for` of the user's n-th counted execution (1-based) in the range:
        when a limit of n was reached. None when there are fewer than n."""
        row = self.db.fetchone(
            "SELECT scheduled_for_ms FROM executions WHERE user_id = ?"  # noqa: S608
            f" AND scheduled_for_ms >= ? AND scheduled_for_ms < ? AND {_COUNTED}"
            " ORDER BY scheduled_for_ms LIMIT 1 OFFSET ?",
            (user_id, start_ms, end_ms, n - 1),
        )
        return None if row is None else int(row[0])
