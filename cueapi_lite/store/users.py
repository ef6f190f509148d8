"""Users and their API keys. Keys are stored as SHA-256 hashes only."""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

from ..credentials import key_prefix, new_key_id, new_user_id
from ..models import User
from .db import Database

__all__ = ["KeyMatch", "UserStore"]


class KeyMatch(NamedTuple):
    user: User
    key_id: str
    status: str


def _user(row: sqlite3.Row) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        webhook_secret=row["webhook_secret"],
        created_at_ms=row["created_at_ms"],
    )


class UserStore:
    def __init__(self, db: Database) -> None:
        self.db = db

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

    async def get(self, user_id: str) -> User | None:
        row = self.db.fetchone("SELECT * FROM users WHERE id = ?", (user_id,))
        return _user(row) if row else None

    async def by_email(self, email: str) -> User | None:
        row = self.db.fetchone("SELECT * FROM users WHERE email = ?", (email,))
        return _user(row) if row else None

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

    async def add_key(
        self, user_id: str, api_key: str, key_hash: str, label: str, now_ms: int
    ) -> str:
        """Store a new active key (its hash and display prefix); returns the key id."""
        key_id = new_key_id()

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO api_keys (id, user_id, key_hash, prefix, label, status, created_at_ms)"
                " VALUES (?, ?, ?, ?, ?, 'active', ?)",
                (key_id, user_id, key_hash, key_prefix(api_key), label, now_ms),
            )

        await self.db.write(op)
        return key_id

    async def by_key_hash(self, key_hash: str) -> KeyMatch | None:
        """The key's owner, for a SHA-256 hash of a presented token (any status)."""
        row = self.db.fetchone(
            "SELECT u.*, k.id AS key_id, k.status AS key_status, k.key_hash AS key_hash"
            " FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?",
            (key_hash,),
        )
        if row is None:
            return None
        return KeyMatch(_user(row), row["key_id"], row["key_status"])
