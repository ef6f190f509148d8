"""Backup and restore of the database file, safe while a server runs.

`backup` copies through SQLite's online backup API in one step, inside one read
transaction: the copy is the state of one commit, however busy the server is (WAL lets
it keep writing meanwhile). The copy goes to a temporary file that is checked and then
renamed, so a half-written backup never has the final name. `restore` holds the
server lock while it swaps files, so no server can start on (or be running on) the file
it replaces; the replaced file is kept beside it as `<db>.before-restore`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from .store import is_postgres
from .store.lock import ServerLock

__all__ = ["BackupError", "backup", "restore"]


class BackupError(Exception):
    """The backup or restore could not be done; the message says why and what to do."""


def _sqlite_file(db: str) -> None:
    # A URL would otherwise be taken for a relative path (`postgresql:/...` folders).
    if is_postgres(db):
        raise BackupError(
            "backup and restore copy a SQLite file; for a PostgreSQL database use"
            " pg_dump and pg_restore"
        )


def _check(path: str) -> int:
    """`quick_check` a cueapi-lite database; returns its number of applied migrations."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
            migrations = conn.execute("SELECT COUNT(*) FROM migrations").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a usable cueapi-lite database: {exc}") from None
    if result != "ok":
        raise BackupError(f"{path} failed its integrity check: {result}")
    return int(migrations)


def backup(db: str, dest: str) -> int:
    """Copy `db` to `dest` (which must not exist); returns the size of the copy."""
    _sqlite_file(db)
    if not Path(db).is_file():
        raise BackupError(f"no database at {db}")
    if Path(dest).exists():
        raise BackupError(f"{dest} exists already; choose a new name")
    part = f"{dest}.part"
    source = sqlite3.connect(db, timeout=5.0)
    try:
        target = sqlite3.connect(part)
        try:
            source.backup(target)  # all pages in one step: one consistent snapshot
            # The copy stands alone: no write-ahead log beside it.
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    except sqlite3.Error as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
        raise BackupError(f"backup failed: {exc}") from None
    finally:
        source.close()
    try:
        _check(part)
    except BackupError:
        os.unlink(part)
        raise
    os.replace(part, dest)
    return Path(dest).stat().st_size


def restore(source: str, db: str) -> str | None:
    """Put the backup `source` in place as `db`; returns where the replaced file was kept
    (None when there was none). Refuses while a server runs on `db`."""
    _sqlite_file(db)
    _check(source)
    lock = ServerLock(db)
    lock.acquire(datetime.now(UTC).isoformat())  # raises AlreadyRunning
    try:
        kept = None
        if Path(db).exists():
            # Fold the old file's write-ahead log in, so no stale -wal is left to be
            # replayed into the restored file.
            conn = sqlite3.connect(db)
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
            kept = f"{db}.before-restore"
            os.replace(db, kept)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(db + suffix)
        part = f"{db}.restoring"
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(part)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
        os.replace(part, db)
        return kept
    finally:
        lock.release()
