"""Cues: reads, and deletion. Inserts and changes are `Tx` operations."""

from __future__ import annotations

import sqlite3

from ...models import Cue, CueStatus
from .db import Database
from .rows import CUE_COLUMNS, cue_from_row

__all__ = ["CueStore"]

_BY_ID = f"SELECT {CUE_COLUMNS} FROM cues WHERE id = ? AND user_id = ?"  # noqa: S608


class CueStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, user_id: str, cue_id: str) -> Cue | None:
        row = self.db.fetchone(_BY_ID, (cue_id, user_id))
        return cue_from_row(row) if row else None

    async def get_many(self, cue_ids: list[str]) -> list[Cue]:
        """Cues by id across users (for the scheduler); unknown ids are left out."""
        found: list[Cue] = []
        for start in range(0, len(cue_ids), 500):
            chunk = cue_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.fetchall(f"SELECT {CUE_COLUMNS} FROM cues WHERE id IN ({marks})", chunk)  # noqa: S608
            found.extend(cue_from_row(row) for row in rows)
        return found

    async def page(
        self, user_id: str, status: str | None, limit: int, offset: int
    ) -> tuple[list[Cue], int]:
        """One page of the user's cues, newest first, and the total that match."""
        where, params = "user_id = ?", [user_id]
        if status is not None:
            where += " AND status = ?"
            params.append(status)
        total_row = self.db.fetchone(f"SELECT COUNT(*) FROM cues WHERE {where}", params)  # noqa: S608
        rows = self.db.fetchall(
            f"SELECT {CUE_COLUMNS} FROM cues WHERE {where} ORDER BY created_at_ms DESC, rowid DESC"  # noqa: S608
            " LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [cue_from_row(row) for row in rows], int(total_row[0]) if total_row else 0

    async def delete(self, user_id: str, cue_id: str) -> bool:
        """Delete the cue and (by cascade) its executions; False if it was not there."""

        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "DELETE FROM cues WHERE id = ? AND user_id = ?", (cue_id, user_id)
            )
            return cursor.rowcount == 1

        return await self.db.write(op)

    async def recurring_active(self) -> list[Cue]:
        """Every active recurring cue (at start, to arm their missed-window checks)."""
        rows = self.db.fetchall(
            f"SELECT {CUE_COLUMNS} FROM cues"  # noqa: S608
            " WHERE status = 'active' AND schedule_type = 'recurring'"
        )
        return [cue_from_row(row) for row in rows]

    async def scheduled(self) -> list[tuple[str, int]]:
        """(cue id, next fire instant) of every active cue that has a next fire."""
        rows = self.db.fetchall(
            "SELECT id, next_fire_at_ms FROM cues WHERE next_fire_at_ms IS NOT NULL AND status = ?",
            (CueStatus.ACTIVE.value,),
        )
        return [(row[0], row[1]) for row in rows]
