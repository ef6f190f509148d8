"""Checkpoints on a thread of their own: the WAL is copied back into the database file
beside the writer, never inside one of its commits.

With SQLite's automatic checkpoint, the commit that takes the WAL past 1,000 pages copies
them all into the file and syncs both files before it returns: for a burst's writes alone
that made the commits 64 of 146 µs per execution (`bench/sql_writes.py`; 34-45 µs with
checkpoints beside). The writer turns it off
(`wal_autocheckpoint=0`) and tells the `Checkpointer` after each commit; the checkpointer
gathers the commits of a short pause and runs one PASSIVE checkpoint on its own
connection. PASSIVE never takes the write lock, so the writer and the readers go on while
it copies, and SQLite restarts the WAL from its beginning at the first write after a
complete checkpoint, which keeps the file to about a pause's worth of commits.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

__all__ = ["PAUSE_S", "Checkpointer"]

log = logging.getLogger(__name__)

# Commits gathered into one checkpoint: each checkpoint syncs both files once.
PAUSE_S = 0.1


class Checkpointer:
    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._committed = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._done = threading.Condition()
        self._commits = 0  # commits told of
        self._copied = 0  # of those, the ones a checkpoint has copied

    def start(self) -> None:
        conn = self._connect()  # on the caller's thread: a failure to open is raised here
        self._thread = threading.Thread(
            target=self._main, args=(conn,), name="cueapi-lite-checkpoints", daemon=True
        )
        self._thread.start()

    def committed(self) -> None:
        """Called by the writer after each commit (on its thread)."""
        self._commits += 1
        self._committed.set()

    def wait(self, timeout: float) -> bool:
        """Block until every commit told of so far is in the database file (False if
        `timeout` seconds passed first)."""
        target = self._commits
        with self._done:
            return self._done.wait_for(lambda: self._copied >= target, timeout)

    def close(self) -> None:
        if self._thread is not None:
            self._closing.set()
            self._committed.set()
            self._thread.join()
            self._thread = None

    def _main(self, conn: sqlite3.Connection) -> None:
        try:
            # `close` sets `_closing` before it wakes the thread: if that wake-up is
            # cleared below along with a commit's, the loop's test still sees `_closing`.
            while not self._closing.is_set():
                self._committed.wait()
                if self._closing.wait(PAUSE_S):
                    break
                self._committed.clear()  # a commit from here on asks for the next one
                self._checkpoint(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        commits = self._commits
        try:
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:  # the next commit asks again
            log.warning("checkpoint of the write-ahead log failed", exc_info=True)
            return
        if busy or copied < frames:  # a reader still needed older pages: again soon
            self._committed.set()
            return
        with self._done:
            self._copied = commits
            self._done.notify_all()
