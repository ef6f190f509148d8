"""Worker-transport reads: claimable work, lease checks, and what to re-arm at start.

The claim transitions themselves are `Tx` operations (see `store.contract.Tx`).
"""

from __future__ import annotations

import json
from typing import Any

from ..records import Claimable, LeaseCheck
from .db import Database
from .rows import UNFINISHED, execution_from_row

__all__ = ["ClaimStore"]

# Claimable work is returned oldest first and never cut short at a small number: the
# worker daemon polls without a filter and skips tasks it has no handler for (H17).
MAX_CLAIMABLE = 1000
_CLAIMABLE = (
    "SELECT e.id, e.cue_id, c.name, e.scheduled_for_ms, e.payload, e.attempts"
    " FROM executions e JOIN cues c ON c.id = e.cue_id"
    " WHERE e.user_id = ? AND e.status = 'pending' AND e.transport = 'worker'"
    " AND e.scheduled_for_ms <= ?"
)


def _filters(task: str | None, agent: str | None) -> tuple[str, list[Any]]:
    clause, params = "", []
    if task is not None:
        clause += " AND json_extract(e.payload, '$.task') = ?"
        params.append(task)
    if agent is not None:
        clause += " AND json_extract(e.payload, '$.agent') = ?"
        params.append(agent)
    return clause, params


class ClaimStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claimable(
        self, user_id: str, now_ms: int, task: str | None, agent: str | None
    ) -> list[Claimable]:
        """The user's pending worker executions that are due, oldest first."""
        clause, params = _filters(task, agent)
        rows = self.db.fetchall(
            _CLAIMABLE + clause + " ORDER BY e.scheduled_for_ms, e.created_at_ms LIMIT ?",
            [user_id, now_ms, *params, MAX_CLAIMABLE],
        )
        return [
            Claimable(id_, cue_id, name, scheduled_ms, json.loads(payload), attempts)
            for id_, cue_id, name, scheduled_ms, payload, attempts in rows
        ]

    async def lease_check(self, execution_id: str) -> LeaseCheck | None:
        row = self.db.fetchone(
            "SELECT e.*, CAST(json_extract(c.retry, '$.max_attempts') AS INTEGER) AS max_attempts,"
            " w.last_heartbeat_ms AS worker_seen_ms"
            " FROM executions e JOIN cues c ON c.id = e.cue_id"
            " LEFT JOIN workers w ON w.user_id = e.user_id AND w.worker_id = e.claimed_by_worker"
            " WHERE e.id = ? AND e.status = 'delivering' AND e.transport = 'worker'",
            (execution_id,),
        )
        if row is None:
            return None
        return LeaseCheck(execution_from_row(row), row["max_attempts"], row["worker_seen_ms"])

    async def unclaimed(self) -> list[tuple[str, int]]:
        """(execution id, pending since) of every unclaimed worker execution (at start)."""
        rows = self.db.fetchall(
            "SELECT id, updated_at_ms FROM executions"
            " WHERE status = 'pending' AND transport = 'worker'"
        )
        return [(row[0], row[1]) for row in rows]

    async def claimed(self) -> list[tuple[str, int]]:
        """(execution id, lease expiry) of every claimed worker execution (at start)."""
        rows = self.db.fetchall(
            "SELECT id, lease_expires_at_ms FROM executions"  # noqa: S608
            f" WHERE {UNFINISHED} AND status = 'delivering' AND transport = 'worker'"
            " AND lease_expires_at_ms IS NOT NULL"
        )
        return [(row[0], row[1]) for row in rows]
