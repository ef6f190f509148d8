"""Turning due cues into executions: scheduled fires, catch-up, and the missed ledger.

A fire writes its executions and the cue's next fire instant in one transaction before
anything is delivered (persist before acting). Occurrences that fell due while the server
was not running, or more than `misfire_grace_s` ago while it ran (host asleep, clock
moved), were missed: each still gets a history row, and the cue's `catch_up` policy
decides which of them run (CONTRACT §6.5):

* `skip_missed`: none runs; all are recorded as `missed`.
* `run_once_if_missed` (default): the most recent runs (`triggered_by: catch_up`), the
  older ones are recorded as `missed`.
* `replay_all_missed`: every one runs, oldest first.

`missed_reason` says why an occurrence did not run at its time: `server_down`,
`host_asleep`, `clock_jump`, `catch_up_skipped` (the cue's policy is `skip_missed`; the
message names the cause) or `execution_limit` (over the monthly limit and its 24 h of
grace, CONTRACT §2.4).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from .clock import Clock
from .config import Settings
from .cron import schedule_for
from .leases import unclaimed_deadline
from .limits import Budget
from .models import (
    CatchUp,
    Cue,
    CueStatus,
    Execution,
    ExecutionStatus,
    MissedReason,
    Transport,
    TriggeredBy,
    iso,
    new_execution,
)
from .scheduler import Due, Kind, Scheduler
from .store import Deadline, FirePlan, Store, Tx
from .telemetry import Telemetry

__all__ = ["Firing", "Handoff", "apply_fires", "fire_deadline", "insert_fire", "next_fire_ms"]

log = logging.getLogger(__name__)
Budgets = Callable[[list[str], int], Awaitable[dict[str, Budget]]]
# Cues fired per transaction of a burst.
FIRE_SLICE = 100
# A burst's later slices while another deadline falls due within NEAR_MS: smaller, so
# that deadline waits for less of the burst's work on the event loop and at the writer.
# Not always: a burst alone would take four times the transactions (see the design notes).
FIRE_SLICE_NEAR = 25
NEAR_MS = 1_000
# The heap holds at most this many fires read from the database at once (plus those set
# since); later ones wait in the cues' next-fire index until the heap gets near them.
FIRE_HORIZON_ENTRIES = 5_000
# The next fires are read this long before the horizon, so they are on the heap in time.
HORIZON_LEAD_MS = 1_000
EARLIEST_MS = -(2**62)
# A due cue another node holds is looked at again this much later.
HELD_RETRY_MS = 250

_MISSED_TEXT = {
    MissedReason.SERVER_DOWN: "the server was not running",
    MissedReason.HOST_ASLEEP: "the host was asleep",
    MissedReason.CLOCK_JUMP: "the system clock moved",
}


def next_fire_ms(cue: Cue, after_ms: int) -> int | None:
    """The cue's first fire instant strictly after `after_ms` (None when there is none).

    A `once` cue fires at its `at`; one whose `at` is already past fires at `after_ms`
    (the caller only asks while that is within the grace the API allows).
    """
    if cue.schedule.type == "once":
        at_ms = cue.schedule.at_ms
        return None if at_ms is None else max(at_ms, after_ms)
    assert cue.schedule.cron is not None
    return schedule_for(cue.schedule.cron, cue.schedule.timezone).next_after(after_ms)


class Handoff(Protocol):
    """Where new executions go to run (`DeliveryService`)."""

    def reserve(self, cue: Cue, execution: Execution, now_ms: int) -> Execution:
        """`execution` as its fire writes it (its first attempt begun when it can start
        at once; what that takes is held until `dispatch` or `release`)."""
        ...

    def dispatch(self, cue: Cue, executions: list[Execution]) -> None:
        """Runnable executions of `cue`, written."""
        ...

    def release(self, executions: list[Execution]) -> None:
        """Reserved executions that were not written."""
        ...


def fire_deadline(cue: Cue) -> Deadline | None:
    """The cue's next fire, for the heap (active cues only)."""
    if cue.status != CueStatus.ACTIVE or cue.next_fire_at_ms is None:
        return None
    return Deadline(Kind.FIRE, cue.id, cue.next_fire_at_ms)


