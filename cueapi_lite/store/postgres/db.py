"""The PostgreSQL connection layer: a pool for write transactions, one read connection,
and the few spellings where PostgreSQL's SQL differs from the statements the backends
share.

The resource modules of `store/sqlite/` are written in SQL both databases understand;
`translate` rewrites what differs (placeholders, `json_extract`, `IS ?`, `instr`,
`CROSS JOIN`, the `/*for update*/` lock marks) once per statement. A write transaction
runs at READ COMMITTED on a thread of its own: the rows a rule reads before it writes
are read `FOR UPDATE`, so concurrent transactions on one row queue instead of failing;
one that loses a deadlock is run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, TypeVar

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool

from .migrations import migrate

__all__ = ["PgConnection", "PgDatabase", "Row", "redacted", "translate"]

T = TypeVar("T")
log = logging.getLogger(__name__)
# Write transactions in flight at once (each holds one pooled connection and a thread).
WRITERS = 16
# A deadlock (or serialization) failure means PostgreSQL aborted this transaction to let
# another go on: run it again, a bounded number of times, with a short growing pause.
MAX_RETRIES = 30

_JSON = re.compile(r"json_extract\(([\w.]+), '\$\.(\w+)'\)")


@lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """The statement in PostgreSQL's spelling."""
    sql = _JSON.sub(r"(\1::jsonb ->> '\2')", sql)
    sql = sql.replace(" IS ?", " IS NOT DISTINCT FROM ?")
    sql = sql.replace("instr(", "strpos(").replace("CROSS JOIN", "JOIN")
    sql = sql.replace("/*for update skip locked*/", "FOR UPDATE SKIP LOCKED")
    sql = sql.replace("/*for update*/", "FOR UPDATE")
    return sql.replace("%", "%%").replace("?", "%s")


def redacted(url: str) -> str:
    """The URL without its password (for logs and `location`)."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


class Row(tuple[Any, ...]):
    """A result row readable by position, slice and column name, like `sqlite3.Row`."""

    _names: dict[str, int]  # (a tuple subclass cannot have slots: it keeps a __dict__)

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    description = cursor.description or []
    names: dict[str, int] = {}
    for index, column in enumerate(description):
        names.setdefault(column.name, index)  # the first of a repeated name wins, as in SQLite
    return lambda values: Row(values, names)


class _Cursor:
    """What the shared statements read from a cursor."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor
        self.rowcount = cursor.rowcount

    def fetchone(self) -> Any:
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PgConnection:
    """A connection inside one transaction, with `sqlite3.Connection`'s `execute`.

    A constraint violation is raised as `sqlite3.IntegrityError`, the exception the
    shared statements handle (the transaction is aborted either way)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        try:
            cursor = self._conn.execute(translate(sql), tuple(params))
        except errors.IntegrityError as exc:
            raise sqlite3.IntegrityError(str(exc)) from exc
        return _Cursor(cursor)

    def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> _Cursor:
        cursor = self._conn.cursor()
        total = 0
        try:
            # One statement per row, so rowcount adds up what was written (as in SQLite).
            for params in seq:
                cursor.execute(translate(sql), tuple(params))
                total += max(cursor.rowcount, 0)
        except errors.IntegrityError as exc:
            raise sqlite3.IntegrityError(str(exc)) from exc
        result = _Cursor(cursor)
        result.rowcount = total
        return result


class PgDatabase:
    """A pool of write connections plus one read connection for one database URL."""

    def __init__(self, url: str, node_id: str = "") -> None:
        self.url = url
        # Every pooled connection names its node: executions it inserts are that node's.
        self.node_id = node_id
        self.path = redacted(url)
        self._pool: ConnectionPool | None = None
        self._read: psycopg.Connection[Any] | None = None
        self._read_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self.on_commit: Callable[[int, float], None] | None = None
        self.batches = 0
        self.operations = 0

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.row_factory = _row_factory
        if self.node_id:
            conn.execute("SELECT set_config('cueapi.node', %s, false)", (self.node_id,))
            conn.commit()

    def open(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            migrate(conn)
        self._pool = ConnectionPool(
            self.url, min_size=2, max_size=WRITERS, configure=self._configure, open=True,
            kwargs={"autocommit": False},
        )  # fmt: skip
        self._pool.wait(timeout=30)
        self._read = psycopg.connect(self.url, autocommit=True)
        self._read.row_factory = _row_factory
        self._executor = ThreadPoolExecutor(WRITERS, thread_name_prefix="cueapi-lite-pg")

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._read is not None:
            self._read.close()
            self._read = None

    def healthy(self) -> bool:
        return self._read is not None and not self._read.closed and self._pool is not None

    @property
    def read(self) -> psycopg.Connection[Any]:
        if self._read is None:
            raise RuntimeError("database is not open")
        return self._read

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one committed state (a REPEATABLE READ transaction): a total
        and the page it belongs to agree."""
        with self._read_lock, self.read.transaction():
            self.read.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.read.execute(translate(sql), tuple(params)).fetchone()

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.read.execute(translate(sql), tuple(params)).fetchall()

    def select_rows(self, columns: str, rest: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of `SELECT {columns} {rest}` (see the SQLite `select_rows`)."""
        return self.fetchall(f"SELECT {columns} {rest}", params)

    async def write(
        self, op: Callable[[Any], T], savepoint: bool = True, urgent: bool = False
    ) -> T:
        """Run `op(connection)` in one transaction on a writer thread; again (from the
        start) when PostgreSQL broke a deadlock by aborting it."""
        if self._executor is None:
            raise RuntimeError("database is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, op)

    def _run(self, op: Callable[[Any], T]) -> T:
        assert self._pool is not None
        for attempt in range(MAX_RETRIES):
            started = time.perf_counter()
            try:
                with self._pool.connection() as conn:
                    try:
                        result = op(PgConnection(conn))
                    except BaseException:
                        conn.rollback()
                        raise
                    conn.commit()
            except (errors.SerializationFailure, errors.DeadlockDetected):
                time.sleep(min(0.001 * 2**attempt, 0.05))
                continue
            except sqlite3.IntegrityError as exc:
                if isinstance(exc.__cause__, errors.SerializationFailure):
                    continue
                raise
            self.batches += 1
            self.operations += 1
            if self.on_commit is not None:
                self.on_commit(1, time.perf_counter() - started)
            return result
        raise RuntimeError(f"a write transaction was aborted {MAX_RETRIES} times in a row")
