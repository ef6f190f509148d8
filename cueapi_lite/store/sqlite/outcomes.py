"""Outcomes: which executions still wait for their outcome (re-armed at start).

The outcome transitions are `Tx` operations (see `store.contract.Tx`).
"""

from __future__ import annotations

from .db import Database
from .rows import AWAITING_OUTCOME

__all__ = ["OutcomeStore"]


class OutcomeStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def open_deadlines(self) -> list[tuple[str, int]]:
        """(execution id, deadline) of every execution still waiting for its outcome."""
        rows = self.db.fetchall(
            f"SELECT id, outcome_deadline_ms FROM executions WHERE {AWAITING_OUTCOME}"  # noqa: S608
        )
        return [(row[0], row[1]) for row in rows]
