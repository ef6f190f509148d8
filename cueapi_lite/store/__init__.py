"""Storage: all SQL lives in this package, behind per-resource classes.

`Store(path)` opens one SQLite file (WAL, one writer thread with group commit, a read
connection on the event loop's thread). Services call its methods with records and get
records back; nothing outside this package sees a cursor or SQL.
"""

from __future__ import annotations

from .cues import CueLimitReached, CueStore, DuplicateName
from .db import Database
from .devices import DeviceCode, DeviceStore, NewCredentials
from .executions import AttemptResult, ExecutionFilters, ExecutionStore, Finished, FirePlan
from .sessions import SessionMatch, TokenStore
from .support import SupportStore, Ticket, TicketLimitReached
from .usage import UsageStore
from .users import KeyLimitReached, KeyMatch, KeyRecord, LastActiveKey, Preferences, UserStore

__all__ = [
    "AttemptResult",
    "CueLimitReached",
    "DeviceCode",
    "DuplicateName",
    "ExecutionFilters",
    "Finished",
    "FirePlan",
    "KeyLimitReached",
    "KeyMatch",
    "KeyRecord",
    "LastActiveKey",
    "NewCredentials",
    "Preferences",
    "SessionMatch",
    "Store",
    "Ticket",
    "TicketLimitReached",
]


class Store:
    """The database of one cueapi-lite instance."""

    def __init__(self, path: str, synchronous: str = "NORMAL") -> None:
        self.db = Database(path, synchronous)
        self.users = UserStore(self.db)
        self.cues = CueStore(self.db)
        self.executions = ExecutionStore(self.db)
        # Accounts (issue 5): login tokens and sessions, device codes, tickets, usage.
        self.tokens = TokenStore(self.db)
        self.devices = DeviceStore(self.db)
        self.support = SupportStore(self.db)
        self.usage = UsageStore(self.db)

    def open(self) -> None:
        """Create the file if needed, apply migrations, start the writer."""
        self.db.open()

    def close(self) -> None:
        self.db.close()

    def healthy(self) -> bool:
        try:
            self.db.fetchone("SELECT 1")
        except Exception:
            return False
        return True
