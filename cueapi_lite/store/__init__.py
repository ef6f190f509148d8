"""Storage: the store's contract (`contract`), its records (`records`) and the backends.

`store_for(db)` opens the backend a database setting names: a file path is SQLite (the
default). Services see only `Store` and the records; nothing outside this package sees
a cursor or SQL.
"""

from __future__ import annotations

from .contract import DashboardStore, NodeStore, Store, Tx
from .records import (
    LOGIN_TOKEN,
    SESSION_TOKEN,
    AlertFilters,
    AttemptResult,
    Claimable,
    CueAfterRun,
    CueHealthRow,
    CueLimitReached,
    CueState,
    Deadline,
    DeviceCode,
    DuplicateName,
    EvidenceRejected,
    ExecutionFilters,
    ExecutionRef,
    Finished,
    FirePlan,
    KeyLimitReached,
    KeyMatch,
    KeyRecord,
    LastActiveKey,
    LeaseCheck,
    NewCredentials,
    NodeRecord,
    OutboxItem,
    OutcomeCount,
    Preferences,
    RecentExecution,
    Refusal,
    SessionMatch,
    StoreUnavailable,
    Ticket,
    TicketLimitReached,
    WorkerRecord,
)

__all__ = [
    "LOGIN_TOKEN",
    "SESSION_TOKEN",
    "AlertFilters",
    "AttemptResult",
    "Claimable",
    "CueAfterRun",
    "CueHealthRow",
    "CueLimitReached",
    "CueState",
    "DashboardStore",
    "Deadline",
    "DeviceCode",
    "DuplicateName",
    "EvidenceRejected",
    "ExecutionFilters",
    "ExecutionRef",
    "Finished",
    "FirePlan",
    "KeyLimitReached",
    "KeyMatch",
    "KeyRecord",
    "LastActiveKey",
    "LeaseCheck",
    "NewCredentials",
    "NodeRecord",
    "NodeStore",
    "OutboxItem",
    "OutcomeCount",
    "Preferences",
    "RecentExecution",
    "Refusal",
    "SessionMatch",
    "Store",
    "StoreUnavailable",
    "Ticket",
    "TicketLimitReached",
    "Tx",
    "WorkerRecord",
    "is_postgres",
    "store_for",
]


def is_postgres(db: str) -> bool:
    """Whether a `db` setting names a PostgreSQL database (else it is a SQLite file)."""
    return db.startswith(("postgresql://", "postgres://"))


def store_for(db: str, synchronous: str = "NORMAL") -> Store:
    """The store for a `db` setting: a `postgresql://` URL, or a SQLite file path."""
    if is_postgres(db):
        try:
            from .postgres import PostgresStore
        except ImportError as exc:
            raise RuntimeError(
                "a postgresql:// database needs psycopg: pip install 'cueapi-lite[postgresql]'"
            ) from exc
        return PostgresStore(db)
    from .sqlite import SqliteStore

    return SqliteStore(db, synchronous)
