"""Executions: history, outcome reports, verification, late evidence and replay."""

from __future__ import annotations

from typing import Any

from ..clock import Clock
from ..errors import Conflict, NotFound, Unprocessable
from ..firing import Firing
from ..leases import check_owner
from ..models import (
    TERMINAL_STATUSES,
    Execution,
    ExecutionStatus,
    Outcome,
    OutcomeState,
    Transport,
    TriggeredBy,
    User,
    new_execution,
)
from ..outcomes import (
    MAX_ARTIFACTS,
    MAX_ARTIFACTS_BYTES,
    MAX_METADATA_BYTES,
    add_evidence,
    compact_size,
    mark_verification_pending,
    merged_evidence,
    outcome_state,
    parse_evidence,
    parse_outcome,
    record_outcome,
    verify_outcome,
)
from ..refusals import refused
from ..request_shapes import Evidence, Verify, load
from ..store import EvidenceRejected, ExecutionFilters, Refusal, Store
from ..telemetry import Telemetry
from .limits import LimitService

__all__ = ["ExecutionService"]

EVIDENCE_FIELDS = Evidence.__struct_fields__


def execution_not_found() -> NotFound:
    return NotFound("Execution not found", "execution_not_found")


class ExecutionService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        firing: Firing,
        limits: LimitService | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.telemetry = telemetry or Telemetry()
        self.firing = firing
        self.limits = limits

    async def page(
        self, user: User, filters: ExecutionFilters, limit: int, offset: int
    ) -> tuple[list[Execution], int]:
        return await self.store.executions.page(user.id, filters, limit, offset)

    async def get(self, user: User, execution_id: str) -> Execution:
        execution = await self.store.executions.get(user.id, execution_id)
        if execution is None:
            raise execution_not_found()
        return execution

    async def _mode(self, user: User, execution: Execution) -> str:
        cue = await self.store.cues.get(user.id, execution.cue_id)
        if cue is None:
            raise execution_not_found()
        return cue.verification.mode

    async def report_outcome(
        self, user: User, execution_id: str, body: dict[str, Any], worker_id: str | None = None
    ) -> tuple[Execution, str]:
        """Record the agent's outcome (write-once, E9); returns the execution and state."""
        execution = await self.get(user, execution_id)
        check_owner(execution, worker_id)
        outcome = parse_outcome(body, self.clock.now_ms())
        state = outcome_state(outcome, await self._mode(user, execution))
        # A worker execution's outcome ends it; a webhook execution's status keeps
        # describing delivery (CONTRACT §6.2).
        end_status = None
        if execution.transport == Transport.WORKER:
            end_status = (
                ExecutionStatus.SUCCESS if outcome.success else ExecutionStatus.FAILED
            ).value
        refusal = await self.store.transact(
            lambda tx: record_outcome(
                tx, user.id, execution_id, outcome, state, outcome.recorded_at_ms, end_status
            )
        )
        if refusal is not None:
            raise refused(refusal)
        self.telemetry.outcome(execution_id, state, "reported")
        return execution, state

    async def verify(
        self, user: User, execution_id: str, body: dict[str, Any]
    ) -> tuple[Execution, bool, str | None]:
        """Mark a reported outcome verified or not (E13; `{}` means valid, H18)."""
        verdict = load(body, Verify)
        valid, reason = verdict.valid, verdict.reason
        now_ms = self.clock.now_ms()
        verified = await self.store.transact(
            lambda tx: verify_outcome(tx, user.id, execution_id, valid, reason, now_ms)
        )
        if isinstance(verified, Refusal):
            raise refused(verified)
        return verified, valid, reason

    async def mark_verification_pending(self, user: User, execution_id: str) -> None:
        now_ms = self.clock.now_ms()
        refusal = await self.store.transact(
            lambda tx: mark_verification_pending(tx, user.id, execution_id, now_ms)
        )
        if refusal is not None:
            raise refused(refusal)

    async def add_evidence(self, user: User, execution_id: str, body: dict[str, Any]) -> str:
        """Add evidence after the outcome (E10); returns the outcome state."""
        evidence = parse_evidence(body)
        if not evidence:
            raise Unprocessable("Send at least one of " + ", ".join(EVIDENCE_FIELDS))
        mode = await self._mode(user, await self.get(user, execution_id))

        def merge(outcome: Outcome) -> Outcome:
            merged = merged_evidence(outcome, evidence)
            artifacts = merged.artifacts or []
            if len(artifacts) > MAX_ARTIFACTS or compact_size(artifacts) > MAX_ARTIFACTS_BYTES:
                raise EvidenceRejected(
                    f"artifacts: together at most {MAX_ARTIFACTS} items and 64 KiB"
                )
            if compact_size(merged.metadata or {}) > MAX_METADATA_BYTES:
                raise EvidenceRejected("metadata: together at most 10 KiB as JSON")
            return merged

        def restate(outcome: Outcome, state: str) -> str:
            # Evidence can only repair a failed verification, never demote a state.
            if state == OutcomeState.VERIFICATION_FAILED:
                return outcome_state(outcome, mode)
            return state

        now_ms = self.clock.now_ms()
        try:
            state = await self.store.transact(
                lambda tx: add_evidence(tx, user.id, execution_id, merge, restate, now_ms)
            )
        except EvidenceRejected as exc:
            raise Unprocessable(str(exc)) from None
        if isinstance(state, Refusal):
            raise refused(state)
        return state

    async def replay(self, user: User, execution_id: str) -> Execution:
        """Run a finished execution again, with its original payload (E11)."""
        original = await self.get(user, execution_id)
        if original.status not in TERMINAL_STATUSES:
            raise Conflict(
                f"Execution is still {original.status}; only a finished one can be replayed",
                "execution_in_flight",
            )
        cue = await self.store.cues.get(user.id, original.cue_id)
        if cue is None:
            raise execution_not_found()
        if self.limits is not None:
            await self.limits.check_execution_limit(user)  # E11, like a manual fire
        now_ms = self.clock.now_ms()
        replay = new_execution(
            cue, now_ms, TriggeredBy.REPLAY.value, now_ms, original.payload, original.id
        )
        if not await self.firing.fire_now(cue, replay):
            raise execution_not_found()
        return replay
