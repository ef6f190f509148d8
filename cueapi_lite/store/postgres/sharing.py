"""Where several nodes write the same rows: taking due cues and beginning an attempt.
The SQLite statements assume one writer; these skip what another node holds and record
which node sends what.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ..sqlite.executions import ExecutionStore
from ..sqlite.tx import SqliteTx

__all__ = ["PgExecutionStore", "PgTx"]


class PgTx(SqliteTx):
    """The shared row operations, and the ones that must see the other nodes."""

    __slots__ = ()

    def take_due(self, cue_ids: Sequence[str]) -> set[str]:
        # A transaction-scoped advisory lock per cue that only firing transactions take:
        # a cue another node is firing is skipped, while a row merely locked by another
        # write (a run finishing, an edit) is waited for by the fire's compare-and-set.
        if not cue_ids:
            return set()
        rows = self.conn.execute(
            "SELECT id FROM unnest(?::text[]) AS id"
            " WHERE pg_try_advisory_xact_lock(hashtextextended('cueapi-fire:' || id, 0))",
            (list(cue_ids),),
        ).fetchall()
        return {row[0] for row in rows}


class PgExecutionStore(ExecutionStore):
    def __init__(self, db: Any, node_id: str) -> None:
        super().__init__(db)
        self.node_id = node_id

    def _data_version(self) -> int | None:
        return None  # no commit counter: every page after the first skips to its start

    async def begin_attempts(self, execution_ids: list[str], now_ms: int) -> list[int | None]:
        # The node that sends an attempt owns the execution from then on: if it dies,
        # the others know whose work to take over.
        def op(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "UPDATE executions SET status = 'delivering', attempts = attempts + 1,"
                " last_attempt_at_ms = ?, started_at_ms = COALESCE(started_at_ms, ?),"
                " next_retry_ms = NULL, updated_at_ms = ?, owner = ?"
                " WHERE id = ANY(?) AND status IN ('pending', 'retrying')"
                " RETURNING id, attempts",
                (now_ms, now_ms, now_ms, self.node_id, list(dict.fromkeys(execution_ids))),
            ).fetchall()
            return {str(row[0]): int(row[1]) for row in rows}

        begun = await self.db.write(op, savepoint=False)
        # An id asked for twice is begun once: the later asker lost the race.
        return [begun.pop(execution_id, None) for execution_id in execution_ids]
