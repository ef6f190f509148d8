"""Worker transport: claimable work, claims, leases, worker liveness (CONTRACT §8).

A claim holds a lease of `lease_s`. A claimed execution goes back to `pending` only when
BOTH its lease has passed AND its worker has sent no worker heartbeat (E34) for
`worker_timeout_s`: the official worker never calls the per-execution heartbeat, so a
busy live worker keeps its claim however long its handler runs (H15). Expiry counts as a
failed attempt; with no attempts left the execution fails. Lease checks and unclaimed
expiries live on the scheduler's heap: each check either acts or re-arms itself for the
next moment the answer could change.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from .alerts import check_consecutive_failures
from .clock import Clock
from .errors import ApiError, Conflict, NotFound, Unprocessable
from .models import Execution, ExecutionStatus, User
from .refusals import refused
from .request_shapes import Claim, ClaimNext, WorkerHeartbeat, load
from .runs import count_run, fail_unrun_once_cue
from .scheduler import Due, Kind, Scheduler
from .store import Claimable, Deadline, ExecutionRef, LeaseCheck, Refusal, Store, Tx, WorkerRecord
from .telemetry import Telemetry

__all__ = [
    "LeaseService",
    "check_owner",
    "claim",
    "expire_lease",
    "expire_unclaimed",
    "extend_lease",
    "heartbeat_status",
    "unclaimed_deadline",
]

log = logging.getLogger(__name__)
NO_TASK_WARNING = (
    "This worker cue has no payload.task: cueapi-worker runs the handler named by"
    " payload.task and skips work without one, so its executions would wait unclaimed."
    ' Add one, e.g. "payload": {"task": "sync_data"}, matching a handler in worker.yaml.'
)
NO_WORKER_WARNING = (
    "No active workers found: no worker has sent a heartbeat in the last {seconds} seconds."
    " Start one with `cueapi-worker start` so this cue's executions are claimed."
)


def heartbeat_status(seconds_since: int, timeout_s: int, lease_s: int) -> str:
    """`active` while within the worker timeout, `stale` within a lease, else `dead`."""
    if seconds_since < timeout_s:
        return "active"
    return "stale" if seconds_since < lease_s else "dead"


def _header_worker_id(value: str) -> str:
    """`X-Worker-Id` holds the same kind of id as a claim's `worker_id`."""
    try:
        return load({"worker_id": value}, Claim).worker_id
    except ApiError as exc:
        raise Unprocessable(exc.message.replace("worker_id", "X-Worker-Id", 1)) from None


def check_owner(execution: Execution, worker_id: str | None) -> None:
    """A report sent with `X-Worker-Id` must come from the claiming worker (doc intent)."""
    if (
        worker_id is not None
        and execution.claimed_by_worker is not None
        and worker_id != execution.claimed_by_worker
    ):
        raise refused(Refusal.NOT_OWNER)


def execution_not_found() -> NotFound:
    return NotFound("Execution not found", "execution_not_found")


# --- the rules (each runs inside one store transaction) ------------------------------


def unclaimed_deadline(execution: Execution, expiry_ms: int) -> Deadline | None:
    """When pending worker work nobody claimed is recorded as missed (0: never)."""
    if not expiry_ms:
        return None
    return Deadline(Kind.UNCLAIMED, execution.id, execution.updated_at_ms + expiry_ms)


def _armed(tx: Tx, execution: Execution) -> Execution:
    """Publish the claim's lease expiry and open outcome deadline after the commit."""
    if execution.lease_expires_at_ms is not None:
        tx.after_commit(Deadline(Kind.LEASE, execution.id, execution.lease_expires_at_ms))
    if execution.outcome_deadline_ms is not None and execution.outcome_state is None:
        tx.after_commit(
            Deadline(Kind.OUTCOME_DEADLINE, execution.id, execution.outcome_deadline_ms)
        )
    return execution


def claim(
    tx: Tx,
    user_id: str,
    execution_id: str | None,
    worker_id: str,
    now_ms: int,
    lease_ms: int,
    task: str | None = None,
    agent: str | None = None,
) -> Execution | None:
    """pending (worker transport) -> delivering, claimed by `worker_id`, attempts + 1,
    lease until now + lease. `execution_id=None` claims the oldest claimable execution
    (filtered by task/agent). The outcome deadline of a worker execution runs from its
    claim (CONTRACT §7.5). None when nothing was claimable."""
    if execution_id is None:
        execution_id = tx.next_claimable(user_id, now_ms, task, agent)
        if execution_id is None:
            return None
    execution = tx.claim(user_id, execution_id, worker_id, now_ms, now_ms + lease_ms)
    if execution is None:
        return None
    cue = tx.cue_state(execution.cue_id)
    if execution.outcome is None and execution.outcome_state is None and cue is not None:
        deadline_ms = now_ms + cue.delivery.outcome_deadline_seconds * 1000
        if tx.set_outcome_deadline(execution.id, deadline_ms):
            execution.outcome_deadline_ms = deadline_ms
    return _armed(tx, execution)


