"""Checkpoints run beside the writer: every commit reaches the database file itself, and
a reader holding an old snapshot delays the copy without blocking a write."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cueapi_lite.store.sqlite.checkpoints import Checkpointer
from cueapi_lite.store.sqlite.db import Database, connect

ROWS_PER_COMMIT = 100


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(str(tmp_path / "cueapi-lite.db"))
    database.open()
    await database.write(lambda conn: conn.execute("CREATE TABLE notes (n INTEGER, text TEXT)"))
    yield database
    database.close()


async def write_notes(db: Database, commits: int) -> None:
    for commit in range(commits):
        rows = [(commit * ROWS_PER_COMMIT + n, "x" * 1000) for n in range(ROWS_PER_COMMIT)]
        await db.write(
            lambda conn, rows=rows: conn.executemany("INSERT INTO notes VALUES (?, ?)", rows)
        )


def notes_in_file_alone(db: Database, tmp_path: Path) -> int:
    """The rows a copy of the database file holds without its write-ahead log."""
    alone = tmp_path / "alone.db"
    shutil.copyfile(db.path, alone)
    conn = sqlite3.connect(alone)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM notes").fetchone()[0])
    finally:
        conn.close()


async def test_the_writers_commits_reach_the_database_file(db: Database, tmp_path: Path) -> None:
    # About 3 MB: past the 1,000 pages at which SQLite would checkpoint in a commit.
    await write_notes(db, 30)
    assert db.checkpointer.wait(30)
    assert notes_in_file_alone(db, tmp_path) == 30 * ROWS_PER_COMMIT
    # The writer does not checkpoint itself: its connection leaves that to the thread.
    setting = await db.write(lambda conn: conn.execute("PRAGMA wal_autocheckpoint").fetchone())
    assert tuple(setting) == (0,)


async def test_a_reader_on_an_old_snapshot_delays_the_copy_but_not_the_writes(
    db: Database, tmp_path: Path
) -> None:
    await write_notes(db, 1)
    assert db.checkpointer.wait(30)
    reader = connect(db.path)
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM notes").fetchone()[0] == ROWS_PER_COMMIT
    await write_notes(db, 5)  # not held up by the reader
    assert not db.checkpointer.wait(0.5)  # its snapshot still needs the older pages
    assert notes_in_file_alone(db, tmp_path) == ROWS_PER_COMMIT
    reader.execute("COMMIT")
    reader.close()
    assert db.checkpointer.wait(30)  # tried again until complete, with no new commit
    assert notes_in_file_alone(db, tmp_path) == 6 * ROWS_PER_COMMIT


def test_closing_as_the_checkpointer_wakes_for_a_commit_ends_its_thread(
    tmp_path: Path,
) -> None:
    # The race that hung a server's shutdown: `close` signals the thread in the instant
    # between its wake-up for a commit and its clearing of that wake-up, then waits for
    # it to end. Here close's two signals land in that instant each time.
    checkpointer = Checkpointer(lambda: connect(str(tmp_path / "race.db")))
    wake = checkpointer._committed
    real_clear = wake.clear

    def close_lands_first() -> None:
        checkpointer._closing.set()
        wake.set()
        real_clear()

    wake.clear = close_lands_first  # type: ignore[method-assign]
    checkpointer.start()
    thread = checkpointer._thread
    assert thread is not None
    checkpointer.committed()
    thread.join(10)
    assert not thread.is_alive(), "the checkpointer slept on after close"
