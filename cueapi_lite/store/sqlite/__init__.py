"""The SQLite backend: one file, one writer thread with group commit, SQL only.

`SqliteStore(path)` implements `store.contract.Store`. Its modules are one per resource;
they share the row decoders (`rows`) and the transaction's operations (`tx`) and never
import each other.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

from ..contract import NodeStore, Tx
from ..records import Deadline, StoreUnavailable
from .alerts import AlertStore
from .claims import ClaimStore
from .cues import CueStore
from .dashboard import DashboardStore
from .db import Database
from .devices import DeviceStore
from .executions import ExecutionStore
from .history import HistoryStore
from .outcomes import OutcomeStore
from .rows import AWAITING_OUTCOME, UNFINISHED
from .sessions import TokenStore
from .support import SupportStore
from .tx import SqliteTx
from .usage import UsageStore
from .users import UserStore
from .workers import WorkerStore

__all__ = ["SHIFT_DEADLINES", "SqliteStore"]

T = TypeVar("T")
Listener = Callable[[list[Deadline]], None]

# `shift_deadlines`: every relative deadline, moved by the jump (one parameter each).
SHIFT_DEADLINES = (
    "UPDATE executions SET next_retry_ms = next_retry_ms + ?"  # noqa: S608
    f" WHERE {UNFINISHED} AND status = 'retrying'",
    "UPDATE executions SET lease_expires_at_ms = lease_expires_at_ms + ?"  # noqa: S608
    f" WHERE {UNFINISHED} AND status = 'delivering' AND lease_expires_at_ms IS NOT NULL",
    f"UPDATE executions SET outcome_deadline_ms = outcome_deadline_ms + ? WHERE {AWAITING_OUTCOME}",  # noqa: S608
    "UPDATE executions SET updated_at_ms = updated_at_ms + ?"
    " WHERE status = 'pending' AND transport = 'worker'",
    "UPDATE cues SET watch_from_ms = watch_from_ms + ?, version = version + 1"
    " WHERE status = 'active'",
    "UPDATE alert_outbox SET next_attempt_ms = next_attempt_ms + ? WHERE status = 'pending'",
)


class SqliteStore:
    """The database of one cueapi-lite instance, in one SQLite file."""

    def __init__(self, path: str, synchronous: str = "NORMAL") -> None:
        self.db = Database(path, synchronous)
        self.users = UserStore(self.db)
        self.cues = CueStore(self.db)
        self.executions = ExecutionStore(self.db)
        self.outcomes = OutcomeStore(self.db)
        self.alerts = AlertStore(self.db)
        self.claims = ClaimStore(self.db)
        self.workers = WorkerStore(self.db)
        self.tokens = TokenStore(self.db)
        self.devices = DeviceStore(self.db)
        self.support = SupportStore(self.db)
        self.usage = UsageStore(self.db)
        self.history = HistoryStore(self.db)
        self.dashboard = DashboardStore(self.db)
        # One process per file (the server lock): no cluster to coordinate.
        self.nodes: NodeStore | None = None
        self._listeners: list[Listener] = []

    def open(self) -> None:
        """Create the file if needed, apply migrations, start the writer."""
        try:
            self.db.open()
        except (sqlite3.DatabaseError, StoreUnavailable) as exc:
            self.db.close()
            raise StoreUnavailable(f"cannot use the database at {self.db.path}: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def migrations(self) -> list[str]:
        rows = self.db.fetchall("SELECT name FROM migrations ORDER BY applied_at_ms, name")
        return [str(row[0]) for row in rows]

    @property
    def location(self) -> str:
        return self.db.path

    def on_commit(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def on_batch(self, listener: Callable[[int, float], None]) -> None:
        self.db.writer.on_commit = listener

    async def transact(self, work: Callable[[Tx], T], urgent: bool = False) -> T:
        # `work` runs on the writer thread, inside the group-commit batch, in its own
        # savepoint; the deadlines it published are handed on once the batch committed.
        def op(conn: sqlite3.Connection) -> tuple[T, list[Deadline]]:
            tx = SqliteTx(conn)
            return work(tx), tx.deadlines

        result, deadlines = await self.db.write(op, urgent=urgent)
        if deadlines:
            for listener in self._listeners:
                listener(deadlines)
        return result

    async def shift_deadlines(self, delta_ms: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            for sql in SHIFT_DEADLINES:
                conn.execute(sql, (delta_ms,))

        await self.db.write(op)

    def healthy(self) -> bool:
        """Open, with its writer running (checked on every `/status`: no query)."""
        return self.db.healthy()
