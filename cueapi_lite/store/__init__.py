"""Storage: all SQL lives in this package, behind per-resource classes.

`Store(path)` opens one SQLite file (WAL, one writer thread with group commit, a read
connection on the event loop's thread). Services call its methods with records and get
records back; nothing outside this package sees a cursor or SQL.
"""

from __future__ import annotations

from .claims import Claimable, ClaimStore, LeaseCheck
from .cues import CueStore, DuplicateName
from .db import Database
from .executions import AttemptResult, ExecutionFilters, ExecutionStore, Finished, FirePlan
from .users import KeyMatch, UserStore
from .workers import WorkerRecord, WorkerStore

__all__ = [
    "AttemptResult",
    "Claimable",
    "DuplicateName",
    "ExecutionFilters",
    "Finished",
    "FirePlan",
    "KeyMatch",
    "LeaseCheck",
    "Store",
    "WorkerRecord",
]


class Store:
    """The database of one cueapi-lite instance."""

    def __init__(self, path: str, synchronous: str = "NORMAL") -> None:
        self.db = Database(path, synchronous)
        self.users = UserStore(self.db)
        self.cues = CueStore(self.db)
        self.executions = ExecutionStore(self.db)
        self.claims = ClaimStore(self.db)
        self.workers = WorkerStore(self.db)

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
