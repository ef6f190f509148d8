"""Executions: history reads, and the attempt transitions of the delivery hot path.

A transition is an `UPDATE ... WHERE id = ? AND <expected state>`; a rowcount of 0 means
the caller lost a race (the row moved on, or its cue was deleted) and must do nothing.
"""

from __future__ import annotations

import sqlite3

from ...models import Execution
from ..records import ExecutionFilters
from .db import Database
from .rows import execution_from_row

__all__ = ["ExecutionStore"]


class ExecutionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- reads ----------------------------------------------------------------------

    async def get(self, user_id: str, execution_id: str) -> Execution | None:
        row = self.db.fetchone(
            "SELECT * FROM executions WHERE id = ? AND user_id = ?", (execution_id, user_id)
        )
        return execution_from_row(row) if row else None

    async def get_any(self, execution_id: str) -> Execution | None:
        row = self.db.fetchone("SELECT * FROM executions WHERE id = ?", (execution_id,))
        return execution_from_row(row) if row else None

    async def page(
        self, user_id: str, filters: ExecutionFilters, limit: int, offset: int
    ) -> tuple[list[Execution], int]:
        """A page of the user's executions, newest occurrence first, and the total."""
        where, params = ["user_id = ?"], [user_id]
        for column in ("cue_id", "status", "outcome_state", "triggered_by"):
            value = getattr(filters, column)
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        clause = " AND ".join(where)
        total = self.db.fetchone(f"SELECT COUNT(*) FROM executions WHERE {clause}", params)  # noqa: S608
        rows = self.db.fetchall(
            f"SELECT * FROM executions WHERE {clause}"  # noqa: S608
            " ORDER BY scheduled_for_ms DESC, created_at_ms DESC, rowid DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [execution_from_row(row) for row in rows], int(total[0]) if total else 0

    async def open_webhook_executions(self) -> list[Execution]:
        """Webhook executions that still have delivery work (startup resume)."""
        rows = self.db.fetchall(
            "SELECT * FROM executions WHERE status IN ('pending', 'delivering', 'retrying')"
            " AND transport = 'webhook' ORDER BY scheduled_for_ms"
        )
        return [execution_from_row(row) for row in rows]

    # --- writes ---------------------------------------------------------------------

    async def begin_attempt(self, execution_id: str, now_ms: int) -> int | None:
        """pending|retrying -> delivering, attempts + 1. Returns the attempt number, or
        None when the execution is gone or not waiting for an attempt (lost race)."""

        def op(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "UPDATE executions SET status = 'delivering', attempts = attempts + 1,"
                " last_attempt_at_ms = ?, started_at_ms = COALESCE(started_at_ms, ?),"
                " next_retry_ms = NULL, updated_at_ms = ?"
                " WHERE id = ? AND status IN ('pending', 'retrying') RETURNING attempts",
                (now_ms, now_ms, now_ms, execution_id),
            ).fetchone()
            return int(row[0]) if row else None

        return await self.db.write(op, savepoint=False)

    async def requeue_interrupted(self, now_ms: int) -> int:
        """Webhook attempts cut off by a crash: delivering -> pending, attempts - 1, so the
        same attempt is sent again (at-least-once; receivers dedup on execution_id)."""

        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE executions SET status = 'pending', attempts = MAX(attempts - 1, 0),"
                " error_message = 'attempt interrupted by a server restart; sending again',"
                " updated_at_ms = ?"
                " WHERE status = 'delivering' AND transport = 'webhook'",
                (now_ms,),
            ).rowcount

        return await self.db.write(op)
