"""Executions: history reads, and the attempt transitions of the delivery hot path.

A transition is an `UPDATE ... WHERE id = ? AND <expected state>`; a rowcount of 0 means
the caller lost a race (the row moved on, or its cue was deleted) and must do nothing.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ...models import Execution
from ..records import ExecutionFilters
from .db import Database, select_rows
from .recent import Recent
from .rows import UNFINISHED, execution_from_row

__all__ = ["ExecutionStore"]

# Ids per statement (well under the bound on SQL variables).
_CHUNK = 500
# Rows whose texts (payload, answer body, outcome) are longer are not kept as records:
# 4,096 records of at most this size bound what reuse can hold.
_KEPT_TEXT_CHARS = 16_384


class ExecutionStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        # Records read recently, by their whole row: an identical row is an unchanged
        # execution, so its record (and its rendering, `models.execution_raw`) is reused.
        # No version column is needed, and every backend and node may keep its own.
        self._records: Recent[tuple[Any, ...], Execution] = Recent(4096)
        # Where recent pages ended, by (user, filters, the file's data version, offset).
        self._cursors: Recent[tuple[Any, ...], tuple[Any, ...]] = Recent(1024)

    def _record(self, row: sqlite3.Row) -> Execution:
        key = tuple(row)
        execution = self._records.get(key)
        if execution is None:
            execution = execution_from_row(row)
            texts = (row["payload"], row["response_body"], row["outcome"])
            if sum(len(text) for text in texts if text) <= _KEPT_TEXT_CHARS:
                self._records.put(key, execution)
        return execution

    # --- reads ----------------------------------------------------------------------

    async def get(self, user_id: str, execution_id: str) -> Execution | None:
        row = self.db.fetchone(
            "SELECT * FROM executions WHERE id = ? AND user_id = ?", (execution_id, user_id)
        )
        return self._record(row) if row else None

    async def get_any(self, execution_id: str) -> Execution | None:
        row = self.db.fetchone("SELECT * FROM executions WHERE id = ?", (execution_id,))
        return execution_from_row(row) if row else None

    async def page(
        self, user_id: str, filters: ExecutionFilters, limit: int, offset: int
    ) -> tuple[list[Execution], int]:
        """A page of the user's executions, newest occurrence first, and the total.

        With no filter the total comes from `execution_counts`, with only a cue from
        `cue_execution_counts`. A cue's executions are read on the cue's index once the
        cue is known to be the user's (its executions are the user's too). A page after
        the first resumes where the previous page ended (a keyset) when nothing was
        committed since, so paging through a history costs the same at any depth;
        otherwise it skips `offset` entries of the index to find its first row. Either
        way it reads only the page's rows.
        """
        where, params = ["user_id = ?"], [user_id]
        with self.db.snapshot():
            version = self._data_version()
            place = (user_id, filters, version)
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
            elif len(where) == 1:
                row = self.db.fetchone(
                    "SELECT COALESCE(SUM(stored), 0) FROM cue_execution_counts WHERE cue_id = ?",
                    (filters.cue_id,),
                )
            else:
                row = self.db.fetchone(f"SELECT COUNT(*) FROM executions WHERE {clause}", params)  # noqa: S608
            total = int(row[0]) if row else 0
            if offset >= total:
                return [], total
            order = " ORDER BY scheduled_for_ms DESC, created_at_ms DESC, rowid DESC"
            if offset:
                after = self._cursors.get((*place, offset)) if version is not None else None
                if after is None:
                    start = self.db.fetchone(
                        f"SELECT scheduled_for_ms, created_at_ms, rowid FROM executions"  # noqa: S608
                        f" WHERE {clause}{order} LIMIT 1 OFFSET ?",
                        [*params, offset - 1],
                    )
                    if start is None:
                        return [], total
                    after = tuple(start)
                clause += " AND (scheduled_for_ms, created_at_ms, rowid) < (?, ?, ?)"
                params = [*params, *after]
            rows = self.db.fetchall(
                f"SELECT * FROM executions WHERE {clause}{order} LIMIT ?",  # noqa: S608
                [*params, limit],
            )
            if version is not None and len(rows) == limit:
                last = rows[-1]
                (rowid,) = self.db.fetchone(  # type: ignore[misc]
                    "SELECT rowid FROM executions WHERE id = ?", (last["id"],)
                )
                boundary = (last["scheduled_for_ms"], last["created_at_ms"], rowid)
                self._cursors.put((*place, offset + limit), boundary)
        return [self._record(row) for row in rows], total

    def _data_version(self) -> int | None:
        """A number that moves with every commit to the file by any connection (read it
        before the data it vouches for); None where the backend has none."""
        row = self.db.fetchone("PRAGMA data_version")
        return int(row[0]) if row else None

    async def open_webhook_executions(self) -> list[Execution]:
        """Webhook executions that still have delivery work (startup resume)."""
        rows = self.db.fetchall(
            f"SELECT * FROM executions WHERE {UNFINISHED}"  # noqa: S608
            " AND transport = 'webhook' ORDER BY scheduled_for_ms"
        )
        return [execution_from_row(row) for row in rows]

    # --- writes ---------------------------------------------------------------------

    async def begin_attempt(self, execution_id: str, now_ms: int) -> int | None:
        [attempt] = await self.begin_attempts([execution_id], now_ms)
        return attempt

    async def begin_attempts(self, execution_ids: list[str], now_ms: int) -> list[int | None]:

        def op(conn: sqlite3.Connection) -> dict[str, int]:
            begun: dict[str, int] = {}
            unique = list(dict.fromkeys(execution_ids))
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                # The rows that can begin, then their change; not `UPDATE ... RETURNING`,
                # whose rows come back a step each (see `select_rows`).
                rows = select_rows(
                    conn, "id, attempts + 1",
                    f"FROM executions WHERE id IN ({','.join('?' * len(chunk))})"
                    " AND status IN ('pending', 'retrying') /*for update*/",
                    chunk,
                )  # fmt: skip
                if not rows:
                    continue
                conn.execute(
                    "UPDATE executions SET status = 'delivering', attempts = attempts + 1,"  # noqa: S608
                    " last_attempt_at_ms = ?, started_at_ms = COALESCE(started_at_ms, ?),"
                    " next_retry_ms = NULL, updated_at_ms = ?"
                    f" WHERE id IN ({','.join('?' * len(rows))})",
                    (now_ms, now_ms, now_ms, *[row[0] for row in rows]),
                )
                begun.update((str(row[0]), int(row[1])) for row in rows)
            return begun

        # One UPDATE (after reads) is atomic by itself; more need the savepoint.
        begun = await self.db.write(op, savepoint=len(execution_ids) > _CHUNK)
        # An id asked for twice is begun once: the later asker lost the race.
        return [begun.pop(execution_id, None) for execution_id in execution_ids]

    async def requeue_interrupted(self, now_ms: int) -> int:

        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE executions SET status = 'pending',"  # noqa: S608
                " attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,"
                " error_message = 'attempt interrupted by a server restart; sending again',"
                " updated_at_ms = ?"
                f" WHERE {UNFINISHED} AND status = 'delivering' AND transport = 'webhook'",
                (now_ms,),
            ).rowcount

        return await self.db.write(op)
