"""The SQLite file: connection settings, the one writer thread, and the read connection.

All writes go through `Writer`: a dedicated thread that drains its queue, runs every
queued operation inside one `BEGIN IMMEDIATE` transaction (each in its own savepoint, so
one failing operation does not undo its neighbours) and commits once: group commit.
Reads run on the event loop's thread against a second connection; in WAL mode they see
the last committed state and never wait for the writer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .checkpoints import Checkpointer
from .migrations import check_ours, migrate
from .vacuum import use_incremental_vacuum

__all__ = ["Database", "Writer", "connect", "select_rows"]

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
log = logging.getLogger(__name__)

_STOP = object()
_WAKE = object()  # an urgent op was queued beside the queue
# Operations committed together at most; bounds the latency one batch adds to the next.
MAX_BATCH = 2000


def connect(path: str, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """A connection with the project's pragmas; autocommit, transactions are explicit."""
    if path == ":memory:" or path.startswith("file::memory:"):
        raise ValueError("cueapi-lite needs a real database file (WAL does not work in memory)")
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    conn.row_factory = sqlite3.Row
    # Before WAL: switching to WAL writes the header, and auto_vacuum can only be chosen
    # for a file without one (an existing file keeps its mode; see vacuum.py).
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA foreign_keys=ON")
    # Temporary tables and the savepoint journal in memory: a savepoint that changes more
    # than 64 KiB (a slice of a burst's fires) would otherwise spill its journal to a
    # temporary file, a write per changed page (a quarter of the writer's time).
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn


def select_rows(conn: Any, columns: str, rest: str, params: Sequence[Any] = ()) -> list[Any]:
    """The rows of `SELECT {columns} {rest}`, each a sequence of its values in the order
    of `columns`, in no particular order (ORDER BY and LIMIT in `rest` choose the rows;
    a caller that needs an order sorts them).

    On SQLite the rows come back as one JSON array, read in one step. Every step of a
    statement hands the interpreter lock to whichever thread waits for it (the event
    loop, the writer) and then waits to take it back: reading rows a step each kept the
    two threads waiting on each other (see the design notes). On another backend's
    connection (PostgreSQL's fetches every row at once) a plain SELECT.
    """
    if not isinstance(conn, sqlite3.Connection):
        return list(conn.execute(f"SELECT {columns} {rest}", params).fetchall())
    sql = (
        "SELECT group_concat(json_row, ',')"  # noqa: S608
        f" FROM (SELECT json_array({columns}) AS json_row {rest})"
    )
    (packed,) = conn.execute(sql, params).fetchone()
    rows: list[Any] = json.loads(f"[{packed}]") if packed else []
    return rows


