"""Device codes of the CLI login (E31-E33): `pending -> approved -> claimed`.

Approval records who the code is for; the first poll after it claims the code and, in
the same transaction (`Tx.claim_device_code`, `insert_key`, `insert_token`), stores the
new key's hash and a one-time login token's hash. So a crash never leaves a claimed code
without its key, and no plaintext is ever written.
"""

from __future__ import annotations

import sqlite3

from ..records import DeviceCode, Refusal
from .db import Database

__all__ = ["DeviceStore"]

PENDING = "pending"
APPROVED = "approved"
CLAIMED = "claimed"
_COLUMNS = (
    "d.code, d.status, d.user_id, u.email, d.approved_via, d.magic_token_hash,"
    " d.magic_email, d.requested_ip, d.created_at_ms, d.expires_at_ms, d.approved_at_ms,"
    " d.claimed_at_ms"
)
_FROM = "FROM device_codes d LEFT JOIN users u ON u.id = d.user_id"


def _code(row: sqlite3.Row) -> DeviceCode:
    return DeviceCode(*row)


class DeviceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, code: str) -> DeviceCode | None:
        row = self.db.fetchone(f"SELECT {_COLUMNS} {_FROM} WHERE d.code = ?", (code,))
        return _code(row) if row else None

    async def waiting(self, now_ms: int) -> list[DeviceCode]:
        """Codes not yet claimed and not expired, oldest first."""
        rows = self.db.fetchall(
            f"SELECT {_COLUMNS} {_FROM} WHERE d.status != ? AND d.expires_at_ms > ?"
            " ORDER BY d.created_at_ms",
            (CLAIMED, now_ms),
        )
        return [_code(row) for row in rows]

    async def create(
        self,
        code: str,
        requested_ip: str | None,
        now_ms: int,
        expires_at_ms: int,
        max_waiting: int,
        approved_user_id: str | None = None,
        approved_via: str | None = None,
    ) -> Refusal | None:
        """Start a login with a client-chosen code (optionally approved at once).

        Refused `EXISTS` when the code is already pending or approved and unexpired
        (nothing changes); `FULL` when `max_waiting` codes are already waiting. A claimed or
        expired code of the same value is replaced. Expired codes are purged.
        """

        def op(conn: sqlite3.Connection) -> Refusal | None:
            conn.execute("DELETE FROM device_codes WHERE expires_at_ms <= ?", (now_ms,))
            current = conn.execute(
                "SELECT status FROM device_codes WHERE code = ?", (code,)
            ).fetchone()
            if current is not None and current["status"] != CLAIMED:
                return Refusal.EXISTS
            (waiting,) = conn.execute(
                "SELECT COUNT(*) FROM device_codes WHERE status != ?", (CLAIMED,)
            ).fetchone()
            if waiting >= max_waiting:
                return Refusal.FULL
            conn.execute("DELETE FROM device_codes WHERE code = ?", (code,))
            status = PENDING if approved_user_id is None else APPROVED
            conn.execute(
                "INSERT INTO device_codes (code, status, user_id, approved_via, requested_ip,"
                " created_at_ms, expires_at_ms, approved_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    code, status, approved_user_id, approved_via, requested_ip, now_ms,
                    expires_at_ms, None if approved_user_id is None else now_ms,
                ),
            )  # fmt: skip
            return None

        return await self.db.write(op)

    async def approve(self, code: str, user_id: str, via: str, now_ms: int) -> Refusal | None:
        """pending -> approved for `user_id` (compare-and-set on status and expiry)."""

        def op(conn: sqlite3.Connection) -> Refusal | None:
            cursor = conn.execute(
                "UPDATE device_codes SET status = ?, user_id = ?, approved_via = ?,"
                " approved_at_ms = ? WHERE code = ? AND status = ? AND expires_at_ms > ?",
                (APPROVED, user_id, via, now_ms, code, PENDING, now_ms),
            )
            if cursor.rowcount == 1:
                return None
            row = conn.execute(
                "SELECT status, expires_at_ms FROM device_codes WHERE code = ?", (code,)
            ).fetchone()
            if row is None:
                return Refusal.MISSING
            return Refusal.EXPIRED if row["expires_at_ms"] <= now_ms else Refusal.NOT_PENDING

        return await self.db.write(op)

    async def set_magic_link(
        self, code: str, token_hash: str, email: str, now_ms: int
    ) -> Refusal | None:

        def op(conn: sqlite3.Connection) -> Refusal | None:
            cursor = conn.execute(
                "UPDATE device_codes SET magic_token_hash = ?, magic_email = ?"
                " WHERE code = ? AND status = ? AND expires_at_ms > ?",
                (token_hash, email, code, PENDING, now_ms),
            )
            if cursor.rowcount == 1:
                return None
            row = conn.execute(
                "SELECT expires_at_ms FROM device_codes WHERE code = ?", (code,)
            ).fetchone()
            if row is None:
                return Refusal.MISSING
            return Refusal.EXPIRED if row["expires_at_ms"] <= now_ms else Refusal.NOT_PENDING

        return await self.db.write(op)