def _wait_for_worker(tx: Tx, execution: Execution, transport: str, expiry_ms: int) -> None:
    if transport == Transport.WORKER and execution.status == ExecutionStatus.PENDING:
        deadline = unclaimed_deadline(execution, expiry_ms)
        if deadline is not None:
            tx.after_commit(deadline)


def apply_fires(
    tx: Tx, plans: list[FirePlan], transports: dict[str, str], now_ms: int, unclaimed_ms: int
) -> tuple[set[str], list[Execution]]:
    """Apply each plan whose compare-and-set on its cue holds (still active, still due
    at `expected_next_ms`), counting its runnable executions as fired; a lost plan
    writes nothing. Returns the cues another transaction holds (another node is firing
    them: nothing written, look again shortly) and the executions inserted (an
    occurrence that already has a row is not inserted again, and not returned)."""
    taken = tx.take_due([plan.cue_id for plan in plans])
    held = {plan.cue_id for plan in plans} - taken
    fires = [
        (plan, sum(1 for e in plan.executions if e.status != ExecutionStatus.MISSED))
        for plan in plans
        if plan.cue_id not in held
    ]
    candidates: list[Execution] = []
    for (plan, _fired), applied in zip(fires, tx.apply_fires(fires, now_ms), strict=True):
        if not applied:
            continue
        candidates.extend(plan.executions)
        if plan.new_next_ms is not None:
            tx.after_commit(Deadline(Kind.FIRE, plan.cue_id, plan.new_next_ms))
    inserted = tx.insert_executions(candidates)
    for execution in inserted:
        _wait_for_worker(tx, execution, transports[execution.cue_id], unclaimed_ms)
    return held, inserted


def insert_fire(tx: Tx, cue: Cue, execution: Execution, unclaimed_ms: int) -> bool:
    """Insert an unscheduled execution (manual fire, replay) and count it as fired on
    its cue; False when it was not inserted (its cue is gone)."""
    if tx.cue_state(cue.id) is None or not tx.insert_executions([execution]):
        return False
    tx.count_fire(cue.id)
    _wait_for_worker(tx, execution, cue.transport, unclaimed_ms)
    return True


