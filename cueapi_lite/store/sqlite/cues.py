"""Cues: reads, and deletion. Inserts and changes are `Tx` operations."""

from __future__ import annotations

import sqlite3
from typing import Any

from ...models import Cue, CueStatus
from ..records import Watched
from .db import Database
from .recent import Recent
from .rows import CUE_COLUMNS, alerts_options, cue_from_row

__all__ = ["CueStore"]


class CueStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        # Where recent pages ended, by (user, status, version of that set, offset).
        self._cursors: Recent[tuple[Any, ...], tuple[int, int]] = Recent(1024)
        # Records read recently, by (id, version): a row whose version has not moved is
        # unchanged, so its record (and its rendering, `models.cue_raw`) is reused and
        # the row is not read again. Records are never mutated (see models).
        self._records: Recent[tuple[str, int], Cue] = Recent(4096)

    def _cues(self, keys: list[tuple[str, int]]) -> list[Cue]:
        """The records for these (id, version) pairs, read from the database only for
        the pairs not seen before. Call inside `db.snapshot()`, after reading the pairs."""
        missing = [
            cue_id for cue_id, version in keys if self._records.get((cue_id, version)) is None
        ]
        if missing:
            marks = ",".join("?" * len(missing))
            rest = f"FROM cues WHERE id IN ({marks})"
            for row in self.db.select_rows(f"{CUE_COLUMNS}, version", rest, missing):
                self._records.put((row[0], row[-1]), cue_from_row(row))
        found = []
        for key in keys:
            cue = self._records.get(key)
            assert cue is not None  # read above, in the same snapshot
            found.append(cue)
        return found

    async def get(self, user_id: str, cue_id: str) -> Cue | None:
        with self.db.snapshot():
            row = self.db.fetchone(
                "SELECT id, version FROM cues WHERE id = ? AND user_id = ?", (cue_id, user_id)
            )
            return self._cues([(row[0], row[1])])[0] if row else None

    async def get_many(self, cue_ids: list[str]) -> list[Cue]:
        """Cues by id across users (for the scheduler); unknown ids are left out."""
        found: list[Cue] = []
        for start in range(0, len(cue_ids), 500):
            chunk = cue_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.select_rows(CUE_COLUMNS, f"FROM cues WHERE id IN ({marks})", chunk)
            found.extend(cue_from_row(row) for row in rows)
        return found

    async def page(
        self, user_id: str, status: str | None, limit: int, offset: int
    ) -> tuple[list[Cue], int]:
        """One page of the user's cues, newest first, and the total that match.

        The total comes from `cue_counts`. A page after the first resumes from where the
        previous page ended (a keyset on `(created_at_ms, rowid)`) when the user's cues of
        that status have not changed since: paging through costs the same at any depth.
        Otherwise the page's first row is found by skipping `offset` entries of the index.
        """
        with self.db.snapshot():
            total, version = self._total(user_id, status)
            if offset >= total:
                return [], total
            where, params = "user_id = ?", list[Any]([user_id])
            if status is not None:
                where += " AND status = ?"
                params.append(status)
            after = self._cursors.get((user_id, status, version, offset)) if offset else None
            if offset and after is None:
                boundary = self.db.fetchone(
                    f"SELECT created_at_ms, rowid FROM cues WHERE {where}"  # noqa: S608
                    " ORDER BY created_at_ms DESC, rowid DESC LIMIT 1 OFFSET ?",
                    [*params, offset - 1],
                )
                if boundary is None:
                    return [], total
                after = (boundary[0], boundary[1])
                self._cursors.put((user_id, status, version, offset), after)
            if after is not None:
                where += " AND (created_at_ms, rowid) < (?, ?)"
                params.extend(after)
            rows = self.db.select_rows(
                "id, version, created_at_ms, rowid",
                f"FROM cues WHERE {where} ORDER BY created_at_ms DESC, rowid DESC LIMIT ?",
                [*params, limit],
            )
            rows.sort(key=lambda row: (row[2], row[3]), reverse=True)
            found = self._cues([(row[0], row[1]) for row in rows])
        if len(rows) == limit:
            last = rows[-1]
            self._cursors.put((user_id, status, version, offset + limit), (last[2], last[3]))
        return found, total

    def _total(self, user_id: str, status: str | None) -> tuple[int, int]:
        """How many of the user's cues have this status (any, for None), and a number
        that moves whenever that set changes."""
        total = version = 0
        for row_status, cues, changes in self.db.select_rows(
            "status, cues, changes", "FROM cue_counts WHERE user_id = ?", (user_id,)
        ):
            if status is None or row_status == status:
                total += cues
                version += changes
        return total, version

    async def delete(self, user_id: str, cue_id: str) -> bool:
        """Delete the cue and (by cascade) its executions; False if it was not there."""

        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "DELETE FROM cues WHERE id = ? AND user_id = ?", (cue_id, user_id)
            )
            return cursor.rowcount == 1

        return await self.db.write(op)

    async def watched(self, after: int, limit: int) -> tuple[list[Watched], int]:
        # In rowid order: a sweep reads the table's pages in order, a slice at a time.
        rows = self.db.fetchall(
            "SELECT rowid, id, cron, timezone, COALESCE(watch_from_ms, created_at_ms),"
            " alerts FROM cues WHERE rowid > ? AND status = 'active'"
            " AND schedule_type = 'recurring' AND cron IS NOT NULL ORDER BY rowid LIMIT ?",
            (after, limit),
        )
        watched = [
            (row[1], row[2], row[3], row[4], alerts_options(row[5]).missed_window_multiplier)
            for row in rows
        ]
        return watched, rows[-1][0] if rows else after

    async def fires_from(self, from_ms: int, limit: int) -> list[tuple[str, int]]:
        # On the `cues_due` index, in its order: reads `limit` entries, not every cue.
        rows = self.db.fetchall(
            "SELECT id, next_fire_at_ms FROM cues WHERE next_fire_at_ms >= ? AND status = ?"
            " ORDER BY next_fire_at_ms LIMIT ?",
            (from_ms, CueStatus.ACTIVE.value, limit),
        )
        return [(row[0], row[1]) for row in rows]
