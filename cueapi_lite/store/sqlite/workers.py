"""Workers: one row per (user, worker id), refreshed by each worker heartbeat (E34)."""

from __future__ import annotations

import json
import sqlite3

from ...models import dumps
from ..records import WorkerRecord
from .db import Database

__all__ = ["WorkerStore"]


def _worker(row: sqlite3.Row) -> WorkerRecord:
    return WorkerRecord(
        row["worker_id"], json.loads(row["handlers"]), row["registered_at_ms"],
        row["last_heartbeat_ms"],
    )  # fmt: skip


class WorkerStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def heartbeat(
        self, user_id: str, worker_id: str, handlers: list[str] | None, now_ms: int
    ) -> None:
        """Insert or refresh the worker; `handlers=None` keeps the ones it had."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO workers (user_id, worker_id, handlers, registered_at_ms,"
                " last_heartbeat_ms) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (user_id, worker_id) DO UPDATE SET"
                " last_heartbeat_ms = CASE"
                "   WHEN excluded.last_heartbeat_ms > workers.last_heartbeat_ms"
                "   THEN excluded.last_heartbeat_ms ELSE workers.last_heartbeat_ms END,"
                " handlers = CASE WHEN ? THEN excluded.handlers ELSE workers.handlers END",
                (user_id, worker_id, dumps(handlers or []), now_ms, now_ms, handlers is not None),
            )

        await self.db.write(op, savepoint=False)

    async def page(self, user_id: str) -> list[WorkerRecord]:
        """The user's workers, latest heartbeat first."""
        rows = self.db.fetchall(
            "SELECT * FROM workers WHERE user_id = ? ORDER BY last_heartbeat_ms DESC, worker_id",
            (user_id,),
        )
        return [_worker(row) for row in rows]

    async def latest_heartbeat(self, user_id: str) -> int | None:
        row = self.db.fetchone(
            "SELECT MAX(last_heartbeat_ms) FROM workers WHERE user_id = ?", (user_id,)
        )
        return None if row is None or row[0] is None else int(row[0])

    async def delete(self, user_id: str, worker_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "DELETE FROM workers WHERE user_id = ? AND worker_id = ?", (user_id, worker_id)
            )
            return cursor.rowcount == 1

        return await self.db.write(op, savepoint=False)
