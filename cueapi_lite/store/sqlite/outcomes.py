"""Outcomes: the write-once report, verification, late evidence and the deadline.

Each method is one transaction that changes the outcome columns of one execution with a
compare-and-set and raises, in the same transaction, the alerts the change calls for.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable
from typing import Any

from ...models import Execution, ExecutionStatus, Outcome, dumps
from .alerts import alert_on_outcome, raise_alert
from .db import Database
from .executions import execution_from_row, finish_cue_run, write_outcome

__all__ = ["EvidenceRejected", "OutcomeStore", "Recorded"]

VERIFIABLE = ("reported_success", "reported_failure", "verification_pending")


class EvidenceRejected(ValueError):
    """Evidence that, merged with what is stored, would pass a size limit."""


@dataclasses.dataclass(slots=True)
class Recorded:
    result: str  # recorded | exists | missing
    alerted: bool = False


def _owned(conn: sqlite3.Connection, user_id: str, execution_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM executions WHERE id = ? AND user_id = ?", (execution_id, user_id)
    ).fetchone()
    return row


class OutcomeStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(
        self,
        user_id: str,
        execution_id: str,
        outcome: Outcome,
        state: str,
        now_ms: int,
        end_status: str | None = None,
    ) -> Recorded:
        """Record an agent's outcome, once (`unknown` is no outcome: a late report
        replaces it). With `end_status` (worker executions) the outcome also ends the
        execution: status becomes `end_status`, `error_message` the reported error, the
        lease ends, and the cue counts a run."""

        def op(conn: sqlite3.Connection) -> Recorded:
            row = _owned(conn, user_id, execution_id)
            if row is None:
                return Recorded("missing")
            if not write_outcome(conn, execution_id, outcome, state, now_ms):
                return Recorded("exists")
            if end_status is not None and row["status"] not in ("success", "failed", "missed"):
                conn.execute(
                    "UPDATE executions SET status = ?, error_message = ?,"
                    " delivered_at_ms = COALESCE(delivered_at_ms, ?), lease_expires_at_ms = NULL"
                    " WHERE id = ?",
                    (end_status, outcome.error, now_ms, execution_id),
                )
                finish_cue_run(
                    conn, row["cue_id"], row["triggered_by"],
                    end_status == ExecutionStatus.SUCCESS, row["scheduled_for_ms"], now_ms,
                )  # fmt: skip
            return Recorded("recorded", alert_on_outcome(conn, row["cue_id"], execution_id, state,
                                                         now_ms))  # fmt: skip

        return await self.db.write(op)

    async def verify(
        self, user_id: str, execution_id: str, valid: bool, reason: str | None, now_ms: int
    ) -> tuple[str, Execution | None, bool]:
        """reported_success | reported_failure | verification_pending -> verified_success
        (valid) or verification_failed (with the reason, and its alert).
        Returns (`ok` | `missing` | `invalid_state`, the execution, whether it alerted)."""

        def op(conn: sqlite3.Connection) -> tuple[str, Execution | None, bool]:
            row = _owned(conn, user_id, execution_id)
            if row is None:
                return "missing", None, False
            state = "verified_success" if valid else "verification_failed"
            updated = conn.execute(
                "UPDATE executions SET outcome_state = ?, verification_reason = ?,"
                " updated_at_ms = ? WHERE id = ? AND outcome_state IN (?, ?, ?) RETURNING *",
                (state, reason, now_ms, execution_id, *VERIFIABLE),
            ).fetchone()
            if updated is None:
                return "invalid_state", None, False
            alerted = alert_on_outcome(conn, row["cue_id"], execution_id, state, now_ms)
            return "ok", execution_from_row(updated), alerted

        return await self.db.write(op)

    async def mark_pending(self, user_id: str, execution_id: str, now_ms: int) -> str:
        """Any recorded outcome -> verification_pending. `ok` | `missing` | `no_outcome`."""

        def op(conn: sqlite3.Connection) -> str:
            if _owned(conn, user_id, execution_id) is None:
                return "missing"
            cursor = conn.execute(
                "UPDATE executions SET outcome_state = 'verification_pending', updated_at_ms = ?"
                " WHERE id = ? AND outcome IS NOT NULL AND outcome_state != 'unknown'",
                (now_ms, execution_id),
            )
            return "ok" if cursor.rowcount == 1 else "no_outcome"

        return await self.db.write(op)

    async def add_evidence(
        self,
        user_id: str,
        execution_id: str,
        merge: Callable[[Outcome], Outcome],
        restate: Callable[[Outcome, str], str],
        now_ms: int,
    ) -> tuple[str, str | None]:
        """Merge evidence into the recorded outcome (`merge` may raise EvidenceRejected);
        `restate(outcome, state)` gives the state afterwards. Returns (`ok` | `missing` |
        `no_outcome`, the outcome state)."""

        def op(conn: sqlite3.Connection) -> tuple[str, str | None]:
            row = _owned(conn, user_id, execution_id)
            if row is None:
                return "missing", None
            if row["outcome"] is None or row["outcome_state"] == "unknown":
                return "no_outcome", None
            outcome = merge(Outcome.from_json(json.loads(row["outcome"])))
            state = restate(outcome, row["outcome_state"])
            conn.execute(
                "UPDATE executions SET outcome = ?, outcome_state = ?, updated_at_ms = ?"
                " WHERE id = ?",
                (dumps(outcome.to_json()), state, now_ms, execution_id),
            )
            return "ok", state

        return await self.db.write(op)

    async def expire(self, execution_id: str, deadline_ms: int, now_ms: int) -> bool | None:
        """No outcome by its deadline -> `unknown` and an `outcome_timeout` alert.
        None when an outcome arrived or the deadline moved; else whether it alerted."""

        def op(conn: sqlite3.Connection) -> bool | None:
            row = conn.execute(
                "UPDATE executions SET outcome_state = 'unknown', updated_at_ms = ?"
                " WHERE id = ? AND outcome IS NULL AND outcome_state IS NULL"
                " AND outcome_deadline_ms = ? AND outcome_deadline_ms <= ?"
                " RETURNING cue_id",
                (now_ms, execution_id, deadline_ms, now_ms),
            ).fetchone()
            if row is None:
                return None
            alert = raise_alert(
                conn, row["cue_id"], execution_id, "outcome_timeout",
                "No outcome was reported before the outcome deadline",
                {"outcome_deadline": deadline_ms}, now_ms,
            )  # fmt: skip
            return alert is not None

        return await self.db.write(op)

    async def open_deadlines(self) -> list[tuple[str, int]]:
        """(execution id, deadline) of every execution still waiting for its outcome."""
        rows = self.db.fetchall(
            "SELECT id, outcome_deadline_ms FROM executions WHERE outcome IS NULL"
            " AND outcome_state IS NULL AND outcome_deadline_ms IS NOT NULL"
        )
        return [(row[0], row[1]) for row in rows]


def merged_evidence(outcome: Outcome, evidence: dict[str, Any]) -> Outcome:
    """Scalars overwrite, `artifacts` append, `metadata` merges shallowly (E10)."""
    changes: dict[str, Any] = {
        k: v for k, v in evidence.items() if k not in ("artifacts", "metadata")
    }
    if "artifacts" in evidence:
        changes["artifacts"] = [*(outcome.artifacts or []), *evidence["artifacts"]]
    if "metadata" in evidence:
        changes["metadata"] = {**(outcome.metadata or {}), **evidence["metadata"]}
    return dataclasses.replace(outcome, **changes)
