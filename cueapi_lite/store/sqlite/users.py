"""Users, their preferences and their API keys. Keys are stored as SHA-256 hashes only.

A key is `active`, `rotated` (replaced by E21; answers 401 `key_rotated`) or `revoked`
(E26). Rotated and revoked keys stay listed until `revoked_at_ms` is 30 days old, when the
next key change of any user purges them.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ...credentials import new_user_id
from ...models import User
from ..records import KeyMatch, KeyRecord, Preferences
from .db import Database
from .rows import KEY_COLUMNS, key_from_row, user_from_row
from .tx import SqliteTx

__all__ = ["UserStore"]


class UserStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- users ----------------------------------------------------------------------

    async def create(self, email: str, webhook_secret: str, now_ms: int) -> User | None:
        """Insert a user; None when the email (case-insensitive) is taken."""
        user = User(new_user_id(), email, webhook_secret, now_ms)

        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT INTO users (id, email, webhook_secret, created_at_ms) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (email) DO NOTHING",
                (user.id, user.email, user.webhook_secret, user.created_at_ms),
            )
            return cursor.rowcount == 1

        return user if await self.db.write(op) else None

    async def create_with_key(
        self, email: str, webhook_secret: str, now_ms: int, api_key: str, key_hash: str
    ) -> tuple[User, str] | None:
        user = User(new_user_id(), email, webhook_secret, now_ms)

        def op(conn: sqlite3.Connection) -> str | None:
            cursor = conn.execute(
                "INSERT INTO users (id, email, webhook_secret, created_at_ms) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (email) DO NOTHING",
                (user.id, user.email, user.webhook_secret, user.created_at_ms),
            )
            if cursor.rowcount != 1:
                return None
            return SqliteTx(conn).insert_key(user.id, api_key, key_hash, "default", now_ms, None)

        key_id = await self.db.write(op)
        return None if key_id is None else (user, key_id)

    async def get(self, user_id: str) -> User | None:
        row = self.db.fetchone("SELECT * FROM users WHERE id = ?", (user_id,))
        return user_from_row(row) if row else None

    async def by_email(self, email: str) -> User | None:
        row = self.db.fetchone("SELECT * FROM users WHERE email = ?", (email,))
        return user_from_row(row) if row else None

    async def count(self) -> int:
        row = self.db.fetchone("SELECT COUNT(*) FROM users")
        return int(row[0]) if row else 0

    async def secrets_for(self, user_ids: list[str]) -> dict[str, str]:
        """Webhook secrets by user id (read at each delivery attempt, so rotation counts)."""
        found: dict[str, str] = {}
        for start in range(0, len(user_ids), 500):
            chunk = user_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.fetchall(
                f"SELECT id, webhook_secret FROM users WHERE id IN ({marks})",  # noqa: S608
                chunk,
            ):
                found[row["id"]] = row["webhook_secret"]
        return found

    async def set_webhook_secret(self, user_id: str, secret: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE users SET webhook_secret = ? WHERE id = ?", (secret, user_id))

        await self.db.write(op)

    async def preferences(self, user_id: str) -> Preferences:
        row = self.db.fetchone(
            "SELECT alert_webhook_url, email_alerts FROM users WHERE id = ?", (user_id,)
        )
        if row is None:
            return Preferences(None, True)
        return Preferences(row["alert_webhook_url"], bool(row["email_alerts"]))

    async def set_preferences(self, user_id: str, changes: dict[str, Any]) -> None:
        """Write the given preference columns (`alert_webhook_url`, `email_alerts`)."""
        allowed = {"alert_webhook_url", "email_alerts"}
        columns = sorted(name for name in changes if name in allowed)
        if not columns:
            return
        assignments = ", ".join(f"{name} = ?" for name in columns)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"UPDATE users SET {assignments} WHERE id = ?",  # noqa: S608 - fixed names
                [*(changes[name] for name in columns), user_id],
            )

        await self.db.write(op)

    # --- keys -----------------------------------------------------------------------

    async def add_key(
        self,
        user_id: str,
        api_key: str,
        key_hash: str,
        label: str,
        now_ms: int,
        max_active: int | None = None,
    ) -> str:

        def op(conn: sqlite3.Connection) -> str:
            return SqliteTx(conn).insert_key(user_id, api_key, key_hash, label, now_ms, max_active)

        return await self.db.write(op)

    async def by_key_hash(self, key_hash: str) -> KeyMatch | None:
        """The key's owner, for a SHA-256 hash of a presented token (any status)."""
        row = self.db.fetchone(
            "SELECT u.*, k.id AS key_id, k.status AS key_status, k.prefix AS key_prefix,"
            " k.label AS key_label"
            " FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?",
            (key_hash,),
        )
        if row is None:
            return None
        return KeyMatch(
            user_from_row(row),
            row["key_id"],
            row["key_status"],
            row["key_prefix"],
            row["key_label"],
        )

    async def keys(self, user_id: str, listed_since_ms: int) -> list[KeyRecord]:
        rows = self.db.fetchall(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = ?"  # noqa: S608
            " AND (status = 'active' OR revoked_at_ms >= ?)"
            " ORDER BY created_at_ms DESC, rowid DESC",
            (user_id, listed_since_ms),
        )
        return [key_from_row(row) for row in rows]

    async def key(self, user_id: str, key_id: str) -> KeyRecord | None:
        row = self.db.fetchone(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ? AND user_id = ?",  # noqa: S608
            (key_id, user_id),
        )
        return key_from_row(row) if row else None

    async def rename_key(self, user_id: str, key_id: str, label: str) -> KeyRecord | None:
        def op(conn: sqlite3.Connection) -> KeyRecord | None:
            row = conn.execute(
                f"UPDATE api_keys SET label = ? WHERE id = ? AND user_id = ?"  # noqa: S608
                f" RETURNING {KEY_COLUMNS}",
                (label, key_id, user_id),
            ).fetchone()
            return key_from_row(row) if row else None

        return await self.db.write(op)

    async def rotate_key(
        self,
        user_id: str,
        key_id: str,
        api_key: str,
        key_hash: str,
        now_ms: int,
        purge_before_ms: int,
    ) -> KeyRecord | None:

        def op(conn: sqlite3.Connection) -> KeyRecord | None:
            old = conn.execute(
                "SELECT label FROM api_keys WHERE id = ? AND user_id = ? AND status = 'active'"
                " /*for update*/",
                (key_id, user_id),
            ).fetchone()
            if old is None:
                return None
            new_id = SqliteTx(conn).insert_key(
                user_id, api_key, key_hash, old["label"], now_ms, None
            )
            conn.execute(
                "UPDATE api_keys SET status = 'rotated', revoked_at_ms = ?, replaced_by = ?"
                " WHERE id = ?",
                (now_ms, new_id, key_id),
            )
            SqliteTx(conn).purge_revoked_keys(purge_before_ms)
            row = conn.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?",  # noqa: S608
                (new_id,),
            ).fetchone()
            return key_from_row(row)

        return await self.db.write(op)

    async def touch_key(self, key_id: str, now_ms: int) -> None:
        """Record that the key was used (callers throttle this to about once a minute)."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE api_keys SET last_used_at_ms = ? WHERE id = ?", (now_ms, key_id))

        await self.db.write(op, savepoint=False)
