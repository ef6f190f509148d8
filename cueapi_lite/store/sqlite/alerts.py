"""Alerts and their outbox: the history a user reads, and the outbox's sends.

Alerts are written by the domain's rules through `Tx.insert_alert`.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ...models import Alert
from ..records import AlertFilters, OutboxItem
from .db import Database
from .rows import alert_from_row

__all__ = ["OUTBOX_TAKEN_MS", "AlertStore"]

# Outbox rows being sent are not due again for this long: another node sharing the
# database does not send them too, and a node that dies while sending leaves them to be
# sent again after this.
OUTBOX_TAKEN_MS = 5 * 60_000


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

    async def outbox_due(self, now_ms: int, limit: int) -> list[OutboxItem]:
        def take(conn: sqlite3.Connection) -> list[int]:
            # A row another node is taking is skipped, not waited for (PostgreSQL).
            rows = conn.execute(
                "UPDATE alert_outbox SET next_attempt_ms = ? WHERE id IN"
                " (SELECT id FROM alert_outbox WHERE status = 'pending'"
                " AND next_attempt_ms <= ? ORDER BY next_attempt_ms, id LIMIT ?"
                " /*for update skip locked*/) RETURNING id",
                (now_ms + OUTBOX_TAKEN_MS, now_ms, limit),
            ).fetchall()
            return sorted(int(row[0]) for row in rows)

        taken = await self.db.write(take)
        if not taken:
            return []
        rows = self.db.fetchall(
            "SELECT o.id AS outbox_id, o.channel, o.target, o.attempts, a.*"  # noqa: S608
            " FROM alert_outbox o JOIN alerts a ON a.id = o.alert_id"
            f" WHERE o.id IN ({', '.join('?' * len(taken))})",
            taken,
        )
        items = {
            row["outbox_id"]: OutboxItem(row["outbox_id"], row["channel"], row["target"],
                                         row["attempts"], alert_from_row(row))
            for row in rows
        }  # fmt: skip
        return [items[i] for i in taken if i in items]

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

    async def outbox_of(self, alert_id: str) -> list[dict[str, Any]]:
        rows = self.db.fetchall(
            "SELECT channel, target, status, attempts, last_error FROM alert_outbox"
            " WHERE alert_id = ? ORDER BY id",
            (alert_id,),
        )
        return [dict(row) for row in rows]
