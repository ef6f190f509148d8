"""Worker-transport executions: claimable work, claims, leases and their expiry.

Every transition is a compare-and-set on the execution row; of many concurrent claims
of one execution exactly one changes the row, the others find it already claimed.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from typing import Any

from ...models import Execution
from .alerts import check_consecutive_failures
from .db import Database
from .executions import execution_from_row, finish_cue_run

__all__ = ["ClaimStore", "Claimable", "LeaseCheck"]

# Claimable work is returned oldest first and never cut short at a small number: the
# worker daemon polls without a filter and skips tasks it has no handler for (H17).
MAX_CLAIMABLE = 1000
_CLAIMABLE = (
    "SELECT e.id, e.cue_id, c.name, e.scheduled_for_ms, e.payload, e.attempts"
    " FROM executions e JOIN cues c ON c.id = e.cue_id"
    " WHERE e.user_id = ? AND e.status = 'pending' AND e.transport = 'worker'"
    " AND e.scheduled_for_ms <= ?"
)


@dataclasses.dataclass(slots=True)
class Claimable:
    """One item of claimable work: only what a worker needs (a poll lists hundreds)."""

    execution_id: str
    cue_id: str
    cue_name: str
    scheduled_for_ms: int
    payload: dict[str, Any]
    attempts: int


@dataclasses.dataclass(slots=True)
class LeaseCheck:
    """What the lease-expiry check needs to know about one claimed execution."""

    execution: Execution
    max_attempts: int
    worker_last_heartbeat_ms: int | None


def _filters(task: str | None, agent: str | None) -> tuple[str, list[Any]]:
    clause, params = "", []
    if task is not None:
        clause += " AND json_extract(e.payload, '$.task') = ?"
        params.append(task)
    if agent is not None:
        clause += " AND json_extract(e.payload, '$.agent') = ?"
        params.append(agent)
    return clause, params


def _claim(
    conn: sqlite3.Connection, execution_id: str, user_id: str, worker_id: str, now_ms: int,
    lease_ms: int,
) -> Execution | None:  # fmt: skip
    row = conn.execute(
        "UPDATE executions SET status = 'delivering', claimed_by_worker = ?, claimed_at_ms = ?,"
        " last_attempt_at_ms = ?, started_at_ms = COALESCE(started_at_ms, ?),"
        " last_heartbeat_at_ms = NULL, lease_expires_at_ms = ?, attempts = attempts + 1,"
        " error_message = NULL, updated_at_ms = ?,"
        # The outcome deadline of a worker execution runs from its claim (CONTRACT §7.5).
        " outcome_deadline_ms = CASE WHEN outcome IS NULL AND outcome_state IS NULL"
        "   THEN ? + 1000 * (SELECT json_extract(delivery, '$.outcome_deadline_seconds')"
        "     FROM cues WHERE cues.id = executions.cue_id)"
        "   ELSE outcome_deadline_ms END"
        " WHERE id = ? AND user_id = ? AND status = 'pending' AND transport = 'worker'"
        " RETURNING *",
        (
            worker_id,
            now_ms,
            now_ms,
            now_ms,
            now_ms + lease_ms,
            now_ms,
            now_ms,
            execution_id,
            user_id,
        ),
    ).fetchone()
    return execution_from_row(row) if row else None


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

    async def claim(
        self, user_id: str, execution_id: str, worker_id: str, now_ms: int, lease_ms: int
    ) -> Execution | None:
        """pending (worker transport) -> delivering, claimed by `worker_id`, attempts + 1,
        lease until now + lease. None when the execution is not claimable (claimed
        already, finished, a webhook execution, another user's, or unknown)."""

        def op(conn: sqlite3.Connection) -> Execution | None:
            return _claim(conn, execution_id, user_id, worker_id, now_ms, lease_ms)

        return await self.db.write(op, savepoint=False)

    async def claim_next(
        self, user_id: str, worker_id: str, now_ms: int, lease_ms: int,
        task: str | None = None, agent: str | None = None,
    ) -> Execution | None:  # fmt: skip
        """Claim the oldest claimable execution (filtered by task/agent); None if none.
        The choice and the claim happen in one transaction, so nobody else gets it."""
        clause, params = _filters(task, agent)

        def op(conn: sqlite3.Connection) -> Execution | None:
            row = conn.execute(
                _CLAIMABLE + clause + " ORDER BY e.scheduled_for_ms, e.created_at_ms LIMIT 1",
                [user_id, now_ms, *params],
            ).fetchone()
            if row is None:
                return None
            return _claim(conn, row[0], user_id, worker_id, now_ms, lease_ms)

        return await self.db.write(op, savepoint=False)

    async def extend_lease(
        self, user_id: str, execution_id: str, worker_id: str | None, now_ms: int, lease_ms: int
    ) -> tuple[str, Execution | None]:
        """A per-execution heartbeat (E12). Returns (`extended` | `missing` |
        `not_claiming` | `not_owner`, the execution after the change).

        Checked in that order: unknown; not under a worker claim; `worker_id` given and
        not the claimer. Extending sets `last_heartbeat_at` and the lease to now + lease.
        """

        def op(conn: sqlite3.Connection) -> tuple[str, Execution | None]:
            row = conn.execute(
                "SELECT * FROM executions WHERE id = ? AND user_id = ?", (execution_id, user_id)
            ).fetchone()
            if row is None:
                return "missing", None
            if row["status"] != "delivering" or row["claimed_by_worker"] is None:
                return "not_claiming", None
            if worker_id is not None and worker_id != row["claimed_by_worker"]:
                return "not_owner", None
            updated = conn.execute(
                "UPDATE executions SET last_heartbeat_at_ms = ?, lease_expires_at_ms = ?,"
                " updated_at_ms = ? WHERE id = ? AND status = 'delivering' RETURNING *",
                (now_ms, now_ms + lease_ms, now_ms, execution_id),
            ).fetchone()
            return "extended", execution_from_row(updated)

        return await self.db.write(op)

    async def lease_check(self, execution_id: str) -> LeaseCheck | None:
        """The claimed execution, its cue's attempt limit and when its worker last sent
        a worker heartbeat (E34); None unless it is a claimed worker execution."""
        row = self.db.fetchone(
            "SELECT e.*, json_extract(c.retry, '$.max_attempts') AS max_attempts,"
            " w.last_heartbeat_ms AS worker_seen_ms"
            " FROM executions e JOIN cues c ON c.id = e.cue_id"
            " LEFT JOIN workers w ON w.user_id = e.user_id AND w.worker_id = e.claimed_by_worker"
            " WHERE e.id = ? AND e.status = 'delivering' AND e.transport = 'worker'",
            (execution_id,),
        )
        if row is None:
            return None
        return LeaseCheck(execution_from_row(row), row["max_attempts"], row["worker_seen_ms"])

    async def expire_lease(
        self, check: LeaseCheck, now_ms: int, worker_dead_before_ms: int
    ) -> tuple[str, bool] | None:
        """delivering (this claim, lease passed, worker silent) -> pending, or -> failed
        when the attempts are used up (counted on the cue like any finished run).

        The worker's silence is checked again inside the transaction, so a heartbeat
        that lands meanwhile keeps the claim. Returns the new status and whether an
        alert was raised, or None when the row moved on (an outcome arrived, the lease
        was extended, the worker spoke).
        """
        execution = check.execution

        def op(conn: sqlite3.Connection) -> tuple[str, bool] | None:
            status = "failed" if execution.attempts >= check.max_attempts else "pending"
            cursor = conn.execute(
                "UPDATE executions SET status = ?, claimed_by_worker = NULL,"
                " claimed_at_ms = NULL, lease_expires_at_ms = NULL, last_heartbeat_at_ms = NULL,"
                " error_message = 'lease expired', updated_at_ms = ?"
                " WHERE id = ? AND status = 'delivering' AND claimed_by_worker = ?"
                " AND lease_expires_at_ms = ? AND lease_expires_at_ms <= ?"
                " AND NOT EXISTS (SELECT 1 FROM workers WHERE user_id = executions.user_id"
                "   AND worker_id = executions.claimed_by_worker AND last_heartbeat_ms > ?)",
                (
                    status, now_ms, execution.id, execution.claimed_by_worker,
                    execution.lease_expires_at_ms, now_ms, worker_dead_before_ms,
                ),
            )  # fmt: skip
            if cursor.rowcount != 1:
                return None
            if status != "failed":
                return status, False
            finish_cue_run(
                conn, execution.cue_id, execution.triggered_by, False,
                execution.scheduled_for_ms, now_ms,
            )  # fmt: skip
            alert = check_consecutive_failures(conn, execution.cue_id, execution.id, now_ms)
            return status, alert is not None

        return await self.db.write(op)

    async def expire_unclaimed(self, execution_id: str, now_ms: int, waiting_since_ms: int) -> bool:
        """pending since before `waiting_since_ms` (no worker claimed it) -> missed with
        reason `unclaimed`; a `once` cue whose scheduled run this was becomes `failed`.
        False when the row was claimed, finished or made pending again meanwhile."""

        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "UPDATE executions SET status = 'missed', missed_reason = 'unclaimed',"
                " error_message = 'Not claimed by any worker in time', updated_at_ms = ?"
                " WHERE id = ? AND status = 'pending' AND transport = 'worker'"
                " AND updated_at_ms <= ? RETURNING cue_id, triggered_by",
                (now_ms, execution_id, waiting_since_ms),
            ).fetchone()
            if row is None:
                return False
            if row["triggered_by"] in ("schedule", "catch_up"):
                conn.execute(
                    "UPDATE cues SET status = 'failed', updated_at_ms = ?, version = version + 1"
                    " WHERE id = ? AND status = 'active' AND schedule_type = 'once'",
                    (now_ms, row["cue_id"]),
                )
            return True

        return await self.db.write(op)

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
            "SELECT id, lease_expires_at_ms FROM executions"
            " WHERE status = 'delivering' AND transport = 'worker'"
            " AND lease_expires_at_ms IS NOT NULL"
        )
        return [(row[0], row[1]) for row in rows]