def extend_lease(
    tx: Tx, user_id: str, execution_id: str, worker_id: str | None, now_ms: int, lease_ms: int
) -> Execution | Refusal:
    """A per-execution heartbeat (E12): the lease runs to now + lease. Refused when the
    execution is unknown, not under a worker claim, or (with `worker_id`) claimed by
    another worker, checked in that order."""
    execution = tx.execution(execution_id, user_id)
    if execution is None:
        return Refusal.MISSING
    if execution.status != ExecutionStatus.DELIVERING or execution.claimed_by_worker is None:
        return Refusal.NOT_CLAIMING
    if worker_id is not None and worker_id != execution.claimed_by_worker:
        return Refusal.NOT_OWNER
    extended = tx.extend_lease(execution_id, now_ms, now_ms + lease_ms)
    return Refusal.NOT_CLAIMING if extended is None else _armed(tx, extended)


def expire_lease(
    tx: Tx, check: LeaseCheck, now_ms: int, worker_dead_before_ms: int, unclaimed_ms: int
) -> str | None:
    """delivering (this claim, lease passed, worker silent) -> pending, or -> failed
    when the attempts are used up (a finished run: counted on the cue, and possibly the
    end of a streak of failures). The new status, or None when the row moved on."""
    execution = check.execution
    failed = execution.attempts >= check.max_attempts
    status = ExecutionStatus.FAILED if failed else ExecutionStatus.PENDING
    if not tx.expire_lease(execution, status, now_ms, worker_dead_before_ms):
        return None
    if failed:
        ref = ExecutionRef(
            execution.id, execution.cue_id, execution.triggered_by, execution.scheduled_for_ms
        )
        count_run(tx, ref, False, now_ms)
        check_consecutive_failures(tx, execution.cue_id, execution.id, now_ms)
    elif unclaimed_ms:
        tx.after_commit(Deadline(Kind.UNCLAIMED, execution.id, now_ms + unclaimed_ms))
    return status.value


def expire_unclaimed(tx: Tx, execution_id: str, now_ms: int, waiting_since_ms: int) -> bool:
    """pending since before `waiting_since_ms` (no worker claimed it) -> missed with
    reason `unclaimed`; a `once` cue whose scheduled run this was has failed. False when
    the row was claimed, finished or made pending again meanwhile."""
    ref = tx.expire_unclaimed(execution_id, now_ms, waiting_since_ms)
    if ref is None:
        return False
    fail_unrun_once_cue(tx, ref, now_ms)
    return True


