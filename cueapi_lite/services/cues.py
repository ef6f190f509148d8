"""Cues: create, read, update, pause/resume, delete and manual fire."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..alerts import window_deadline
from ..callbacks import CallbackPolicy
from ..clock import Clock
from ..config import Settings
from ..cue_input import CueCreate, apply_update, check_payload, new_cue, read_cue_body
from ..errors import Conflict, NotFound
from ..firing import Firing, fire_deadline
from ..leases import LeaseService
from ..models import (
    Cue,
    Execution,
    Transport,
    TriggeredBy,
    User,
    new_execution,
)
from ..request_shapes import Fire, load
from ..store import CueLimitReached, DuplicateName, ExecutionFilters, Store, Tx
from .limits import LimitService

__all__ = ["CueService"]

RECENT_EXECUTIONS = 10


def _duplicate(name: str) -> Conflict:
    return Conflict(f"A cue named {name!r} already exists", "duplicate_cue_name")


def cue_not_found() -> NotFound:
    return NotFound("Cue not found", "cue_not_found")


def _armed(tx: Tx, cue: Cue) -> Cue:
    """Publish the cue's next fire and missed-window check after the commit."""
    for deadline in (fire_deadline(cue), window_deadline(cue)):
        if deadline is not None:
            tx.after_commit(deadline)
    return cue


def insert_cue(tx: Tx, cue: Cue, max_cues: int | None) -> bool:
    """Insert a new cue; False when the user already has a cue of that name. With
    `max_cues`, raises CueLimitReached (writing nothing) when the user already has that
    many `active` or `paused` cues: counted in the same transaction, so concurrent
    creates cannot pass the limit together."""
    if not tx.insert_cue(cue, max_cues):
        return False
    _armed(tx, cue)
    return True


def modify_cue(tx: Tx, user_id: str, cue_id: str, change: Callable[[Cue], Cue]) -> Cue | None:
    """Read, change and write one cue in one transaction, so two concurrent updates
    never lose each other's fields. None when the user has no such cue; a name another
    of the user's cues has raises DuplicateName."""
    current = tx.cue(cue_id, user_id)
    if current is None:
        return None
    cue = change(current)
    tx.update_cue(cue)
    return _armed(tx, cue)


class CueService:
    def __init__(
        self,
        store: Store,
        firing: Firing,
        clock: Clock,
        settings: Settings,
        policy: CallbackPolicy,
        leases: LeaseService,
        limits: LimitService | None = None,
    ) -> None:
        self.leases = leases
        self.limits = limits
        self.store = store
        self.firing = firing
        self.clock = clock
        self.settings = settings
        self.policy = policy

    async def create(self, user: User, body: dict[str, Any]) -> Cue:
        data = read_cue_body(body, self.settings.max_payload_bytes, CueCreate)
        cue = new_cue(user.id, data, self.policy, self.clock.now_ms())
        # The cue limit is counted inside the insert's transaction (CONTRACT §2.4).
        max_cues = self.limits.cue_limit if self.limits else None
        try:
            inserted = await self.store.transact(lambda tx: insert_cue(tx, cue, max_cues))
        except CueLimitReached as exc:
            assert self.limits is not None
            raise self.limits.cue_limit_error(exc.counted) from None
        if not inserted:
            raise _duplicate(cue.name)
        if cue.transport == Transport.WORKER:
            # Said once, in the create answer: a worker cue with no live worker (CONTRACT
            # E1), or without the payload.task the worker daemon routes by, will never be
            # claimed.
            warnings = [
                self.leases.no_task_warning(cue.payload),
                await self.leases.no_worker_warning(user),
            ]
            cue = dataclasses.replace(cue, warning=" ".join(w for w in warnings if w) or None)
        return cue

    async def page(
        self, user: User, status: str | None, limit: int, offset: int
    ) -> tuple[list[Cue], int]:
        return await self.store.cues.page(user.id, status, limit, offset)

    async def get(self, user: User, cue_id: str) -> tuple[Cue, list[Execution], int]:
        """The cue, its newest executions and how many it has in all."""
        cue = await self.store.cues.get(user.id, cue_id)
        if cue is None:
            raise cue_not_found()
        executions, total = await self.store.executions.page(
            user.id, ExecutionFilters(cue_id=cue.id), RECENT_EXECUTIONS, 0
        )
        return cue, executions, total

    async def update(self, user: User, cue_id: str, body: dict[str, Any]) -> Cue:
        data = read_cue_body(body, self.settings.max_payload_bytes)
        now_ms = self.clock.now_ms()
        if self.limits is not None and self.limits.cue_limit is not None and data.status:
            current = await self.store.cues.get(user.id, cue_id)
            if current is not None:  # a completed or failed cue revived counts again
                await self.limits.check_revival(user, current, data.status)

        def change(current: Cue) -> Cue:
            return apply_update(current, data, self.policy, now_ms)

        try:
            cue = await self.store.transact(lambda tx: modify_cue(tx, user.id, cue_id, change))
        except DuplicateName as exc:
            raise _duplicate(str(exc)) from None
        if cue is None:
            raise cue_not_found()
        return cue

    async def delete(self, user: User, cue_id: str) -> None:
        # Executions go with the cue; queued attempts and heap entries find nothing to
        # do and are dropped when they come up.
        if not await self.store.cues.delete(user.id, cue_id):
            raise cue_not_found()

    async def fire(self, user: User, cue_id: str, body: dict[str, Any]) -> Execution:
        """Run the cue now, whatever its status (E6)."""
        wanted = load(body, Fire)
        override, strategy = wanted.payload_override, wanted.merge_strategy
        limit = self.settings.max_payload_bytes
        if override is not None:
            check_payload(override, limit, "payload_override")
        cue = await self.store.cues.get(user.id, cue_id)
        if cue is None:
            raise cue_not_found()
        if self.limits is not None:
            await self.limits.check_execution_limit(user)  # E6: no grace for manual fires
        payload = cue.payload
        if override is not None:
            payload = dict(override) if strategy == "replace" else {**cue.payload, **override}
            check_payload(payload, limit, "payload_override")  # the merge can grow it
        now_ms = self.clock.now_ms()
        execution = new_execution(cue, now_ms, TriggeredBy.MANUAL_FIRE.value, now_ms, payload)
        if not await self.firing.fire_now(cue, execution):
            raise cue_not_found()  # the cue was deleted meanwhile
        return execution
