"""The file's vacuum mode: freed pages go back to the file system after pruning."""

from __future__ import annotations

import logging
import sqlite3

__all__ = ["use_incremental_vacuum"]

log = logging.getLogger(__name__)


def use_incremental_vacuum(conn: sqlite3.Connection) -> None:
    """Make the file give freed pages back to the file system on `incremental_vacuum`.

    `auto_vacuum` can only be chosen before the first table exists, or by rebuilding the
    file with VACUUM: a new file gets it at once, an existing one is rebuilt once (logged;
    it needs free disk space the size of the file). A rebuild that cannot run now (another
    process holds the file) is tried again at the next start.
    """
    if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
        return
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    has_tables = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'").fetchone()
    if has_tables is None:
        return
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    log.info("rebuilding the database once for incremental vacuum (%d pages)", pages)
    try:
        conn.execute("VACUUM")
    except sqlite3.OperationalError as exc:
        log.warning("could not rebuild the database for incremental vacuum now: %s", exc)
