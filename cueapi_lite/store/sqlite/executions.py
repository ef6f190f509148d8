"""Executions: history rows and every state transition, each one compare-and-set.

A transition is an `UPDATE ... WHERE id = ? AND <expected state>`; a rowcount of 0 means
the caller lost a race (the row moved on, or its cue was deleted) and must do nothing.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from ...models import (
    Execution,
    ExecutionStatus,
    Outcome,
    OutcomeState,
    TriggeredBy,
    dumps,
)
from .alerts import alert_on_outcome, check_consecutive_failures
from .db import Database

__all__ = [
    "AttemptResult",
    "ExecutionFilters",
    "ExecutionStore",
    "Finished",
    "FirePlan",
    "execution_from_row",
]

_COLUMNS = (
    "id, cue_id, user_id, scheduled_for_ms, triggered_by, status, missed_reason, payload,"
    " attempts, error_message, replayed_from, created_at_ms, updated_at_ms, transport"
)
# ON CONFLICT: a second row for the same occurrence of a schedule collapses (DESIGN §2).
_INSERT = (
    f"INSERT INTO executions ({_COLUMNS}) VALUES ({', '.join('?' * 14)})"  # noqa: S608
    " ON CONFLICT DO NOTHING"
)
_SCHEDULED = (TriggeredBy.SCHEDULE.value, TriggeredBy.CATCH_UP.value)


def execution_from_row(row: sqlite3.Row) -> Execution:
    outcome = row["outcome"]
    return Execution(
        id=row["id"],
        cue_id=row["cue_id"],
        user_id=row["user_id"],
        scheduled_for_ms=row["scheduled_for_ms"],
        triggered_by=row["triggered_by"],
        status=row["status"],
        payload=json.loads(row["payload"]),
        attempts=row["attempts"],
        missed_reason=row["missed_reason"],
        http_status=row["http_status"],
        error_message=row["error_message"],
        response_body=row["response_body"],
        next_retry_ms=row["next_retry_ms"],
        started_at_ms=row["started_at_ms"],
        delivered_at_ms=row["delivered_at_ms"],
        last_attempt_at_ms=row["last_attempt_at_ms"],
        claimed_by_worker=row["claimed_by_worker"],
        claimed_at_ms=row["claimed_at_ms"],
        last_heartbeat_at_ms=row["last_heartbeat_at_ms"],
        lease_expires_at_ms=row["lease_expires_at_ms"],
        outcome=Outcome.from_json(json.loads(outcome)) if outcome else None,
        outcome_state=row["outcome_state"],
        outcome_deadline_ms=row["outcome_deadline_ms"],
        replayed_from=row["replayed_from"],
        created_at_ms=row["created_at_ms"],
        updated_at_ms=row["updated_at_ms"],
        transport=row["transport"],
        verification_reason=row["verification_reason"],
    )


def _insert_row(e: Execution) -> tuple[Any, ...]:
    return (
        e.id, e.cue_id, e.user_id, e.scheduled_for_ms, e.triggered_by, e.status,
        e.missed_reason, dumps(e.payload), e.attempts, e.error_message, e.replayed_from,
        e.created_at_ms, e.updated_at_ms, e.transport,
    )  # fmt: skip


@dataclasses.dataclass(slots=True)  # not frozen: built per execution (see models)
class FirePlan:
    """What one scheduled fire writes: executions, and the cue's next fire instant.

    Applied only if the cue is still active and its `next_fire_at_ms` still equals
    `expected_next_ms` (nobody paused, edited or fired it meanwhile).
    """

    cue_id: str
    expected_next_ms: int
    new_next_ms: int | None
    executions: Sequence[Execution]
    new_status: str | None = None  # e.g. a `once` cue whose only occurrence was skipped


@dataclasses.dataclass(slots=True)  # not frozen: built per execution (see models)
class AttemptResult:
    """The end of one webhook attempt (see `ExecutionStore.finish_attempt`)."""

    execution_id: str
    attempt: int
    delivered: bool
    http_status: int | None
    error_message: str | None
    response_body: str | None
    retry_at_ms: int | None = None
    outcome: Outcome | None = None
    outcome_state: str | None = None
    outcome_deadline_ms: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Finished:
    """What a finished execution did to its cue."""

    cue_id: str
    status: str
    cue_status: str
    alerted: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class ExecutionFilters:
    cue_id: str | None = None
    status: str | None = None
    outcome_state: str | None = None
    triggered_by: str | None = None


def finish_cue_run(
    conn: sqlite3.Connection,
    cue_id: str,
    triggered_by: str,
    succeeded: bool,
    run_ms: int,
    now_ms: int,
) -> str | None:
    """Count a finished execution on its cue; complete or fail a `once` cue (when this was
    its scheduled run); pause a recurring cue whose `on_failure.pause` asks for it.
    Returns the cue's new status (None if the cue is gone). One statement: every CASE
    reads the row as it was before the update."""
    scheduled = triggered_by in _SCHEDULED
    row = conn.execute(
        "UPDATE cues SET run_count = run_count + 1, version = version + 1,"
        " last_run_ms = MAX(COALESCE(last_run_ms, 0), :run_ms), updated_at_ms = :now_ms,"
        " watch_from_ms = CASE WHEN :succeeded THEN :now_ms ELSE watch_from_ms END,"
        " status = CASE"
        "   WHEN status != 'active' THEN status"
        "   WHEN schedule_type = 'once' AND :scheduled"
        "     THEN CASE WHEN :succeeded THEN 'completed' ELSE 'failed' END"
        "   WHEN schedule_type != 'once' AND NOT :succeeded"
        "     AND json_extract(on_failure, '$.pause') THEN 'paused'"
        "   ELSE status END,"
        " next_fire_at_ms = CASE"
        "   WHEN status = 'active' AND schedule_type != 'once' AND NOT :succeeded"
        "     AND json_extract(on_failure, '$.pause') THEN NULL"
        "   ELSE next_fire_at_ms END"
        " WHERE id = :cue_id RETURNING status",
        {"run_ms": run_ms, "now_ms": now_ms, "scheduled": scheduled, "succeeded": succeeded,
         "cue_id": cue_id},
    ).fetchone()  # fmt: skip
    return None if row is None else str(row[0])


def write_outcome(
    conn: sqlite3.Connection, execution_id: str, outcome: Outcome, state: str, now_ms: int
) -> bool:
    """Write-once: succeeds only while no outcome is recorded (`unknown` is none)."""
    cursor = conn.execute(
        "UPDATE executions SET outcome = ?, outcome_state = ?, updated_at_ms = ?"
        " WHERE id = ? AND (outcome IS NULL OR outcome_state = ?)",
        (dumps(outcome.to_json()), state, now_ms, execution_id, OutcomeState.UNKNOWN.value),
    )
    return cursor.rowcount == 1


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
        """A page of the user's executions, newest occurrence first, and the total.

        With no filter the total comes from `execution_counts`. A cue's executions are
        read on the cue's index once the cue is known to be the user's (its executions
        are the user's too). A page after the first skips `offset` entries of the index
        to find its first row, then reads only the page's rows.
        """
        where, params = ["user_id = ?"], [user_id]
        with self.db.snapshot():
            if filters.cue_id is not None:
                owned = self.db.fetchone(
                    "SELECT 1 FROM cues WHERE id = ? AND user_id = ?", (filters.cue_id, user_id)
                )
                if owned is None:
                    return [], 0
                where, params = ["cue_id = ?"], [filters.cue_id]
            for column in ("status", "outcome_state", "triggered_by"):
                value = getattr(filters, column)
                if value is not None:
                    where.append(f"{column} = ?")
                    params.append(value)
            clause = " AND ".join(where)
            if len(where) == 1 and filters.cue_id is None:
                row = self.db.fetchone(
                    "SELECT COALESCE(SUM(stored), 0) FROM execution_counts WHERE user_id = ?",
                    (user_id,),
                )
            else:
                row = self.db.fetchone(f"SELECT COUNT(*) FROM executions WHERE {clause}", params)  # noqa: S608
            total = int(row[0]) if row else 0
            if offset >= total:
                return [], total
            order = " ORDER BY scheduled_for_ms DESC, created_at_ms DESC, rowid DESC"
            if offset:
                after = self.db.fetchone(
                    f"SELECT scheduled_for_ms, created_at_ms, rowid FROM executions"  # noqa: S608
                    f" WHERE {clause}{order} LIMIT 1 OFFSET ?",
                    [*params, offset - 1],
                )
                if after is None:
                    return [], total
                clause += " AND (scheduled_for_ms, created_at_ms, rowid) < (?, ?, ?)"
                params = [*params, *after]
            rows = self.db.fetchall(
                f"SELECT * FROM executions WHERE {clause}{order} LIMIT ?",  # noqa: S608
                [*params, limit],
            )
        return [execution_from_row(row) for row in rows], total

    async def open_webhook_executions(self) -> list[Execution]:
        """Webhook executions that still have delivery work (startup resume)."""
        rows = self.db.fetchall(
            "SELECT * FROM executions WHERE status IN ('pending', 'delivering', 'retrying')"
            " AND transport = 'webhook' ORDER BY scheduled_for_ms"
        )
        return [execution_from_row(row) for row in rows]

    # --- writes ---------------------------------------------------------------------

    async def apply_fires(
        self, plans: Sequence[FirePlan], now_ms: int
    ) -> tuple[set[str], list[Execution]]:
        """Apply each plan whose compare-and-set on the cue holds; in one transaction.

        Returns the ids of the cues whose plan applied, and the inserted executions (an
        execution whose occurrence already has a row is not inserted, and not returned).
        A lost plan writes nothing.
        """

        def op(conn: sqlite3.Connection) -> tuple[set[str], list[Execution]]:
            applied: set[str] = set()
            candidates: list[Execution] = []
            for plan in plans:
                runnable = sum(1 for e in plan.executions if e.status != ExecutionStatus.MISSED)
                cursor = conn.execute(
                    "UPDATE cues SET next_fire_at_ms = ?, fired_count = fired_count + ?,"
                    " version = version + 1,"
                    " status = COALESCE(?, status), updated_at_ms = ?"
                    " WHERE id = ? AND status = 'active' AND next_fire_at_ms = ?",
                    (
                        plan.new_next_ms, runnable, plan.new_status, now_ms, plan.cue_id,
                        plan.expected_next_ms,
                    ),
                )  # fmt: skip
                if cursor.rowcount != 1:
                    continue
                applied.add(plan.cue_id)
                candidates.extend(plan.executions)
            cursor = conn.executemany(_INSERT, [_insert_row(e) for e in candidates])
            if cursor.rowcount == len(candidates):
                return applied, candidates
            # Some occurrences already had a row: return only the ones written now.
            written = {
                row[0]
                for start in range(0, len(candidates), 500)
                for row in conn.execute(
                    "SELECT id FROM executions WHERE id IN"  # noqa: S608
                    f" ({','.join('?' * len(candidates[start : start + 500]))})",
                    [e.id for e in candidates[start : start + 500]],
                )
            }
            return applied, [e for e in candidates if e.id in written]

        return await self.db.write(op)

    async def insert(self, execution: Execution) -> bool:
        """Insert an unscheduled execution (manual fire, replay) and count it on its cue."""

        def op(conn: sqlite3.Connection) -> bool:
            if conn.execute(_INSERT, _insert_row(execution)).rowcount != 1:
                return False
            conn.execute(
                "UPDATE cues SET fired_count = fired_count + 1, version = version + 1 WHERE id = ?",
                (execution.cue_id,),
            )
            return True

        return await self.db.write(op)

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

    async def finish_attempt(self, result: AttemptResult, now_ms: int) -> Finished | None:
        """delivering (attempt n) -> success | retrying | failed.

        Delivered: `success`, `delivered_at`; the outcome from the response body is
        recorded if none exists; the cue counts a run. Not delivered with `retry_at_ms`:
        `retrying` until then. Otherwise `failed` and the cue counts a run. None when the
        row is no longer in attempt n (deleted or already finished).
        """

        def op(conn: sqlite3.Connection) -> Finished | None:
            if result.delivered:
                status = ExecutionStatus.SUCCESS
            elif result.retry_at_ms is not None:
                status = ExecutionStatus.RETRYING
            else:
                status = ExecutionStatus.FAILED
            row = conn.execute(
                "UPDATE executions SET status = ?, http_status = ?, error_message = ?,"
                " response_body = ?, next_retry_ms = ?, updated_at_ms = ?,"
                " delivered_at_ms = CASE WHEN ? THEN ? ELSE delivered_at_ms END,"
                " outcome_deadline_ms = COALESCE(?, outcome_deadline_ms)"
                " WHERE id = ? AND status = 'delivering' AND attempts = ?"
                " RETURNING cue_id, triggered_by, scheduled_for_ms",
                (
                    status.value, result.http_status, result.error_message,
                    result.response_body, result.retry_at_ms, now_ms, result.delivered,
                    now_ms, result.outcome_deadline_ms, result.execution_id, result.attempt,
                ),
            ).fetchone()  # fmt: skip
            if row is None:
                return None
            cue_id = row["cue_id"]
            alerted = False
            if (
                result.outcome is not None
                and result.outcome_state is not None
                and write_outcome(
                    conn, result.execution_id, result.outcome, result.outcome_state, now_ms
                )
            ):
                alerted = alert_on_outcome(
                    conn, cue_id, result.execution_id, result.outcome_state, now_ms
                )
            cue_status = ""
            if status != ExecutionStatus.RETRYING:
                cue_status = finish_cue_run(
                    conn, cue_id, row["triggered_by"], result.delivered,
                    row["scheduled_for_ms"], now_ms,
                ) or ""  # fmt: skip
            if status == ExecutionStatus.FAILED:
                alerted = (
                    bool(check_consecutive_failures(conn, cue_id, result.execution_id, now_ms))
                    or alerted
                )
            return Finished(cue_id, status.value, cue_status, alerted)

        return await self.db.write(op)

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