class Firing:
    def __init__(
        self,
        store: Store,
        scheduler: Scheduler,
        clock: Clock,
        settings: Settings,
        handoff: Handoff,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.store = store
        self.telemetry = telemetry or Telemetry()
        self.scheduler = scheduler
        self.clock = clock
        self.settings = settings
        self.handoff = handoff
        # Why late occurrences were missed; the first wake-up after a start finds the ones
        # that fell due while the server was down.
        self.missed_reason = MissedReason.SERVER_DOWN
        # When this process started: an occurrence that fell due before it (of a cue that
        # existed then) fell due while the server was not running, however short the gap.
        self.started_ms = 0
        # Monthly execution budgets per user; the app sets this only when a limit is
        # configured, so by default the fire path makes no limit lookup at all.
        self.budgets: Budgets | None = None
        self.horizon_entries = FIRE_HORIZON_ENTRIES
        # The last clock change and the wake-up that saw it: fires read from beyond the
        # heap's horizon after that wake-up, due before it, fell due during the change.
        self._change: tuple[MissedReason, int] | None = None
        self._bursts: set[asyncio.Task[None]] = set()  # later slices being written
        scheduler.on(Kind.FIRE, self.fire_due)
        scheduler.on(Kind.FIRE_HORIZON, self._horizon_due)

    @property
    def busy(self) -> bool:
        return bool(self._bursts)

    async def drain(self) -> None:
        """Wait until every burst's later slices are written."""
        while self._bursts:
            await asyncio.wait(set(self._bursts))

    async def aclose(self) -> None:
        """Stop writing bursts: cues not fired yet are still due at the next start."""
        for task in list(self._bursts):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def unclaimed_ms(self) -> int:
        return self.settings.unclaimed_expiry_s * 1000

    async def fire_now(self, cue: Cue, execution: Execution) -> bool:
        """Record an unscheduled execution of `cue` and hand it on (see `insert_fire`)."""
        # Written `pending`, as the answer to a manual fire or replay says (CONTRACT E6).
        inserted = await self.store.transact(
            lambda tx: insert_fire(tx, cue, execution, self.unclaimed_ms)
        )
        if inserted:
            self.handoff.dispatch(cue, [execution])
        return inserted

    async def load(self) -> int:
        """At start: the earliest next fires on the heap (see `_read_ahead`)."""
        return await self._read_ahead(EARLIEST_MS)

    async def _read_ahead(self, from_ms: int) -> int:
        """Put the next fires at or after `from_ms` on the heap, earliest first: at most
        `horizon_entries` of them, but every fire of one instant (when the first instant
        alone holds more, all of it shortly before it is due). When more are left, the
        first instant not taken is the horizon: fires set at or after it stay off the
        heap, and a FIRE_HORIZON entry reads on from it shortly before it is reached.
        Start-up and memory cost the fires that are near, not the number of cues."""
        # Every fire set while reading is kept: the read may not see its commit.
        self.scheduler.hold(Kind.FIRE, None)
        limit = self.horizon_entries
        fires = await self.store.cues.fires_from(from_ms, limit + 1)
        horizon = None
        if len(fires) > limit and fires[0][1] == fires[-1][1]:
            # One instant holds more than the limit: all of it is read shortly before it.
            if fires[0][1] - HORIZON_LEAD_MS > self.clock.now_ms():
                fires, horizon = [], fires[0][1]
            while len(fires) > limit and fires[0][1] == fires[-1][1]:
                limit *= 2
                fires = await self.store.cues.fires_from(from_ms, limit + 1)
        if len(fires) > limit:
            horizon = fires[-1][1]
            fires = [fire for fire in fires if fire[1] < horizon]
        self.scheduler.hold(Kind.FIRE, horizon)
        for cue_id, due_ms in fires:
            self.scheduler.push(due_ms, Kind.FIRE, cue_id)
        if horizon is not None:
            self.scheduler.push(horizon - HORIZON_LEAD_MS, Kind.FIRE_HORIZON, str(horizon))
        return len(fires)

    async def _horizon_due(self, entries: list[Due], now_ms: int) -> None:
        horizon = self.scheduler.horizon(Kind.FIRE)
        if horizon is not None and str(horizon) in {key for _, key in entries}:
            await self._read_ahead(horizon)  # others are stale (the heap was re-planned)

    async def fire_due(self, entries: list[Due], now_ms: int) -> None:
        # In slices, so that a burst's first deliveries start while later slices are
        # still being written (the writer thread works beside the event loop).
        reason, self.missed_reason = self.missed_reason, MissedReason.SERVER_DOWN
        if reason != MissedReason.SERVER_DOWN:
            self._change = (reason, now_ms)
        elif self._change is not None and entries[0][0] <= self._change[1]:
            reason = self._change[0]
        await self._fire_slice(entries[:FIRE_SLICE], now_ms, reason, urgent=True)
        if len(entries) > FIRE_SLICE:
            # The rest is written beside the scheduler's loop, which meanwhile handles
            # every other deadline at its time: a cue that falls due during a burst is
            # fired then, and its write (urgent) goes before the burst's queued slices.
            task = asyncio.ensure_future(self._fire_rest(entries[FIRE_SLICE:], now_ms, reason))
            self._bursts.add(task)
            task.add_done_callback(self._bursts.discard)

    async def _fire_rest(self, entries: list[Due], now_ms: int, reason: MissedReason) -> None:
        start = 0
        while start < len(entries):
            size = FIRE_SLICE
            next_due_ms = self.scheduler.next_due_ms()
            if next_due_ms is not None and next_due_ms - self.clock.now_ms() < NEAR_MS:
                size = min(size, FIRE_SLICE_NEAR)
            piece = entries[start : start + size]
            start += size
            try:
                await self._fire_slice(piece, now_ms, reason, urgent=False)
            except Exception:
                log.exception("firing %d due cues failed; retrying them", len(piece))
                self.scheduler.retry_later(Kind.FIRE, piece, self.clock.now_ms())

    async def _fire_slice(
        self, entries: list[Due], now_ms: int, reason: MissedReason, urgent: bool
    ) -> None:
        due = {key: due_ms for due_ms, key in entries}
        cues = await self.store.cues.get_many(list(due))
        plans: list[FirePlan] = []
        by_id: dict[str, Cue] = {}
        for cue in cues:
            next_ms = cue.next_fire_at_ms
            if cue.status != CueStatus.ACTIVE or next_ms is None or next_ms > due[cue.id]:
                continue  # a stale heap entry: the cue was paused, edited, deleted or fired
            plans.append(self.plan(cue, now_ms, reason))
            by_id[cue.id] = cue
        if not plans:
            return
        if self.budgets is not None:
            plans = await self._within_budget(plans, by_id, now_ms)
        for plan in plans:
            cue = by_id[plan.cue_id]
            plan.executions = [self.handoff.reserve(cue, e, now_ms) for e in plan.executions]
        transports = {cue_id: cue.transport for cue_id, cue in by_id.items()}
        try:
            held, inserted = await self.store.transact(
                lambda tx: apply_fires(tx, plans, transports, now_ms, self.unclaimed_ms), urgent
            )
        except BaseException:
            self.handoff.release([e for plan in plans for e in plan.executions])
            raise
        written = {execution.id for execution in inserted}
        self.handoff.release([e for plan in plans for e in plan.executions if e.id not in written])
        again_ms = now_ms + HELD_RETRY_MS
        horizon = self.scheduler.horizon(Kind.FIRE)
        if horizon is not None:  # the cue is due: a read from the horizon would not find it
            again_ms = min(again_ms, horizon - 1)
        for cue_id in held:
            # Another node is firing it: look again once its transaction is over (then
            # the cue is no longer due, or that node failed and it is fired here).
            self.scheduler.push(again_ms, Kind.FIRE, cue_id)
        runnable: dict[str, list[Execution]] = {}
        for execution in inserted:
            if execution.status != ExecutionStatus.MISSED:
                runnable.setdefault(execution.cue_id, []).append(execution)
        for cue_id, executions in runnable.items():
            self.telemetry.fired(by_id[cue_id], executions, now_ms)
            self.handoff.dispatch(by_id[cue_id], executions)

    async def _within_budget(
        self, plans: list[FirePlan], cues: dict[str, Cue], now_ms: int
    ) -> list[FirePlan]:
        """Over the monthly execution limit and past its 24 h of grace, a plan's runs are
        recorded as missed (`execution_limit`) instead (CONTRACT §2.4). One budget lookup
        per distinct user of the slice."""
        assert self.budgets is not None
        budgets = await self.budgets(sorted({cues[p.cue_id].user_id for p in plans}), now_ms)
        kept: list[FirePlan] = []
        for plan in plans:
            runs = sum(1 for e in plan.executions if e.status == ExecutionStatus.PENDING)
            budget = budgets.get(cues[plan.cue_id].user_id)
            if not runs or budget is None or budget.admit(runs, now_ms):
                kept.append(plan)
                continue
            executions = [self._over_limit(e) for e in plan.executions]
            self.telemetry.held_back(plan.cue_id, runs, MissedReason.EXECUTION_LIMIT.value)
            # A `once` cue whose only run was held back will never run.
            new_status = CueStatus.FAILED.value if plan.new_next_ms is None else plan.new_status
            kept.append(dataclasses.replace(plan, executions=executions, new_status=new_status))
        return kept

    def _over_limit(self, execution: Execution) -> Execution:
        if execution.status != ExecutionStatus.PENDING:
            return execution
        return dataclasses.replace(
            execution,
            status=ExecutionStatus.MISSED.value,
            missed_reason=MissedReason.EXECUTION_LIMIT.value,
            error_message="Not run: the monthly execution limit was reached more than 24 hours ago",
        )

    def plan(self, cue: Cue, now_ms: int, reason: MissedReason) -> FirePlan:
        """The executions for every occurrence of `cue` due by `now_ms`, and its next fire."""
        first = cue.next_fire_at_ms
        assert first is not None
        limit = self.settings.max_missed_per_cue
        unrecorded_since = None
        if cue.schedule.type == "once":
            occurrences, new_next = [first], None
        else:
            assert cue.schedule.cron is not None
            schedule = schedule_for(cue.schedule.cron, cue.schedule.timezone)
            occurrences = [first]
            occurrences += [o.at_ms for o in schedule.between(first + 1, now_ms, limit)]
            if len(occurrences) > limit:
                # Too long an outage to list every occurrence: keep the newest ones (so
                # run_once_if_missed runs the true latest) and say what was left out.
                unrecorded_since = first
                step_ms = max(1, (occurrences[-1] - first) // (len(occurrences) - 1))
                start = max(occurrences[-1] + 1, now_ms - step_ms * (limit // 2))
                newest = [o.at_ms for o in schedule.between(start, now_ms, limit)]
                occurrences = newest or occurrences[-1:]
            new_next = schedule.next_after(max(now_ms, occurrences[-1]))
        # The grace is for lateness while running; downtime is never an ordinary fire.
        grace_ms = self.settings.misfire_grace_s * 1000
        down_until_ms = self.started_ms if cue.created_at_ms < self.started_ms else 0
        # Occurrences are oldest first, so the missed ones are a prefix.
        split = sum(1 for at in occurrences if now_ms - at > grace_ms or at < down_until_ms)
        late, on_time = occurrences[:split], occurrences[split:]
        if any(at < down_until_ms for at in late):
            reason = MissedReason.SERVER_DOWN
        run: list[tuple[int, str]] = [(at, TriggeredBy.SCHEDULE.value) for at in on_time]
        missed: list[int] = []
        if late:
            if cue.catch_up == CatchUp.REPLAY_ALL_MISSED:
                run = [(at, TriggeredBy.CATCH_UP.value) for at in late] + run
            elif cue.catch_up == CatchUp.RUN_ONCE_IF_MISSED and not on_time:
                missed = late[:-1]
                run = [(late[-1], TriggeredBy.CATCH_UP.value)]
            else:  # skip_missed, or run_once_if_missed with an on-time occurrence to run
                missed = late
        executions = [self._missed(cue, at, reason, now_ms) for at in missed]
        executions += [new_execution(cue, at, by, now_ms) for at, by in run]
        if unrecorded_since is not None:
            oldest = min(executions, key=lambda e: e.scheduled_for_ms)
            oldest.error_message = (
                (oldest.error_message + "; " if oldest.error_message else "")
                + f"earlier occurrences since {iso(unrecorded_since)} were also missed"
                + f" ({reason.value}) but are not listed one by one (max_missed_per_cue)"
            )
        if late:
            span = (
                f"from {iso(late[0])} to {iso(late[-1])}" if len(late) > 1 else f"at {iso(late[0])}"
            )
            ran_late = sum(1 for _at, by in run if by == TriggeredBy.CATCH_UP.value)
            self.telemetry.caught_up(cue, reason.value, len(missed), ran_late, span)
        # A `once` cue whose only occurrence was skipped will never run: say so.
        new_status = CueStatus.FAILED.value if new_next is None and not run else None
        return FirePlan(cue.id, first, new_next, executions, new_status)

    def _missed(self, cue: Cue, at_ms: int, reason: MissedReason, now_ms: int) -> Execution:
        message = f"Not run: {_MISSED_TEXT.get(reason, reason.value)} at this time"
        message += f"; catch_up={cue.catch_up}"
        # skip_missed is the owner's choice not to run missed occurrences: the reason says
        # so, and the message keeps the cause. Otherwise the reason is the cause.
        if cue.catch_up == CatchUp.SKIP_MISSED:
            reason = MissedReason.CATCH_UP_SKIPPED
        return dataclasses.replace(
            new_execution(cue, at_ms, TriggeredBy.SCHEDULE.value, now_ms),
            status=ExecutionStatus.MISSED.value,
            missed_reason=reason.value,
            error_message=message,
        )
