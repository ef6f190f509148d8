"""The PostgreSQL backend: the store of many `serve` processes on one database.

`PostgresStore(url)` implements `store.contract.Store` with the resource modules the
SQLite backend uses (their statements are written in SQL both databases understand;
`db.translate` rewrites the few spellings that differ) on a `PgDatabase`: write
transactions on a pool, locking the rows their rules read; reads on their own connection.
`sharing` holds the statements that must see other nodes, `nodes` the cluster's leases.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar, cast

import psycopg

from ..contract import Tx
from ..records import Deadline, StoreUnavailable
from ..sqlite import SHIFT_DEADLINES
from ..sqlite.alerts import AlertStore
from ..sqlite.claims import ClaimStore
from ..sqlite.cues import CueStore
from ..sqlite.dashboard import DashboardStore
from ..sqlite.db import Database
from ..sqlite.devices import DeviceStore
from ..sqlite.history import HistoryStore
from ..sqlite.outcomes import OutcomeStore
from ..sqlite.sessions import TokenStore
from ..sqlite.support import SupportStore
from ..sqlite.usage import UsageStore
from ..sqlite.users import UserStore
from ..sqlite.workers import WorkerStore
from .db import PgDatabase
from .nodes import CHANNEL, SHARED_KINDS, PgNodeStore, notifications
from .sharing import PgExecutionStore, PgTx

__all__ = ["PostgresStore"]

T = TypeVar("T")
Listener = Callable[[list[Deadline]], None]


class PgDashboardStore(DashboardStore):
    def data_version(self) -> int:
        # The next transaction id moves only when a transaction writes (read-only ones
        # are given no id): "has anything been written since?".
        row = self.db.fetchone("SELECT pg_snapshot_xmax(pg_current_snapshot())::TEXT::BIGINT")
        return int(row[0]) if row else 0


class PgHistoryStore(HistoryStore):
    async def vacuum(self, max_pages: int = 20_000) -> int:
        return 0  # autovacuum gives space back; nothing to do by hand


class PostgresStore:
    """The database of a cluster of cueapi-lite nodes, in one PostgreSQL database."""

    def __init__(self, url: str) -> None:
        node_id = f"node-{secrets.token_hex(6)}"
        self.pg = PgDatabase(url, node_id)
        # The resource modules need only the methods both databases offer.
        db = cast(Database, self.pg)
        self.users = UserStore(db)
        self.cues = CueStore(db)
        self.executions = PgExecutionStore(db, node_id)
        self.outcomes = OutcomeStore(db)
        self.alerts = AlertStore(db)
        self.claims = ClaimStore(db)
        self.workers = WorkerStore(db)
        self.tokens = TokenStore(db)
        self.devices = DeviceStore(db)
        self.support = SupportStore(db)
        self.usage = UsageStore(db)
        self.history = PgHistoryStore(db)
        self.dashboard = PgDashboardStore(db)
        self.nodes = PgNodeStore(self.pg, node_id)
        self._listeners: list[Listener] = []

    @property
    def db(self) -> PgDatabase:
        return self.pg

    @property
    def location(self) -> str:
        return self.pg.path

    def open(self) -> None:
        try:
            self.pg.open()
        except (psycopg.OperationalError, StoreUnavailable) as exc:
            self.pg.close()
            raise StoreUnavailable(f"cannot use the database at {self.pg.path}: {exc}") from None

    def close(self) -> None:
        self.pg.close()

    def migrations(self) -> list[str]:
        rows = self.pg.fetchall("SELECT name FROM migrations ORDER BY applied_at_ms, name")
        return [str(row[0]) for row in rows]

    def on_commit(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def on_batch(self, listener: Callable[[int, float], None]) -> None:
        self.pg.on_commit = listener

    async def transact(self, work: Callable[[Tx], T], urgent: bool = False) -> T:
        # `work` may run more than once (after a deadlock); only the deadlines of the
        # run that committed are published. Writes are not queued here (each takes a
        # connection of the pool), so `urgent` changes nothing.
        def op(conn: Any) -> tuple[T, list[Deadline]]:
            tx = PgTx(cast(sqlite3.Connection, conn))
            result = work(tx)
            # Fire instants go to every node (delivered with the commit, dropped with a
            # rollback): whichever node is free when a cue falls due fires it.
            fires = [d for d in tx.deadlines if d.kind in SHARED_KINDS]
            for payload in notifications(self.pg.node_id, fires):
                conn.execute("SELECT pg_notify(?, ?)", (CHANNEL, payload))
            return result, tx.deadlines

        result, deadlines = await self.pg.write(op)
        if deadlines:
            for listener in self._listeners:
                listener(deadlines)
        return result

    async def shift_deadlines(self, delta_ms: int) -> None:
        def op(conn: Any) -> None:
            for sql in SHIFT_DEADLINES:
                conn.execute(sql, (delta_ms,))

        await self.pg.write(op)

    def healthy(self) -> bool:
        return self.pg.healthy()
