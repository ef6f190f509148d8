"""Copy a whole database between SQLite and PostgreSQL (either way), then compare counts.

Every table, every column both schemas have, in the source's row order (so pages keep
their order); the counters the triggers keep are copied as they were (deleting a cue
does not give its runs back, so they cannot be recomputed from the rows). The source
must not be in use by a server (a SQLite file's lock, a PostgreSQL database's live
nodes), the target must be empty (a new SQLite file).
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from typing import Any

import psycopg

from .lock import running_server
from .postgres import PostgresStore
from .postgres.db import redacted
from .postgres.nodes import inspect
from .sqlite import SqliteStore

__all__ = ["Copied", "CopyError", "copy_postgres_to_sqlite", "copy_sqlite_to_postgres"]

# Parents before children (foreign keys); the trigger-kept counters last.
TABLES = (
    "users", "api_keys", "cues", "executions", "workers", "auth_tokens", "device_codes",
    "support_tickets", "alerts", "alert_outbox", "cue_counts", "execution_counts",
)  # fmt: skip
_COUNTERS = ("cue_counts", "execution_counts")
_BOOLEANS = {("users", "email_alerts")}
_BATCH = 1000


class CopyError(Exception):
    """The copy cannot start (or did not match): nothing is left half-done unnoticed."""


@dataclasses.dataclass(frozen=True, slots=True)
class Copied:
    table: str
    source_rows: int
    target_rows: int


def copy_sqlite_to_postgres(source: str, target: str) -> list[Copied]:
    """Copy `source` (a SQLite file) into `target` (a postgresql:// URL). Returns the
    row counts per table; raises CopyError when they differ or the copy cannot start."""
    holder = running_server(source)
    if holder is not None:
        raise CopyError(f"a server is running on {source} ({holder.describe()}); stop it first")
    try:
        lite = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise CopyError(f"cannot open {source}: {exc}") from None
    store = PostgresStore(target)
    store.open()  # creates the schema (migrations) on an empty database
    store.close()
    try:
        with psycopg.connect(target) as pg:
            for table in TABLES:
                (rows,) = pg.execute(f"SELECT COUNT(*) FROM {table}").fetchone() or (0,)  # noqa: S608
                if rows and table not in _COUNTERS:
                    raise CopyError(f"{redacted(target)} is not empty ({table} has rows)")
            with pg.transaction():
                for table in TABLES:
                    _copy_table(lite, pg, table)
                _restart_sequences(pg)
            counts = [
                Copied(table, _count(lite.execute, table), _count(pg.execute, table))
                for table in TABLES
            ]
    finally:
        lite.close()
    return _compared(counts)


def copy_postgres_to_sqlite(source: str, target: str) -> list[Copied]:
    """Copy `source` (a postgresql:// URL) into `target` (a new SQLite file). Returns the
    row counts per table; raises CopyError when they differ or the copy cannot start."""
    if os.path.exists(target) and os.path.getsize(target) > 0:
        raise CopyError(f"{target} already exists; give the name of a new file")
    try:
        _names, nodes = inspect(source)
    except psycopg.Error as exc:
        raise CopyError(f"cannot read {redacted(source)}: {exc}") from None
    live = [n for n in nodes if n.alive]
    if live:
        raise CopyError(
            f"{len(live)} node(s) run on {redacted(source)}"
            f" ({', '.join(f'pid {n.pid} on {n.host}' for n in live)}); stop them first"
        )
    store = SqliteStore(target)
    store.open()  # the schema, on a new file
    store.close()
    lite = sqlite3.connect(target, isolation_level=None)
    try:
        with psycopg.connect(source) as pg:
            lite.execute("BEGIN IMMEDIATE")
            try:
                for table in TABLES:
                    _copy_back(pg, lite, table)
                lite.execute("COMMIT")
            except BaseException:
                lite.execute("ROLLBACK")
                raise
            counts = [
                Copied(table, _count(pg.execute, table), _count(lite.execute, table))
                for table in TABLES
            ]
    finally:
        lite.close()
    return _compared(counts)


def _compared(counts: list[Copied]) -> list[Copied]:
    """The counts, when every table has as many rows in the target as in the source."""
    wrong = [c for c in counts if c.source_rows != c.target_rows]
    if wrong:
        raise CopyError(
            "row counts differ: "
            + ", ".join(f"{c.table} {c.source_rows} -> {c.target_rows}" for c in wrong)
        )
    return counts


def _copy_back(pg: psycopg.Connection[Any], lite: sqlite3.Connection, table: str) -> None:
    source_columns = [
        str(row[0])
        for row in pg.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
            (table,),
        ).fetchall()
    ]
    target_columns = {row[1] for row in lite.execute(f"PRAGMA table_info({table})")}
    columns = [c for c in source_columns if c in target_columns and c != "rowid"]
    names = ", ".join(columns)
    if table in _COUNTERS:
        lite.execute(f"DELETE FROM {table}")  # noqa: S608 - kept by the triggers: replace
    order = " ORDER BY rowid" if "rowid" in source_columns else ""
    insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608
    with pg.cursor(name=f"copy_{table}") as rows:  # server-side: big tables in batches
        rows.execute(f"SELECT {names} FROM {table}{order}".encode())  # noqa: S608
        while batch := rows.fetchmany(_BATCH):
            lite.executemany(insert, batch)


def _count(execute: Any, table: str) -> int:
    row = execute(f"SELECT COUNT(*) FROM {table}").fetchone()  # noqa: S608
    return int(row[0]) if row else 0


def _copy_table(lite: sqlite3.Connection, pg: psycopg.Connection[Any], table: str) -> None:
    source_columns = [row[1] for row in lite.execute(f"PRAGMA table_info({table})")]
    target_columns = {
        row[0]
        for row in pg.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = %s",
            (table,),
        ).fetchall()
    }
    columns = [c for c in source_columns if c in target_columns and c != "rowid"]
    booleans = [i for i, c in enumerate(columns) if (table, c) in _BOOLEANS]
    names = ", ".join(columns)
    if table in _COUNTERS:
        pg.execute(f"DELETE FROM {table}")  # noqa: S608 - recomputed by the triggers: replace
    order = "" if table in _COUNTERS else " ORDER BY rowid"
    cursor = lite.execute(f"SELECT {names} FROM {table}{order}")  # noqa: S608
    insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"  # noqa: S608
    with pg.cursor() as out:
        while batch := cursor.fetchmany(_BATCH):
            rows = [list(row) for row in batch]
            for row in rows:
                for index in booleans:
                    row[index] = bool(row[index])
            out.executemany(insert, rows)


def _restart_sequences(pg: psycopg.Connection[Any]) -> None:
    """Ids copied explicitly: the next new id follows the largest one copied."""
    for table, column in (("support_tickets", "id"), ("alert_outbox", "id")):
        pg.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"  # noqa: S608
            f" COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
        )
