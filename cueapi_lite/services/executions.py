"""Executions: listing, reading and outcome reports."""

from __future__ import annotations

from typing import Any

from ..clock import Clock
from ..errors import Conflict, NotFound
from ..leases import check_owner
from ..models import Execution, ExecutionStatus, Transport, User
from ..outcomes import outcome_state, parse_outcome
from ..store import ExecutionFilters, Store

__all__ = ["ExecutionService"]


def execution_not_found() -> NotFound:
    return NotFound("Execution not found", "execution_not_found")


class ExecutionService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def page(
        self, user: User, filters: ExecutionFilters, limit: int, offset: int
    ) -> tuple[list[Execution], int]:
        return await self.store.executions.page(user.id, filters, limit, offset)

    async def get(self, user: User, execution_id: str) -> Execution:
        execution = await self.store.executions.get(user.id, execution_id)
        if execution is None:
            raise execution_not_found()
        return execution

    async def report_outcome(
        self, user: User, execution_id: str, body: dict[str, Any], worker_id: str | None = None
    ) -> tuple[Execution, str]:
        """Record the agent's outcome (write-once, E9); returns the execution and state."""
        execution = await self.get(user, execution_id)
        check_owner(execution, worker_id)
        cue = await self.store.cues.get(user.id, execution.cue_id)
        if cue is None:
            raise execution_not_found()
        outcome = parse_outcome(body, self.clock.now_ms())
        state = outcome_state(outcome, cue.verification.mode)
        # A worker execution's outcome ends it; a webhook execution's status keeps
        # describing delivery (CONTRACT §6.2).
        end_status = None
        if execution.transport == Transport.WORKER:
            end_status = (
                ExecutionStatus.SUCCESS if outcome.success else ExecutionStatus.FAILED
            ).value
        result = await self.store.executions.record_outcome(
            user.id, execution_id, outcome, state, outcome.recorded_at_ms, end_status
        )
        if result == "missing":
            raise execution_not_found()
        if result == "exists":
            raise Conflict(
                "Outcome already recorded for this execution", "outcome_already_recorded"
            )
        return execution, state
