"""Reads the dashboard needs that the API has no call for, each one query.

Rows only: what a state means (healthy, failing, which colour) is decided in
`cueapi_lite/web/health.py`. Nothing here writes.
"""

from __future__ import annotations

from typing import Any

from ...models import Cue
from ..records import CueHealthRow, OutcomeCount, RecentExecution
from .db import Database
from .rows import CUE_COLUMNS as _CUE_COLUMNS
from .rows import cue_from_row

__all__ = ["DashboardStore"]

_RECENT_COLUMNS = (
    "e.id, e.cue_id, e.status, e.outcome_state, e.missed_reason, e.scheduled_for_ms,"
    " e.started_at_ms, e.delivered_at_ms, e.attempts, e.http_status, e.triggered_by"
)
# A finished execution: delivery over, or an outcome recorded (a webhook execution's
# status keeps describing delivery, so an outcome can arrive after `success`).
_FINISHED = "(e.status IN ('success', 'failed', 'missed') OR e.outcome_state IS NOT NULL)"
_PROBLEM = (
    "(e.status IN ('failed', 'missed')"
    " OR e.outcome_state IN ('reported_failure', 'verification_failed', 'unknown'))"
)
# SQLite's default limit on the terms of one compound SELECT is 500.
MAX_CUES_PER_STRIP_QUERY = 400


class DashboardStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def data_version(self) -> int:
        """A number that changes whenever any connection commits to the file (SQLite's
        `PRAGMA data_version`): the dashboard's cheap "has anything changed?" check."""
        row = self.db.fetchone("PRAGMA data_version")
        return int(row[0]) if row else 0

    async def cue_health(
        self, user_id: str, transport: str | None = None, name_contains: str | None = None
    ) -> list[CueHealthRow]:
        where, params = ["c.user_id = ?"], [user_id]
        if transport is not None:
            where.append("c.transport = ?")
            params.append(transport)
        if name_contains:
            where.append("instr(lower(c.name), lower(?)) > 0")
            params.append(name_contains)
        rows = self.db.fetchall(
            "SELECT c.id, c.status, (SELECT e.status || '|' || COALESCE(e.outcome_state, '')"  # noqa: S608
            f" FROM executions e WHERE e.cue_id = c.id AND {_FINISHED}"
            " ORDER BY e.scheduled_for_ms DESC LIMIT 1)"
            f" FROM cues c WHERE {' AND '.join(where)}"
            " ORDER BY c.created_at_ms DESC, c.rowid DESC",
            params,
        )  # fmt: skip
        found = []
        for cue_id, status, last in rows:
            last_status, last_state = last.split("|") if last else (None, None)
            found.append(CueHealthRow(cue_id, status, last_status, last_state or None))
        return found

    async def cues(self, user_id: str, cue_ids: list[str]) -> list[Cue]:
        """The user's cues with these ids, in the order given (unknown ids left out)."""
        if not cue_ids:
            return []
        marks = ",".join("?" * len(cue_ids))
        rows = self.db.fetchall(
            f"SELECT {_CUE_COLUMNS} FROM cues WHERE user_id = ? AND id IN ({marks})",  # noqa: S608
            [user_id, *cue_ids],
        )
        by_id = {cue.id: cue for cue in map(cue_from_row, rows)}
        return [by_id[cue_id] for cue_id in cue_ids if cue_id in by_id]

    async def recent_executions(
        self, cue_ids: list[str], per_cue: int
    ) -> dict[str, list[RecentExecution]]:
        """The newest `per_cue` executions of each cue, newest first, in one statement:
        one bounded index range per cue (a window function would read every row)."""
        found: dict[str, list[RecentExecution]] = {cue_id: [] for cue_id in cue_ids}
        for start in range(0, len(cue_ids), MAX_CUES_PER_STRIP_QUERY):
            chunk = cue_ids[start : start + MAX_CUES_PER_STRIP_QUERY]
            one = (
                f"SELECT * FROM (SELECT {_RECENT_COLUMNS} FROM executions e"  # noqa: S608
                " WHERE e.cue_id = ? ORDER BY e.scheduled_for_ms DESC LIMIT ?) AS recent"
            )
            params: list[Any] = []
            for cue_id in chunk:
                params += [cue_id, per_cue]
            for row in self.db.fetchall(" UNION ALL ".join([one] * len(chunk)), params):
                found[row[1]].append(RecentExecution(*row))
        return found

    async def outcome_counts(
        self, user_id: str, start_ms: int, end_ms: int, bucket_ms: int
    ) -> list[OutcomeCount]:
        rows = self.db.fetchall(
            "SELECT (scheduled_for_ms - ?) / ?, status, outcome_state, COUNT(*)"
            " FROM executions WHERE user_id = ? AND scheduled_for_ms >= ?"
            " AND scheduled_for_ms < ? GROUP BY 1, 2, 3",
            (start_ms, bucket_ms, user_id, start_ms, end_ms),
        )
        return [OutcomeCount(*row) for row in rows]

    async def recent_problems(
        self, user_id: str, since_ms: int, limit: int, scan: int
    ) -> list[RecentExecution]:
        """The user's newest failed, missed, unknown or unverified executions scheduled
        since `since_ms`, looked for among the user's newest `scan` executions (a bound
        on the work when problems are rare)."""
        rows = self.db.fetchall(
            f"SELECT * FROM (SELECT {_RECENT_COLUMNS} FROM executions e"  # noqa: S608
            " WHERE e.user_id = ? AND e.scheduled_for_ms >= ?"
            " ORDER BY e.scheduled_for_ms DESC LIMIT ?) AS e"
            f" WHERE {_PROBLEM} LIMIT ?",
            (user_id, since_ms, scan, limit),
        )
        return [RecentExecution(*row) for row in rows]
