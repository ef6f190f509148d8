"""Support tickets, stored locally (E41-E43); ids are integers as in the API document."""

from __future__ import annotations

import sqlite3

from ..records import Ticket, TicketLimitReached
from .db import Database

__all__ = ["SupportStore"]

_COLUMNS = "id, user_id, subject, message, severity, type, status, created_at_ms, updated_at_ms"
_INSERT = (
    "INSERT INTO support_tickets (user_id, subject, message, severity, type, status,"  # noqa: S608
    f" created_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}"
)


def _ticket(row: sqlite3.Row) -> Ticket:
    return Ticket(*row)


class SupportStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        ticket: Ticket,
        window_start_ms: int,
        max_in_window: int,
    ) -> Ticket:

        def op(conn: sqlite3.Connection) -> Ticket:
            recent = conn.execute(
                "SELECT created_at_ms FROM support_tickets WHERE user_id = ?"
                " AND created_at_ms >= ? ORDER BY created_at_ms",
                (ticket.user_id, window_start_ms),
            ).fetchall()
            if len(recent) >= max_in_window:
                raise TicketLimitReached(int(recent[len(recent) - max_in_window][0]))
            row = conn.execute(
                _INSERT,
                (
                    ticket.user_id, ticket.subject, ticket.message, ticket.severity,
                    ticket.type, ticket.status, ticket.created_at_ms, ticket.updated_at_ms,
                ),
            ).fetchone()  # fmt: skip
            return _ticket(row)

        return await self.db.write(op)

    async def get(self, user_id: str, ticket_id: int) -> Ticket | None:
        row = self.db.fetchone(
            f"SELECT {_COLUMNS} FROM support_tickets WHERE id = ? AND user_id = ?",  # noqa: S608
            (ticket_id, user_id),
        )
        return _ticket(row) if row else None

    async def page(self, user_id: str, limit: int, offset: int) -> tuple[list[Ticket], int]:
        """One page of the user's tickets, newest first, and how many there are."""
        total = self.db.fetchone(
            "SELECT COUNT(*) FROM support_tickets WHERE user_id = ?", (user_id,)
        )
        rows = self.db.fetchall(
            f"SELECT {_COLUMNS} FROM support_tickets WHERE user_id = ?"  # noqa: S608
            " ORDER BY created_at_ms DESC, id DESC LIMIT ? OFFSET ?",
            (user_id, limit, offset),
        )
        return [_ticket(row) for row in rows], int(total[0]) if total else 0