class Writer:
    """One thread owns the write connection; `run(op)` queues `op(conn)` for group commit.

    Contract: `op` runs on the writer thread inside a transaction and must not block on
    anything but SQLite. Its return value resolves the awaiting future after COMMIT; if it
    raises, only its own savepoint is rolled back and the exception is re-raised to its
    caller. If COMMIT itself fails, every operation of that batch fails.

    An `urgent` op (a cue's fire that is due now) goes before the ops still queued, is
    committed with only the other urgent ops, and a batch being written is committed
    early for it: it waits for the op being run, not for a burst's whole batch before it
    nor for the ops queued behind it.
    """

    def __init__(self, path: str, synchronous: str = "NORMAL") -> None:
        self._path = path
        self._synchronous = synchronous
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._urgent: collections.deque[Any] = collections.deque()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.batches = 0
        self.operations = 0
        # Called on the writer thread after each batch with (operations, seconds).
        self.on_commit: Callable[[int, float], None] | None = None
        # Called on the writer thread after each commit (it tells the checkpointer).
        self.committed: Callable[[], None] = lambda: None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="cueapi-lite-writer", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    async def run(
        self, op: Callable[[sqlite3.Connection], T], savepoint: bool = True, urgent: bool = False
    ) -> T:
        """Queue `op`; `savepoint=False` is for an op of one statement, which is atomic
        by itself (it saves two statements per op on the hot path)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if urgent:
            self._urgent.append((op, future, loop, savepoint))
            self._queue.put(_WAKE)
        else:
            self._queue.put((op, future, loop, savepoint))
        return await future

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    def _main(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            check_ours(self._path)
            conn = connect(self._path, self._synchronous)
            use_incremental_vacuum(conn)
            migrate(conn)
            conn.execute("PRAGMA wal_autocheckpoint=0")  # see checkpoints.py
        except BaseException as exc:
            if conn is not None:
                conn.close()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        waiting: collections.deque[Any] = collections.deque()  # taken from the queue, in order
        stop = False
        try:
            while not stop or waiting or self._urgent:
                if not stop and not waiting and not self._urgent:
                    item = self._queue.get()
                    stop = item is _STOP
                    if item is not _STOP and item is not _WAKE:
                        waiting.append(item)
                while not stop:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    stop = more is _STOP
                    if more is not _STOP and more is not _WAKE:
                        waiting.append(more)
                batch = []
                while self._urgent:
                    batch.append(self._urgent.popleft())
                # Urgent ops are committed on their own: the queued ops written with them
                # would hold their commit (and their callers) for as long as those take.
                if not batch:
                    batch = [waiting.popleft() for _ in range(min(len(waiting), MAX_BATCH))]
                if batch:
                    done = self._commit(conn, batch)
                    waiting.extendleft(reversed(batch[done:]))  # cut short: they go next
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: Sequence[Any]) -> int:
        """Run the batch's ops in one transaction; commit early (after at least one op)
        when an urgent op is waiting. Returns how many ops ran."""
        outcomes: list[tuple[Any, Any, BaseException | None]] = []
        started = time.perf_counter()
        ran = len(batch)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for index, (op, future, loop, savepoint) in enumerate(batch):
                if index and self._urgent:
                    ran = index
                    break
                if savepoint:
                    conn.execute("SAVEPOINT op")
                try:
                    result = op(conn)
                except Exception as exc:
                    if savepoint:
                        conn.execute("ROLLBACK TO op")
                        conn.execute("RELEASE op")
                    outcomes.append(((future, loop), None, exc))
                else:
                    if savepoint:
                        conn.execute("RELEASE op")
                    outcomes.append(((future, loop), result, None))
            conn.execute("COMMIT")
            self.committed()
        except Exception as exc:  # the batch as a whole failed (disk full, I/O error)
            log.exception("write batch failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [((future, loop), None, exc) for _op, future, loop, _sp in batch[:ran]]
        self.batches += 1
        self.operations += ran
        if self.on_commit is not None:
            self.on_commit(ran, time.perf_counter() - started)
        by_loop: dict[Any, list[tuple[Any, Any, BaseException | None]]] = {}
        for (future, loop), result, error in outcomes:
            by_loop.setdefault(loop, []).append((future, result, error))
        for loop, items in by_loop.items():
            # A closed loop raises RuntimeError: nobody is waiting for these any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, items)
        return ran


def _resolve(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in items:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class Database:
    """The read connection plus the writer, for one database file."""

    def __init__(self, path: str, synchronous: str = "NORMAL") -> None:
        self.path = str(Path(path))
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.writer = Writer(self.path, synchronous)
        self.checkpointer = Checkpointer(lambda: connect(self.path))
        self.writer.committed = self.checkpointer.committed
        self._read: sqlite3.Connection | None = None

    def open(self) -> None:
        self.writer.start()  # creates the file and applies migrations first
        self._read = connect(self.path)
        self.checkpointer.start()

    def close(self) -> None:
        self.writer.close()
        self.checkpointer.close()
        if self._read is not None:
            self._read.close()
            self._read = None

    def healthy(self) -> bool:
        return self._read is not None and self.writer.alive

    @property
    def read(self) -> sqlite3.Connection:
        if self._read is None:
            raise RuntimeError("database is not open")
        return self._read

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one committed state (a WAL read transaction): a total and
        the page it belongs to agree. Synchronous inside, so nothing interleaves."""
        self.read.execute("BEGIN")
        try:
            yield
        finally:
            self.read.execute("COMMIT")

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.read.execute(sql, params).fetchone()
        return row

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return list(self.read.execute(sql, params).fetchall())

    def select_rows(self, columns: str, rest: str, params: Sequence[Any] = ()) -> list[Any]:
        """`select_rows` on the read connection."""
        return select_rows(self.read, columns, rest, params)

    async def write(
        self, op: Callable[[sqlite3.Connection], T], savepoint: bool = True, urgent: bool = False
    ) -> T:
        return await self.writer.run(op, savepoint, urgent)
