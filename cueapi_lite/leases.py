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
from typing import Any

from .clock import Clock
from .errors import ApiError, Conflict, Forbidden, NotFound, Unprocessable
from .models import Execution, User
from .request_shapes import Claim, ClaimNext, WorkerHeartbeat, load
from .scheduler import OUTBOX, Due, Kind, Scheduler
from .store import Claimable, Store, WorkerRecord
from .telemetry import Telemetry

__all__ = ["LeaseService", "check_owner", "heartbeat_status"]

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
        raise Forbidden(
            "X-Worker-Id does not match the worker that claimed this execution",
            "not_execution_owner",
        )


def execution_not_found() -> NotFound:
    return NotFound("Execution not found", "execution_not_found")


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

    def waiting(self, executions: list[Execution]) -> None:
        """New worker executions: arm their unclaimed expiry."""
        if self.unclaimed_expiry_ms:
            for execution in executions:
                self.scheduler.push(
                    execution.updated_at_ms + self.unclaimed_expiry_ms, Kind.UNCLAIMED, execution.id
                )

    # --- the API --------------------------------------------------------------------

    async def claimable(self, user: User, task: str | None, agent: str | None) -> list[Claimable]:
        return await self.store.claims.claimable(user.id, self.clock.now_ms(), task, agent)

    async def claim(self, user: User, execution_id: str, body: dict[str, Any]) -> Execution:
        worker_id = load(body, Claim).worker_id
        execution = await self.store.claims.claim(
            user.id, execution_id, worker_id, self.clock.now_ms(), self.lease_ms
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
        self._arm(execution)
        return execution

    async def claim_next(self, user: User, body: dict[str, Any]) -> Execution:
        wanted = load(body, ClaimNext)
        execution = await self.store.claims.claim_next(
            user.id, wanted.worker_id, self.clock.now_ms(), self.lease_ms, wanted.task,
            wanted.agent,
        )  # fmt: skip
        if execution is None:
            raise Conflict("No executions available for claiming", "no_claimable_executions")
        self.telemetry.claimed(execution, wanted.worker_id)
        self._arm(execution)
        return execution

    async def heartbeat(self, user: User, execution_id: str, worker_id: str | None) -> Execution:
        """Extend the lease of a claimed execution (E12)."""
        if worker_id is not None:
            worker_id = _header_worker_id(worker_id)
        result, execution = await self.store.claims.extend_lease(
            user.id, execution_id, worker_id, self.clock.now_ms(), self.lease_ms
        )
        if result == "missing":
            raise execution_not_found()
        if result == "not_claiming":
            raise Conflict(
                "Execution is not claimed by a worker (it is not in 'delivering')",
                "execution_not_claiming",
            )
        if result == "not_owner":
            raise Forbidden(
                "X-Worker-Id does not match the worker that claimed this execution",
                "not_execution_owner",
            )
        assert execution is not None
        self._arm(execution)
        return execution

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

    def _arm(self, execution: Execution) -> None:
        if execution.lease_expires_at_ms is not None:
            self.scheduler.push(execution.lease_expires_at_ms, Kind.LEASE, execution.id)
        if execution.outcome_deadline_ms is not None and execution.outcome_state is None:
            self.scheduler.push(execution.outcome_deadline_ms, Kind.OUTCOME_DEADLINE, execution.id)

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
            expired = await self.store.claims.expire_lease(
                check, now_ms, now_ms - self.worker_timeout_ms
            )
            if expired is None:
                self.scheduler.push(now_ms + 1000, Kind.LEASE, execution_id)  # look again
                continue
            status, alerted = expired
            self.telemetry.lease_expired(execution_id, status)
            if alerted:
                self.scheduler.push(now_ms, Kind.NOTIFY, OUTBOX)
            if status == "pending" and self.unclaimed_expiry_ms:
                self.scheduler.push(now_ms + self.unclaimed_expiry_ms, Kind.UNCLAIMED, execution_id)

    async def _unclaimed_due(self, entries: list[Due], now_ms: int) -> None:
        for _due_ms, execution_id in entries:
            if await self.store.claims.expire_unclaimed(
                execution_id, now_ms, now_ms - self.unclaimed_expiry_ms
            ):
                self.telemetry.unclaimed(execution_id)
