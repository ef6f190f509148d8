"""`SqliteTx`: the row operations of one write transaction on the SQLite file.

Each method is one statement (or a read) and decides nothing: the domain functions that
`Store.transact` runs call these in the order their rules say. The contracts are written
on `store.contract.Tx`. Everything runs on the writer thread inside its transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import lru_cache

from ...credentials import key_prefix, new_key_id
from ...models import Alert, Cue, Execution, Outcome, OutcomeState, dumps
from ..records import (
    AttemptResult,
    CueAfterRun,
    CueLimitReached,
    CueState,
    Deadline,
    DuplicateName,
    ExecutionRef,
    FirePlan,
    KeyLimitReached,
    KeyRecord,
)
from .db import select_rows
from .rows import (
    CUE_COLUMNS,
    CUE_INSERT,
    CUE_STATE_COLUMNS,
    KEY_COLUMNS,
    cue_from_row,
    cue_options,
    cue_state_from_row,
    execution_from_row,
    execution_insert,
    execution_params,
    key_from_row,
)

__all__ = ["SqliteTx"]

# `/*for update*/` marks a read whose row the transaction's rule goes on to change: a
# comment to SQLite (its one writer already excludes everyone else), `FOR UPDATE` on
# PostgreSQL (see store/postgres/db.py).
LOCK = " /*for update*/"
_CUE = f"SELECT {CUE_COLUMNS} FROM cues WHERE id = ?"  # noqa: S608
_CUE_STATE = f"SELECT {CUE_STATE_COLUMNS} FROM cues WHERE id = ?"  # noqa: S608
_LOCK_USER = "SELECT id FROM users WHERE id = ? /*for update*/"
_EXECUTION = "SELECT * FROM executions WHERE id = ? /*for update*/"
_USER_EXECUTION = "SELECT * FROM executions WHERE id = ? AND user_id = ? /*for update*/"
_NEXT = " ORDER BY e.scheduled_for_ms, e.created_at_ms LIMIT 1 /*for update skip locked*/"
_CUE_UPDATE = (
    "UPDATE cues SET name=?, description=?, status=?, transport=?, schedule_type=?, cron=?,"
    " at_ms=?, timezone=?, callback=?, payload=?, retry=?, on_failure=?, delivery=?, alerts=?,"
    " catch_up=?, verification=?, next_fire_at_ms=?, warning=?, updated_at_ms=?,"
    " watch_from_ms=?, version = version + 1 WHERE id=? AND user_id=?"
)
_CLAIMABLE = (
    "SELECT e.id FROM executions e"
    " WHERE e.user_id = ? AND e.status = 'pending' AND e.transport = 'worker'"
    " AND e.scheduled_for_ms <= ?"
)
_CHUNK = 500
_ROWS_PER_STATEMENT = 100  # 1,600 values, well under the bound on SQL variables


@lru_cache(maxsize=128)
def _count_runs(rows: int) -> str:
    """`count_run` for `rows` cues: (cue, last run, watch from, status, next fire)."""
    change = "(?, CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS BIGINT))"
    return (
        "UPDATE cues SET run_count = run_count + 1, version = version + 1,"  # noqa: S608
        " last_run_ms = f.column2, watch_from_ms = f.column3, status = f.column4,"
        " next_fire_at_ms = f.column5, updated_at_ms = ?"
        f" FROM (VALUES {', '.join([change] * rows)}) AS f WHERE cues.id = f.column1"
    )


@lru_cache(maxsize=128)
def _finish_delivered(rows: int) -> str:
    """`finish_attempt` to `success` for `rows` attempts: (execution, attempt, http
    status, error, response excerpt, outcome deadline)."""
    attempt = (
        "(?, CAST(? AS BIGINT), CAST(? AS INTEGER), CAST(? AS TEXT), CAST(? AS TEXT),"
        " CAST(? AS BIGINT))"
    )
    return (
        "UPDATE executions SET status = 'success', http_status = f.column3,"  # noqa: S608
        " error_message = f.column4, response_body = f.column5, next_retry_ms = NULL,"
        " updated_at_ms = ?, delivered_at_ms = ?,"
        " outcome_deadline_ms = COALESCE(f.column6, outcome_deadline_ms)"
        f" FROM (VALUES {', '.join([attempt] * rows)}) AS f"
        " WHERE executions.id = f.column1 AND executions.status = 'delivering'"
        " AND executions.attempts = f.column2"
    )


_REFS_AND_CUES = "e.id, e.cue_id, e.triggered_by, e.scheduled_for_ms, " + ", ".join(
    f"c.{column.strip()}" for column in CUE_STATE_COLUMNS.split(",")
)


@lru_cache(maxsize=128)
def _apply_fires(rows: int) -> str:
    """`apply_fire` for `rows` plans: (cue, expected next, new next, fired, new status).
    The casts give PostgreSQL the columns' types when a column's values are all NULL."""
    plan = "(?, CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS TEXT))"
    return (
        "UPDATE cues SET next_fire_at_ms = f.column3, fired_count = fired_count + f.column4,"  # noqa: S608
        " version = version + 1, status = COALESCE(f.column5, status), updated_at_ms = ?"
        f" FROM (VALUES {', '.join([plan] * rows)}) AS f"
        " WHERE cues.id = f.column1 AND cues.status = 'active'"
        " AND cues.next_fire_at_ms = f.column2"
    )


def _ref(row: sqlite3.Row | None) -> ExecutionRef | None:
    return None if row is None else ExecutionRef(*row)


class SqliteTx:
    """One transaction's row operations (see `store.contract.Tx`)."""

    __slots__ = ("conn", "deadlines")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.deadlines: list[Deadline] = []

    def after_commit(self, deadline: Deadline) -> None:
        self.deadlines.append(deadline)

    # --- cues -----------------------------------------------------------------------

    def cue(self, cue_id: str, user_id: str | None = None) -> Cue | None:
        if user_id is None:
            row = self.conn.execute(_CUE + LOCK, (cue_id,)).fetchone()
        else:
            row = self.conn.execute(_CUE + " AND user_id = ?" + LOCK, (cue_id, user_id)).fetchone()
        return None if row is None else cue_from_row(row)

    def cue_state(self, cue_id: str) -> CueState | None:
        row = self.conn.execute(_CUE_STATE + LOCK, (cue_id,)).fetchone()
        return None if row is None else cue_state_from_row(row)

    def insert_cue(self, cue: Cue, max_cues: int | None) -> bool:
        if max_cues is not None:
            # Creates of one user queue behind each other, so none counts past another.
            self.conn.execute(_LOCK_USER, (cue.user_id,))
            (counted,) = self.conn.execute(
                "SELECT COALESCE(SUM(cues), 0) FROM cue_counts"
                " WHERE user_id = ? AND status IN ('active', 'paused')",
                (cue.user_id,),
            ).fetchone()
            if counted >= max_cues:
                raise CueLimitReached(counted)
        s = cue.schedule
        cursor = self.conn.execute(
            CUE_INSERT + " ON CONFLICT (user_id, name) DO NOTHING",
            (
                cue.id, cue.user_id, cue.name, cue.description, cue.status, cue.transport,
                s.type, s.cron, s.at_ms, s.timezone, *cue_options(cue), cue.next_fire_at_ms,
                cue.last_run_ms, cue.run_count, cue.fired_count, cue.warning,
                cue.created_at_ms, cue.updated_at_ms, cue.watch_from_ms,
            ),
        )  # fmt: skip
        return cursor.rowcount == 1

    def update_cue(self, cue: Cue) -> None:
        s = cue.schedule
        try:
            self.conn.execute(
                _CUE_UPDATE,
                (
                    cue.name, cue.description, cue.status, cue.transport, s.type, s.cron,
                    s.at_ms, s.timezone, *cue_options(cue), cue.next_fire_at_ms, cue.warning,
                    cue.updated_at_ms, cue.watch_from_ms, cue.id, cue.user_id,
                ),
            )  # fmt: skip
        except sqlite3.IntegrityError:
            raise DuplicateName(cue.name) from None

    def count_run(self, cue_id: str, change: CueAfterRun, now_ms: int) -> None:
        self.conn.execute(
            "UPDATE cues SET run_count = run_count + 1, version = version + 1, last_run_ms = ?,"
            " watch_from_ms = ?,"
            " status = ?, next_fire_at_ms = ?, updated_at_ms = ? WHERE id = ?",
            (
                change.last_run_ms, change.watch_from_ms, change.status,
                change.next_fire_at_ms, now_ms, cue_id,
            ),
        )  # fmt: skip

    def count_runs(self, changes: Sequence[tuple[str, CueAfterRun]], now_ms: int) -> None:
        for start in range(0, len(changes), _ROWS_PER_STATEMENT):
            some = changes[start : start + _ROWS_PER_STATEMENT]
            params: list[object] = [now_ms]
            for cue_id, c in some:
                params += [cue_id, c.last_run_ms, c.watch_from_ms, c.status, c.next_fire_at_ms]
            self.conn.execute(_count_runs(len(some)), params)

    def set_cue_status(
        self, cue_id: str, expected: str, status: str, now_ms: int, stop_firing: bool
    ) -> bool:
        cursor = self.conn.execute(
            "UPDATE cues SET status = ?, updated_at_ms = ?, version = version + 1,"
            " next_fire_at_ms = CASE WHEN ? THEN NULL ELSE next_fire_at_ms END"
            " WHERE id = ? AND status = ?",
            (status, now_ms, stop_firing, cue_id, expected),
        )
        return cursor.rowcount == 1

    def restart_watch(self, cue_id: str, expected_ms: int | None, now_ms: int) -> bool:
        cursor = self.conn.execute(
            "UPDATE cues SET watch_from_ms = ?, version = version + 1"
            " WHERE id = ? AND status = 'active'"
            " AND watch_from_ms IS ?",
            (now_ms, cue_id, expected_ms),
        )
        return cursor.rowcount == 1

    def apply_fire(self, plan: FirePlan, fired: int, now_ms: int) -> bool:
        cursor = self.conn.execute(
            "UPDATE cues SET next_fire_at_ms = ?, fired_count = fired_count + ?,"
            " version = version + 1,"
            " status = COALESCE(?, status), updated_at_ms = ?"
            " WHERE id = ? AND status = 'active' AND next_fire_at_ms = ?",
            (plan.new_next_ms, fired, plan.new_status, now_ms, plan.cue_id, plan.expected_next_ms),
        )
        return cursor.rowcount == 1

    def apply_fires(self, fires: Sequence[tuple[FirePlan, int]], now_ms: int) -> list[bool]:
        # Each statement's step hands the interpreter lock back and forth with the event
        # loop, which costs more than a row: a burst's slice goes in one statement. When
        # not every compare-and-set holds (rare: the slice was read just before), it is
        # undone and each plan applied on its own, to know which held.
        if len(fires) < 2:
            return [self.apply_fire(plan, fired, now_ms) for plan, fired in fires]
        self.conn.execute("SAVEPOINT fires")
        applied = 0
        for start in range(0, len(fires), _ROWS_PER_STATEMENT):
            some = fires[start : start + _ROWS_PER_STATEMENT]
            params: list[object] = [now_ms]
            for plan, fired in some:
                params += [plan.cue_id, plan.expected_next_ms, plan.new_next_ms, fired,
                           plan.new_status]  # fmt: skip
            applied += self.conn.execute(_apply_fires(len(some)), params).rowcount
        if applied == len(fires):
            self.conn.execute("RELEASE fires")
            return [True] * len(fires)
        self.conn.execute("ROLLBACK TO fires")
        self.conn.execute("RELEASE fires")
        return [self.apply_fire(plan, fired, now_ms) for plan, fired in fires]

    def take_due(self, cue_ids: Sequence[str]) -> set[str]:
        return set(cue_ids)  # the one writer holds every row already

    def count_fire(self, cue_id: str) -> None:
        self.conn.execute(
            "UPDATE cues SET fired_count = fired_count + 1, version = version + 1 WHERE id = ?",
            (cue_id,),
        )

    # --- executions -----------------------------------------------------------------

    def execution(self, execution_id: str, user_id: str | None = None) -> Execution | None:
        if user_id is None:
            row = self.conn.execute(_EXECUTION, (execution_id,)).fetchone()
        else:
            row = self.conn.execute(_USER_EXECUTION, (execution_id, user_id)).fetchone()
        return None if row is None else execution_from_row(row)

    def insert_executions(self, executions: Sequence[Execution]) -> list[Execution]:
        if not executions:
            return []
        # Many rows to a statement: each statement's step hands the interpreter lock
        # back and forth with the event loop, which costs more than the row.
        inserted = 0
        for start in range(0, len(executions), _ROWS_PER_STATEMENT):
            rows = executions[start : start + _ROWS_PER_STATEMENT]
            params = [value for e in rows for value in execution_params(e)]
            inserted += self.conn.execute(execution_insert(len(rows)), params).rowcount
        if inserted == len(executions):
            return list(executions)
        # Some occurrences already had a row: return only the ones written now.
        written = {
            row[0]
            for start in range(0, len(executions), _CHUNK)
            for row in self.conn.execute(
                "SELECT id FROM executions WHERE id IN"  # noqa: S608
                f" ({','.join('?' * len(executions[start : start + _CHUNK]))})",
                [e.id for e in executions[start : start + _CHUNK]],
            )
        }
        return [e for e in executions if e.id in written]

    def finish_attempt(
        self, result: AttemptResult, status: str, now_ms: int
    ) -> ExecutionRef | None:
        row = self.conn.execute(
            "UPDATE executions SET status = ?, http_status = ?, error_message = ?,"
            " response_body = ?, next_retry_ms = ?, updated_at_ms = ?,"
            " delivered_at_ms = CASE WHEN ? THEN ? ELSE delivered_at_ms END,"
            " outcome_deadline_ms = COALESCE(?, outcome_deadline_ms)"
            " WHERE id = ? AND status = 'delivering' AND attempts = ?"
            " RETURNING id, cue_id, triggered_by, scheduled_for_ms",
            (
                status, result.http_status, result.error_message, result.response_body,
                result.retry_at_ms, now_ms, result.delivered, now_ms,
                result.outcome_deadline_ms, result.execution_id, result.attempt,
            ),
        ).fetchone()  # fmt: skip
        return _ref(row)

    def finish_delivered(
        self, results: Sequence[AttemptResult], now_ms: int
    ) -> list[tuple[ExecutionRef, CueState | None]] | None:
        # Three statements for a batch of attempts instead of three for each: an UPDATE
        # whose row count says whether all were still in their attempt (else it is undone,
        # and the caller goes one by one), then one read of their refs and cues' states.
        self.conn.execute("SAVEPOINT finishes")
        finished = 0
        for start in range(0, len(results), _ROWS_PER_STATEMENT):
            some = results[start : start + _ROWS_PER_STATEMENT]
            params: list[object] = [now_ms, now_ms]
            for r in some:
                params += [r.execution_id, r.attempt, r.http_status, r.error_message,
                           r.response_body, r.outcome_deadline_ms]  # fmt: skip
            finished += self.conn.execute(_finish_delivered(len(some)), params).rowcount
        if finished != len(results):
            self.conn.execute("ROLLBACK TO finishes")
            self.conn.execute("RELEASE finishes")
            return None
        self.conn.execute("RELEASE finishes")
        found: dict[str, tuple[ExecutionRef, CueState | None]] = {}
        for start in range(0, len(results), _CHUNK):
            ids = [r.execution_id for r in results[start : start + _CHUNK]]
            rest = (
                "FROM executions e LEFT JOIN cues c ON c.id = e.cue_id"
                f" WHERE e.id IN ({','.join('?' * len(ids))})"
            )
            for values in select_rows(self.conn, _REFS_AND_CUES, rest, ids):
                cue = None if values[4] is None else cue_state_from_row(values[4:])
                found[values[0]] = (ExecutionRef(*values[:4]), cue)
        return [found[r.execution_id] for r in results]

    def write_outcome(self, execution_id: str, outcome: Outcome, state: str, now_ms: int) -> bool:
        cursor = self.conn.execute(
            "UPDATE executions SET outcome = ?, outcome_state = ?, updated_at_ms = ?"
            " WHERE id = ? AND (outcome IS NULL OR outcome_state = ?)",
            (dumps(outcome.to_json()), state, now_ms, execution_id, OutcomeState.UNKNOWN.value),
        )
        return cursor.rowcount == 1

    def end_execution(
        self,
        execution_id: str,
        status: str,
        error: str | None,
        now_ms: int,
        from_statuses: Sequence[str],
    ) -> bool:
        cursor = self.conn.execute(
            "UPDATE executions SET status = ?, error_message = ?,"  # noqa: S608
            " delivered_at_ms = COALESCE(delivered_at_ms, ?), lease_expires_at_ms = NULL"
            f" WHERE id = ? AND status IN ({','.join('?' * len(from_statuses))})",
            (status, error, now_ms, execution_id, *from_statuses),
        )
        return cursor.rowcount == 1

    def latest_finished(
        self, cue_id: str, statuses: Sequence[str], limit: int
    ) -> list[tuple[str, str, str | None]]:
        rows = self.conn.execute(
            "SELECT id, status, outcome_state FROM executions WHERE cue_id = ?"  # noqa: S608
            f" AND status IN ({','.join('?' * len(statuses))})"
            " ORDER BY scheduled_for_ms DESC, created_at_ms DESC LIMIT ?",
            (cue_id, *statuses, limit),
        ).fetchall()
        return [(row[0], row[1], row[2]) for row in rows]

    def next_claimable(
        self, user_id: str, now_ms: int, task: str | None, agent: str | None
    ) -> str | None:
        sql, params = _CLAIMABLE, [user_id, now_ms]
        if task is not None:
            sql += " AND json_extract(e.payload, '$.task') = ?"
            params.append(task)
        if agent is not None:
            sql += " AND json_extract(e.payload, '$.agent') = ?"
            params.append(agent)
        # Concurrent claims (of other nodes, too) pass over a row another one holds.
        row = self.conn.execute(sql + _NEXT, params).fetchone()
        return None if row is None else str(row[0])

    def claim(
        self, user_id: str, execution_id: str, worker_id: str, now_ms: int, lease_until_ms: int
    ) -> Execution | None:
        row = self.conn.execute(
            "UPDATE executions SET status = 'delivering', claimed_by_worker = ?,"
            " claimed_at_ms = ?, last_attempt_at_ms = ?,"
            " started_at_ms = COALESCE(started_at_ms, ?), last_heartbeat_at_ms = NULL,"
            " lease_expires_at_ms = ?, attempts = attempts + 1, error_message = NULL,"
            " updated_at_ms = ?"
            " WHERE id = ? AND user_id = ? AND status = 'pending' AND transport = 'worker'"
            " RETURNING *",
            (worker_id, now_ms, now_ms, now_ms, lease_until_ms, now_ms, execution_id, user_id),
        ).fetchone()
        return None if row is None else execution_from_row(row)

    def set_outcome_deadline(self, execution_id: str, deadline_ms: int) -> bool:
        cursor = self.conn.execute(
            "UPDATE executions SET outcome_deadline_ms = ?"
            " WHERE id = ? AND outcome IS NULL AND outcome_state IS NULL",
            (deadline_ms, execution_id),
        )
        return cursor.rowcount == 1

    def extend_lease(self, execution_id: str, now_ms: int, until_ms: int) -> Execution | None:
        row = self.conn.execute(
            "UPDATE executions SET last_heartbeat_at_ms = ?, lease_expires_at_ms = ?,"
            " updated_at_ms = ? WHERE id = ? AND status = 'delivering'"
            " AND claimed_by_worker IS NOT NULL RETURNING *",
            (now_ms, until_ms, now_ms, execution_id),
        ).fetchone()
        return None if row is None else execution_from_row(row)

    def expire_lease(
        self, execution: Execution, status: str, now_ms: int, worker_dead_before_ms: int
    ) -> bool:
        cursor = self.conn.execute(
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
        return cursor.rowcount == 1

    def expire_unclaimed(
        self, execution_id: str, now_ms: int, waiting_since_ms: int
    ) -> ExecutionRef | None:
        row = self.conn.execute(
            "UPDATE executions SET status = 'missed', missed_reason = 'unclaimed',"
            " error_message = 'Not claimed by any worker in time', updated_at_ms = ?"
            " WHERE id = ? AND status = 'pending' AND transport = 'worker'"
            " AND updated_at_ms <= ? RETURNING id, cue_id, triggered_by, scheduled_for_ms",
            (now_ms, execution_id, waiting_since_ms),
        ).fetchone()
        return _ref(row)

    def expire_outcome(self, execution_id: str, deadline_ms: int, now_ms: int) -> str | None:
        row = self.conn.execute(
            "UPDATE executions SET outcome_state = 'unknown', updated_at_ms = ?"
            " WHERE id = ? AND outcome IS NULL AND outcome_state IS NULL"
            " AND outcome_deadline_ms = ? AND outcome_deadline_ms <= ? RETURNING cue_id",
            (now_ms, execution_id, deadline_ms, now_ms),
        ).fetchone()
        return None if row is None else str(row[0])

    def verify_outcome(
        self,
        execution_id: str,
        state: str,
        reason: str | None,
        now_ms: int,
        from_states: Sequence[str],
    ) -> Execution | None:
        row = self.conn.execute(
            "UPDATE executions SET outcome_state = ?, verification_reason = ?,"  # noqa: S608
            " updated_at_ms = ? WHERE id = ?"
            f" AND outcome_state IN ({','.join('?' * len(from_states))}) RETURNING *",
            (state, reason, now_ms, execution_id, *from_states),
        ).fetchone()
        return None if row is None else execution_from_row(row)

    def mark_verification_pending(self, execution_id: str, now_ms: int) -> bool:
        cursor = self.conn.execute(
            "UPDATE executions SET outcome_state = 'verification_pending', updated_at_ms = ?"
            " WHERE id = ? AND outcome IS NOT NULL AND outcome_state != 'unknown'",
            (now_ms, execution_id),
        )
        return cursor.rowcount == 1

    def replace_outcome(self, execution_id: str, outcome: Outcome, state: str, now_ms: int) -> None:
        self.conn.execute(
            "UPDATE executions SET outcome = ?, outcome_state = ?, updated_at_ms = ? WHERE id = ?",
            (dumps(outcome.to_json()), state, now_ms, execution_id),
        )

    # --- alerts ---------------------------------------------------------------------

    def alerted_since(self, cue_id: str, alert_type: str, since_ms: int) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM alerts WHERE cue_id = ? AND alert_type = ? AND created_at_ms > ?",
            (cue_id, alert_type, since_ms),
        ).fetchone()
        return row is not None

    def user_email(self, user_id: str) -> str | None:
        row = self.conn.execute("SELECT email FROM users WHERE id = ?", (user_id,)).fetchone()
        return None if row is None else str(row[0])

    def insert_alert(self, alert: Alert, targets: Sequence[tuple[str, str]]) -> None:
        self.conn.execute(
            "INSERT INTO alerts (id, user_id, cue_id, execution_id, alert_type, severity,"
            " message, metadata, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                alert.id, alert.user_id, alert.cue_id, alert.execution_id, alert.alert_type,
                alert.severity, alert.message, dumps(alert.metadata), alert.created_at_ms,
            ),
        )  # fmt: skip
        self.conn.executemany(
            "INSERT INTO alert_outbox (alert_id, channel, target, next_attempt_ms)"
            " VALUES (?, ?, ?, ?)",
            [(alert.id, channel, target, alert.created_at_ms) for channel, target in targets],
        )

    # --- keys, tokens and device codes ----------------------------------------------

    def insert_key(
        self,
        user_id: str,
        api_key: str,
        key_hash: str,
        label: str,
        now_ms: int,
        max_active: int | None,
    ) -> str:
        if max_active is not None:
            self.conn.execute(_LOCK_USER, (user_id,))
            (active,) = self.conn.execute(
                "SELECT COUNT(*) FROM api_keys WHERE user_id = ? AND status = 'active'",
                (user_id,),
            ).fetchone()
            if active >= max_active:
                raise KeyLimitReached(active)
        key_id = new_key_id()
        self.conn.execute(
            "INSERT INTO api_keys (id, user_id, key_hash, prefix, label, status, created_at_ms)"
            " VALUES (?, ?, ?, ?, ?, 'active', ?)",
            (key_id, user_id, key_hash, key_prefix(api_key), label, now_ms),
        )
        return key_id

    def insert_token(
        self, token_hash: str, kind: str, user_id: str, now_ms: int, expires_at_ms: int
    ) -> None:
        # Tokens already expired go whenever a new one is issued (nothing else purges).
        self.conn.execute("DELETE FROM auth_tokens WHERE expires_at_ms < ?", (now_ms,))
        self.conn.execute(
            "INSERT INTO auth_tokens (token_hash, kind, user_id, created_at_ms, expires_at_ms)"
            " VALUES (?, ?, ?, ?, ?)",
            (token_hash, kind, user_id, now_ms, expires_at_ms),
        )

    def key(self, user_id: str, key_id: str) -> KeyRecord | None:
        # The user's row first: changes to one user's keys queue behind each other.
        self.conn.execute(_LOCK_USER, (user_id,))
        row = self.conn.execute(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ? AND user_id = ?",  # noqa: S608
            (key_id, user_id),
        ).fetchone()
        return None if row is None else key_from_row(row)

    def active_keys(self, user_id: str) -> int:
        self.conn.execute(_LOCK_USER, (user_id,))
        (active,) = self.conn.execute(
            "SELECT COUNT(*) FROM api_keys WHERE user_id = ? AND status = 'active'", (user_id,)
        ).fetchone()
        return int(active)

    def revoke_key(self, key_id: str, now_ms: int) -> KeyRecord | None:
        row = self.conn.execute(
            "UPDATE api_keys SET status = 'revoked', revoked_at_ms = ?"  # noqa: S608
            f" WHERE id = ? AND status = 'active' RETURNING {KEY_COLUMNS}",
            (now_ms, key_id),
        ).fetchone()
        return None if row is None else key_from_row(row)

    def purge_revoked_keys(self, before_ms: int) -> None:
        self.conn.execute(
            "DELETE FROM api_keys WHERE status != 'active' AND revoked_at_ms < ?", (before_ms,)
        )

    def claim_device_code(self, code: str, now_ms: int) -> str | None:
        row = self.conn.execute(
            "UPDATE device_codes SET status = 'claimed', claimed_at_ms = ?,"
            " magic_token_hash = NULL WHERE code = ? AND status = 'approved'"
            " AND expires_at_ms > ? RETURNING user_id",
            (now_ms, code, now_ms),
        ).fetchone()
        return None if row is None else str(row[0])

    def set_device_key(self, code: str, key_id: str) -> None:
        self.conn.execute("UPDATE device_codes SET key_id = ? WHERE code = ?", (key_id, code))