class LeaseService:
    def __init__(
        self,
        store: Store,
        scheduler: Scheduler,
        clock: Clock,
        lease_s: int = 900,
        worker_timeout_s: int = 180,
        unclaimed_expiry_s: int = 900,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.store = store
        self.telemetry = telemetry or Telemetry()
        self.scheduler = scheduler
        self.clock = clock
        self.lease_ms = lease_s * 1000
        self.worker_timeout_ms = worker_timeout_s * 1000
        self.unclaimed_expiry_ms = unclaimed_expiry_s * 1000
        scheduler.on(Kind.LEASE, self._leases_due)
        scheduler.on(Kind.UNCLAIMED, self._unclaimed_due)

    # --- start and new work ---------------------------------------------------------

    async def load(self) -> None:
        """At start: re-arm the lease of every claim and the expiry of unclaimed work."""
        for execution_id, expires_ms in await self.store.claims.claimed():
            self.scheduler.push(expires_ms, Kind.LEASE, execution_id)
        if self.unclaimed_expiry_ms:
            for execution_id, since_ms in await self.store.claims.unclaimed():
                self.scheduler.push(
                    since_ms + self.unclaimed_expiry_ms, Kind.UNCLAIMED, execution_id
                )

    # --- the API --------------------------------------------------------------------

    async def claimable(self, user: User, task: str | None, agent: str | None) -> list[Claimable]:
        return await self.store.claims.claimable(user.id, self.clock.now_ms(), task, agent)

    async def claim(self, user: User, execution_id: str, body: dict[str, Any]) -> Execution:
        worker_id = load(body, Claim).worker_id
        now_ms = self.clock.now_ms()
        execution = await self.store.transact(
            lambda tx: claim(tx, user.id, execution_id, worker_id, now_ms, self.lease_ms)
        )
        if execution is None:
            if await self.store.executions.get(user.id, execution_id) is None:
                raise execution_not_found()
            raise Conflict(
                "Execution is not claimable: it is claimed already, finished, or not a"
                " worker-transport execution",
                "execution_not_claimable",
            )
        self.telemetry.claimed(execution, worker_id)
        return execution

    async def claim_next(self, user: User, body: dict[str, Any]) -> Execution:
        wanted = load(body, ClaimNext)
        task, agent, worker_id = wanted.task, wanted.agent, wanted.worker_id
        now_ms = self.clock.now_ms()
        execution = await self.store.transact(
            lambda tx: claim(tx, user.id, None, worker_id, now_ms, self.lease_ms, task, agent)
        )
        if execution is None:
            raise Conflict("No executions available for claiming", "no_claimable_executions")
        self.telemetry.claimed(execution, worker_id)
        return execution

    async def heartbeat(self, user: User, execution_id: str, worker_id: str | None) -> Execution:
        """Extend the lease of a claimed execution (E12)."""
        if worker_id is not None:
            worker_id = _header_worker_id(worker_id)
        now_ms = self.clock.now_ms()
        extended = await self.store.transact(
            lambda tx: extend_lease(tx, user.id, execution_id, worker_id, now_ms, self.lease_ms)
        )
        if isinstance(extended, Refusal):
            raise refused(extended)
        return extended

    async def worker_heartbeat(self, user: User, body: dict[str, Any]) -> str:
        """A worker says it is alive (E34); returns its id."""
        beat = load(body, WorkerHeartbeat)
        await self.store.workers.heartbeat(
            user.id, beat.worker_id, beat.handlers, self.clock.now_ms()
        )
        return beat.worker_id

    async def workers(self, user: User) -> list[WorkerRecord]:
        return await self.store.workers.page(user.id)

    async def forget_worker(self, user: User, worker_id: str) -> None:
        if not await self.store.workers.delete(user.id, worker_id):
            raise NotFound("Worker not found", "worker_not_found")

    def no_task_warning(self, payload: dict[str, Any]) -> str | None:
        """The warning for a new worker cue the official worker cannot route (H17)."""
        task = payload.get("task")
        return None if isinstance(task, str) and task.strip() else NO_TASK_WARNING

    async def no_worker_warning(self, user: User) -> str | None:
        """The warning for a new worker cue when no worker is alive (CONTRACT E1)."""
        seen_ms = await self.store.workers.latest_heartbeat(user.id)
        if seen_ms is not None and self.clock.now_ms() - seen_ms < self.worker_timeout_ms:
            return None
        return NO_WORKER_WARNING.format(seconds=self.worker_timeout_ms // 1000)

    # --- the heap -------------------------------------------------------------------

    async def _leases_due(self, entries: list[Due], now_ms: int) -> None:
        for due_ms, execution_id in entries:
            check = await self.store.claims.lease_check(execution_id)
            if check is None or check.execution.lease_expires_at_ms is None:
                continue  # finished, or back to pending: nothing to expire
            expires_ms = check.execution.lease_expires_at_ms
            if expires_ms > now_ms:
                if expires_ms != due_ms:
                    continue  # extended: a later entry is already on the heap
                self.scheduler.push(expires_ms, Kind.LEASE, execution_id)
                continue
            seen_ms = check.worker_last_heartbeat_ms
            if seen_ms is not None and now_ms - seen_ms < self.worker_timeout_ms:
                # The lease ran out but the worker is alive (a long handler): look again
                # when the worker would count as gone.
                self.scheduler.push(seen_ms + self.worker_timeout_ms, Kind.LEASE, execution_id)
                continue
            status = await self.store.transact(
                partial(
                    expire_lease,
                    check=check,
                    now_ms=now_ms,
                    worker_dead_before_ms=now_ms - self.worker_timeout_ms,
                    unclaimed_ms=self.unclaimed_expiry_ms,
                )
            )
            if status is None:
                self.scheduler.push(now_ms + 1000, Kind.LEASE, execution_id)  # look again
                continue
            self.telemetry.lease_expired(execution_id, status)

    async def _unclaimed_due(self, entries: list[Due], now_ms: int) -> None:
        since_ms = now_ms - self.unclaimed_expiry_ms
        for _due_ms, execution_id in entries:
            if await self.store.transact(
                partial(
                    expire_unclaimed,
                    execution_id=execution_id,
                    now_ms=now_ms,
                    waiting_since_ms=since_ms,
                )
            ):
                self.telemetry.unclaimed(execution_id)
