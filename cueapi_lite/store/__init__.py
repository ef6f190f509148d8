"""Storage: all SQL lives in this package, behind per-resource classes.

`Store(path)` opens one SQLite file (WAL, one writer thread with group commit, a read
connection on the event loop's thread). Services call its methods with records and get
records back; nothing outside this package sees a cursor or SQL.
"""

from __future__ import annotations

import sqlite3

from .sqlite.alerts import AlertFilters, AlertStore
from .sqlite.claims import Claimable, ClaimStore, LeaseCheck
from .sqlite.cues import CueLimitReached, CueStore, DuplicateName
from .sqlite.dashboard import CueHealthRow, DashboardStore, OutcomeCount, RecentExecution
from .sqlite.db import Database
from .sqlite.devices import DeviceCode, DeviceStore, NewCredentials
from .sqlite.executions import AttemptResult, ExecutionFilters, ExecutionStore, Finished, FirePlan
from .sqlite.history import HistoryStore
from .sqlite.outcomes import EvidenceRejected, OutcomeStore
from .sqlite.sessions import SessionMatch, TokenStore
from .sqlite.support import SupportStore, Ticket, TicketLimitReached
from .sqlite.usage import UsageStore
from .sqlite.users import (
    KeyLimitReached,
    KeyMatch,
    KeyRecord,
    LastActiveKey,
    Preferences,
    UserStore,
)
from .sqlite.workers import WorkerRecord, WorkerStore

__all__ = [
    "AlertFilters",
    "AttemptResult",
    "Claimable",
    "CueHealthRow",
    "CueLimitReached",
    "DashboardStore",
    "DeviceCode",
    "DuplicateName",
    "EvidenceRejected",
    "ExecutionFilters",
    "Finished",
    "FirePlan",
    "HistoryStore",
    "KeyLimitReached",
    "KeyMatch",
    "KeyRecord",
    "LastActiveKey",
    "LeaseCheck",
    "NewCredentials",
    "OutcomeCount",
    "Preferences",
    "RecentExecution",
    "SessionMatch",
    "Store",
    "Ticket",
    "TicketLimitReached",
    "WorkerRecord",
]


class Store:
    """The database of one cueapi-lite instance."""

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

    def open(self) -> None:
        """Create the file if needed, apply migrations, start the writer."""
        self.db.open()

    def close(self) -> None:
        self.db.close()

    async def shift_deadlines(self, delta_ms: int) -> None:
        """Move every relative deadline by `delta_ms` (after the wall clock jumped back):
        retries, leases, outcome deadlines, unclaimed waits, missed-window starts and
        unsent alerts keep the time they had left. Cue fire times are wall-clock
        instants and stay."""

        def op(conn: sqlite3.Connection) -> None:
            for sql in (
                "UPDATE executions SET next_retry_ms = next_retry_ms + ? WHERE status = 'retrying'",
                "UPDATE executions SET lease_expires_at_ms = lease_expires_at_ms + ?"
                " WHERE status = 'delivering' AND lease_expires_at_ms IS NOT NULL",
                "UPDATE executions SET outcome_deadline_ms = outcome_deadline_ms + ?"
                " WHERE outcome IS NULL AND outcome_state IS NULL"
                " AND outcome_deadline_ms IS NOT NULL",
                "UPDATE executions SET updated_at_ms = updated_at_ms + ?"
                " WHERE status = 'pending' AND transport = 'worker'",
                "UPDATE cues SET watch_from_ms = watch_from_ms + ?, version = version + 1"
                " WHERE status = 'active'",
                "UPDATE alert_outbox SET next_attempt_ms = next_attempt_ms + ?"
                " WHERE status = 'pending'",
            ):
                conn.execute(sql, (delta_ms,))

        await self.db.write(op)

    def healthy(self) -> bool:
        """Open, with its writer running (checked on every `/status`: no query)."""
        return self.db.healthy()
