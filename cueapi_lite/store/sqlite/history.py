"""History as a whole: pruning old rows, incremental vacuum, the alert feed, counts.

Retention deletes finished history in small batches (each one short write transaction)
so the writer keeps serving fires between them; the rule for what is old lives in
`retention.py`, this module only deletes what it is told. The counts here are what
`/metrics` and `doctor` read.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from ...models import Alert
from .db import Database, connect
from .rows import alert_from_row

__all__ = ["HistoryStore"]

# Statuses an execution never leaves: only those rows are history that may be pruned.
FINISHED = ("success", "failed", "missed")
ALERT_FEED_LIMIT = 1000


class HistoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- retention --------------------------------------------------------------------

    async def prune(self, cutoff_ms: int, batch: int) -> dict[str, int]:
        """Delete at most `batch` rows of each kind of history older than `cutoff_ms`:
        finished executions (scheduled and last changed before it), alerts raised before
        it (their outbox rows go with them) but the newest alert, login codes and tokens
        that expired before it. Returns the rows deleted per table; a count equal to
        `batch` means more may be left. The newest alert stays because new alerts are
        logged by rowid, and SQLite would give a freed top rowid out again."""

        def op(conn: sqlite3.Connection) -> dict[str, int]:
            counts = {}
            # Walk users, then each user's (user_id, scheduled_for_ms) index (CROSS JOIN fixes
            # that order): no full scan
            # and no extra index for the burst path to maintain.
            counts["executions"] = conn.execute(
                "DELETE FROM executions WHERE rowid IN ("
                " SELECT e.rowid FROM users u CROSS JOIN executions e"
                "  ON e.user_id = u.id AND e.scheduled_for_ms < ?"
                " WHERE e.updated_at_ms < ? AND e.status IN (?, ?, ?) LIMIT ?)",
                (cutoff_ms, cutoff_ms, *FINISHED, batch),
            ).rowcount
            counts["alerts"] = conn.execute(
                "DELETE FROM alerts WHERE rowid IN ("
                " SELECT a.rowid FROM users u CROSS JOIN alerts a"
                "  ON a.user_id = u.id AND a.created_at_ms < ?"
                "  AND a.rowid < (SELECT MAX(rowid) FROM alerts) LIMIT ?)",
                (cutoff_ms, batch),
            ).rowcount
            counts["device_codes"] = conn.execute(
                "DELETE FROM device_codes WHERE rowid IN ("
                " SELECT rowid FROM device_codes WHERE expires_at_ms < ? LIMIT ?)",
                (cutoff_ms, batch),
            ).rowcount
            counts["auth_tokens"] = conn.execute(
                "DELETE FROM auth_tokens WHERE rowid IN ("
                " SELECT rowid FROM auth_tokens WHERE expires_at_ms < ? LIMIT ?)",
                (cutoff_ms, batch),
            ).rowcount
            return counts

        return await self.db.write(op)

    async def vacuum(self, max_pages: int = 20_000) -> int:
        """Give up to `max_pages` free pages back to the file system; returns how many.

        On a connection of its own, outside the writer's batches: Python's `execute`
        steps a PRAGMA once, which frees one page, and only `executescript` runs
        `incremental_vacuum` to the end, committing first. It takes the write lock for a
        few milliseconds; the writer waits for it (busy_timeout)."""

        def run() -> int:
            conn = connect(self.db.path)
            try:
                before = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
                if before:
                    conn.executescript(f"PRAGMA incremental_vacuum({int(max_pages)});")
                return before - int(conn.execute("PRAGMA freelist_count").fetchone()[0])
            finally:
                conn.close()

        return await asyncio.to_thread(run)

    # --- the alert feed ---------------------------------------------------------------

    async def newest_alert(self) -> int:
        row = self.db.fetchone("SELECT MAX(rowid) FROM alerts")
        return int(row[0]) if row and row[0] is not None else 0

    async def alerts_after(self, rowid: int) -> tuple[list[Alert], int]:
        """Alerts raised after the alert with `rowid` (oldest first), and the newest rowid."""
        rows = self.db.fetchall(
            "SELECT rowid AS seen, * FROM alerts WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (rowid, ALERT_FEED_LIMIT),
        )
        if not rows:
            return [], rowid
        return [alert_from_row(row) for row in rows], int(rows[-1]["seen"])

    # --- counts -----------------------------------------------------------------------

    @staticmethod
    def counts(conn: sqlite3.Connection) -> dict[str, Any]:
        """What `/metrics` shows of the stored state, on a connection of the caller's
        thread (a scrape reads off the event loop): executions by status and outcome
        state, alerts by type, the unsent outbox, active cues."""
        return {
            "executions": [
                (row[0], row[1] or "none", row[2])
                for row in conn.execute(
                    "SELECT status, outcome_state, COUNT(*) FROM executions GROUP BY 1, 2"
                )
            ],
            "alerts": [
                tuple(row)
                for row in conn.execute("SELECT alert_type, COUNT(*) FROM alerts GROUP BY 1")
            ],
            "outbox_pending": conn.execute(
                "SELECT COUNT(*) FROM alert_outbox WHERE status = 'pending'"
            ).fetchone()[0],
            "cues": [
                tuple(row) for row in conn.execute("SELECT status, COUNT(*) FROM cues GROUP BY 1")
            ],
        }
