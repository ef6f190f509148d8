"""One-time login tokens and session tokens, stored as SHA-256 hashes only.

A login token (handed out with a device approval, E33) is redeemed once for a session
(E29). A session token authenticates like an API key until it expires or is refreshed
(E30), which retires it. Expired rows are purged whenever a new token is issued.
"""

from __future__ import annotations

import sqlite3

from ...models import User
from ..records import LOGIN_TOKEN as LOGIN
from ..records import SESSION_TOKEN as SESSION
from ..records import SessionMatch
from .db import Database
from .tx import SqliteTx

__all__ = ["TokenStore"]


def _use(conn: sqlite3.Connection, token_hash: str, kind: str, now_ms: int) -> str | None:
    """Compare-and-set: an unused, unexpired token of `kind` becomes used; its user id."""
    row = conn.execute(
        "UPDATE auth_tokens SET used_at_ms = ? WHERE token_hash = ? AND kind = ?"
        " AND used_at_ms IS NULL AND expires_at_ms > ? RETURNING user_id",
        (now_ms, token_hash, kind, now_ms),
    ).fetchone()
    return None if row is None else str(row[0])


class TokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def session(self, token_hash: str) -> SessionMatch | None:
        """The session with this hash and its owner (any state), or None."""
        row = self.db.fetchone(
            "SELECT u.*, t.expires_at_ms AS token_expires, t.used_at_ms AS token_used"
            " FROM auth_tokens t JOIN users u ON u.id = t.user_id"
            " WHERE t.token_hash = ? AND t.kind = ?",
            (token_hash, SESSION),
        )
        if row is None:
            return None
        user = User(row["id"], row["email"], row["webhook_secret"], row["created_at_ms"])
        return SessionMatch(user, row["token_expires"], row["token_used"] is not None)

    async def exchange(
        self, login_hash: str, session_hash: str, now_ms: int, expires_at_ms: int
    ) -> str | None:
        return await self._swap(login_hash, LOGIN, session_hash, now_ms, expires_at_ms)

    async def refresh(
        self, old_hash: str, new_hash: str, now_ms: int, expires_at_ms: int
    ) -> str | None:
        return await self._swap(old_hash, SESSION, new_hash, now_ms, expires_at_ms)

    async def issue(self, session_hash: str, user_id: str, now_ms: int, expires_at_ms: int) -> None:
        """A new session for a user who proved who they are (a dashboard login)."""

        def op(conn: sqlite3.Connection) -> None:
            SqliteTx(conn).insert_token(session_hash, SESSION, user_id, now_ms, expires_at_ms)

        await self.db.write(op)

    async def retire(self, session_hash: str, now_ms: int) -> None:

        def op(conn: sqlite3.Connection) -> None:
            _use(conn, session_hash, SESSION, now_ms)

        await self.db.write(op, savepoint=False)

    async def _swap(
        self, old_hash: str, kind: str, new_hash: str, now_ms: int, expires_at_ms: int
    ) -> str | None:
        def op(conn: sqlite3.Connection) -> str | None:
            user_id = _use(conn, old_hash, kind, now_ms)
            if user_id is not None:
                SqliteTx(conn).insert_token(new_hash, SESSION, user_id, now_ms, expires_at_ms)
            return user_id

        return await self.db.write(op)
