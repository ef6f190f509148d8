"""Read-only looks at a database file for `doctor`, on a connection of its own.

Opened read-only (`mode=ro`): inspecting a file never creates or changes it.
"""

from __future__ import annotations

import sqlite3

__all__ = ["active_callback_urls", "applied_migrations", "open_read_only", "quick_check"]

MAX_CALLBACKS = 200


def open_read_only(path: str) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)


def quick_check(conn: sqlite3.Connection) -> str:
    """`ok`, or the first problem SQLite found."""
    return str(conn.execute("PRAGMA quick_check").fetchone()[0])


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT name FROM migrations ORDER BY name")]


def active_callback_urls(conn: sqlite3.Connection) -> list[str]:
    """The distinct callback URLs of active webhook cues (at most MAX_CALLBACKS)."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT json_extract(callback, '$.url') FROM cues"
            " WHERE status = 'active' AND transport = 'webhook'"
            " AND json_extract(callback, '$.url') IS NOT NULL LIMIT ?",
            (MAX_CALLBACKS,),
        )
    ]
