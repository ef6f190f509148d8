"""Alerts and their outbox.

`raise_alert` and `check_consecutive_failures` run inside the write that detects the
condition, so the alert, its outbox rows (one per channel of the cue's `on_failure`) and
the `pause` action commit together with the transition that caused them: a crash can
delay a notification, never lose it. One alert per (cue, type) per five minutes.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import uuid
from typing import Any

from ...models import Alert, dumps
from .db import Database

__all__ = [
    "AlertFilters",
    "AlertStore",
    "OutboxItem",
    "alert_on_outcome",
    "check_consecutive_failures",
    "raise_alert",
]

DEDUP_MS = 5 * 60_000
SEVERITY = {
    "consecutive_failure": "critical",
    "missed_window": "warning",
    "outcome_timeout": "warning",
    "verification_failed": "warning",
}


def raise_alert(
    conn: sqlite3.Connection,
    cue_id: str,
    execution_id: str | None,
    alert_type: str,
    message: str,
    metadata: dict[str, Any],
    now_ms: int,
) -> str | None:
    """Record an alert for the cue and queue its notifications; None when the cue is gone
    or the same kind of alert for it was raised in the last five minutes."""
    cue = conn.execute(
        "SELECT c.user_id, c.name, c.status, c.schedule_type, c.on_failure, u.email"
        " FROM cues c JOIN users u ON u.id = c.user_id WHERE c.id = ?",
        (cue_id,),
    ).fetchone()
    if cue is None:
        return None
    recent = conn.execute(
        "SELECT 1 FROM alerts WHERE cue_id = ? AND alert_type = ? AND created_at_ms > ?",
        (cue_id, alert_type, now_ms - DEDUP_MS),
    ).fetchone()
    if recent is not None:
        return None
    alert_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO alerts (id, user_id, cue_id, execution_id, alert_type, severity, message,"
        " metadata, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            alert_id, cue["user_id"], cue_id, execution_id, alert_type,
            SEVERITY.get(alert_type, "warning"), message,
            dumps({"cue_name": cue["name"], **metadata}), now_ms,
        ),
    )  # fmt: skip
    on_failure = json.loads(cue["on_failure"])
    targets = []
    if on_failure.get("email"):
        targets.append(("email", cue["email"]))
    if on_failure.get("webhook"):
        targets.append(("webhook", on_failure["webhook"]))
    conn.executemany(
        "INSERT INTO alert_outbox (alert_id, channel, target, next_attempt_ms) VALUES (?, ?, ?, ?)",
        [(alert_id, channel, target, now_ms) for channel, target in targets],
    )
    if on_failure.get("pause") and cue["status"] == "active" and cue["schedule_type"] != "once":
        conn.execute(
            "UPDATE cues SET status = 'paused', next_fire_at_ms = NULL, updated_at_ms = ?,"
            " version = version + 1"
            " WHERE id = ? AND status = 'active'",
            (now_ms, cue_id),
        )
    return alert_id


def check_consecutive_failures(
    conn: sqlite3.Connection, cue_id: str, execution_id: str, now_ms: int
) -> str | None:
    """Raise `consecutive_failure` when the cue's newest finished executions, as many as
    its `alerts.consecutive_failures`, all failed (`failed` or `reported_failure`) and
    this execution is the one that reached that count."""
    row = conn.execute(
        "SELECT json_extract(alerts, '$.consecutive_failures') FROM cues WHERE id = ?", (cue_id,)
    ).fetchone()
    if row is None:
        return None
    threshold = int(row[0])
    recent = conn.execute(
        "SELECT id, status = 'failed' OR outcome_state = 'reported_failure' AS failure"
        " FROM executions WHERE cue_id = ? AND status IN ('success', 'failed')"
        " ORDER BY scheduled_for_ms DESC, created_at_ms DESC LIMIT ?",
        (cue_id, threshold + 1),
    ).fetchall()
    streak = 0
    for item in recent:
        if not item["failure"]:
            break
        streak += 1
    if streak != threshold or execution_id not in {item["id"] for item in recent[:threshold]}:
        return None
    return raise_alert(
        conn, cue_id, execution_id, "consecutive_failure",
        f"{threshold} consecutive executions failed",
        {"consecutive_failures": threshold}, now_ms,
    )  # fmt: skip


def alert_on_outcome(
    conn: sqlite3.Connection, cue_id: str, execution_id: str, state: str, now_ms: int
) -> bool:
    """The alerts a newly recorded outcome state can raise; True if one was raised."""
    if state == "verification_failed":
        alerted = raise_alert(
            conn, cue_id, execution_id, "verification_failed",
            "The outcome does not satisfy the cue's verification policy", {}, now_ms,
        )  # fmt: skip
        return alerted is not None
    if state == "reported_failure":
        return check_consecutive_failures(conn, cue_id, execution_id, now_ms) is not None
    return False


@dataclasses.dataclass(slots=True)
class AlertFilters:
    alert_type: str | None = None
    cue_id: str | None = None
    acknowledged: bool | None = None
    since_ms: int | None = None


@dataclasses.dataclass(slots=True)
class OutboxItem:
    id: int
    channel: str
    target: str
    attempts: int
    alert: Alert


def alert_from_row(row: sqlite3.Row) -> Alert:
    return Alert(
        id=row["id"],
        user_id=row["user_id"],
        cue_id=row["cue_id"],
        execution_id=row["execution_id"],
        alert_type=row["alert_type"],
        severity=row["severity"],
        message=row["message"],
        metadata=json.loads(row["metadata"]),
        acknowledged_at_ms=row["acknowledged_at_ms"],
        created_at_ms=row["created_at_ms"],
    )


class AlertStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def page(
        self, user_id: str, filters: AlertFilters, limit: int, offset: int
    ) -> tuple[list[Alert], int]:
        where: list[str] = ["user_id = ?"]
        params: list[Any] = [user_id]
        if filters.alert_type is not None:
            where.append("alert_type = ?")
            params.append(filters.alert_type)
        if filters.cue_id is not None:
            where.append("cue_id = ?")
            params.append(filters.cue_id)
        if filters.acknowledged is not None:
            where.append(
                "acknowledged_at_ms IS NOT NULL" if filters.acknowledged
                else "acknowledged_at_ms IS NULL"
            )  # fmt: skip
        if filters.since_ms is not None:
            where.append("created_at_ms >= ?")
            params.append(filters.since_ms)
        clause = " AND ".join(where)
        total = self.db.fetchone(f"SELECT COUNT(*) FROM alerts WHERE {clause}", params)  # noqa: S608
        rows = self.db.fetchall(
            f"SELECT * FROM alerts WHERE {clause}"  # noqa: S608
            " ORDER BY created_at_ms DESC, rowid DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [alert_from_row(row) for row in rows], int(total[0]) if total else 0

    async def acknowledge(self, user_id: str, alert_id: str, now_ms: int) -> Alert | None:
        """Mark acknowledged (the first time only); None if the user has no such alert."""

        def op(conn: sqlite3.Connection) -> Alert | None:
            conn.execute(
                "UPDATE alerts SET acknowledged_at_ms = COALESCE(acknowledged_at_ms, ?)"
                " WHERE id = ? AND user_id = ?",
                (now_ms, alert_id, user_id),
            )
            row = conn.execute(
                "SELECT * FROM alerts WHERE id = ? AND user_id = ?", (alert_id, user_id)
            ).fetchone()
            return alert_from_row(row) if row else None

        return await self.db.write(op)

    async def missed_window(
        self, cue_id: str, watch_from_ms: int | None, now_ms: int
    ) -> bool | None:
        """The cue had no success since `watch_from_ms`: raise `missed_window` and start
        a new window at now. None when the window moved meanwhile (a success, a resume)
        or the cue is no longer active; else whether an alert was raised."""

        def op(conn: sqlite3.Connection) -> bool | None:
            cursor = conn.execute(
                "UPDATE cues SET watch_from_ms = ?, version = version + 1"
                " WHERE id = ? AND status = 'active'"
                " AND watch_from_ms IS ?",
                (now_ms, cue_id, watch_from_ms),
            )
            if cursor.rowcount != 1:
                return None
            alert = raise_alert(
                conn, cue_id, None, "missed_window",
                "No successful execution within the cue's expected window",
                {"window_started_at": watch_from_ms}, now_ms,
            )  # fmt: skip
            return alert is not None

        return await self.db.write(op)

    async def outbox_due(self, now_ms: int, limit: int) -> list[OutboxItem]:
        rows = self.db.fetchall(
            "SELECT o.id AS outbox_id, o.channel, o.target, o.attempts, a.*"
            " FROM alert_outbox o JOIN alerts a ON a.id = o.alert_id"
            " WHERE o.status = 'pending' AND o.next_attempt_ms <= ?"
            " ORDER BY o.next_attempt_ms LIMIT ?",
            (now_ms, limit),
        )
        return [
            OutboxItem(row["outbox_id"], row["channel"], row["target"], row["attempts"],
                       alert_from_row(row))
            for row in rows
        ]  # fmt: skip

    async def next_outbox_ms(self) -> int | None:
        row = self.db.fetchone(
            "SELECT MIN(next_attempt_ms) FROM alert_outbox WHERE status = 'pending'"
        )
        return None if row is None or row[0] is None else int(row[0])

    async def outbox_done(
        self, outbox_id: int, status: str, error: str | None, retry_at_ms: int | None,
        now_ms: int,
    ) -> None:  # fmt: skip
        """Record a send: `sent`, `failed` / `skipped` (final), or another try at
        `retry_at_ms` (status stays `pending`)."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE alert_outbox SET attempts = attempts + 1, last_error = ?,"
                " status = ?, next_attempt_ms = COALESCE(?, next_attempt_ms),"
                " sent_at_ms = CASE WHEN ? = 'sent' THEN ? ELSE sent_at_ms END"
                " WHERE id = ? AND status = 'pending'",
                (error, status, retry_at_ms, status, now_ms, outbox_id),
            )

        await self.db.write(op, savepoint=False)

    async def outbox_of(self, alert_id: str) -> list[sqlite3.Row]:
        return self.db.fetchall(
            "SELECT channel, target, status, attempts, last_error FROM alert_outbox"
            " WHERE alert_id = ? ORDER BY id",
            (alert_id,),
        )
