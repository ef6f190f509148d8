"""Webhook delivery: a bounded pool of attempts, retries on the scheduler's heap.

An attempt is: `pending|retrying -> delivering` (persisted), a signed request through the
injected `Deliverer`, then `success | retrying | failed` (persisted). 2xx is delivered
(never retried); anything else, a timeout or a connection error is a failed attempt, and
`retry.max_attempts` counts all attempts (CONTRACT §7.4, H29). Each attempt is signed anew
with a fresh timestamp (H26).

A first attempt whose worker is free when its execution is made begins in that
execution's own transaction: the row is written `delivering` (attempt 1), so the request
goes out one write sooner. An attempt that waits for a worker is written `pending` and
begun when a worker takes it, so the history never shows a queued attempt as in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from .alerts import alert_on_outcome, check_consecutive_failures
from .clock import Clock
from .models import Callback, Cue, Execution, ExecutionStatus, Retry, Transport, iso
from .outcomes import UnreadableAnswer, outcome_from_response, outcome_state
from .runs import count_run, count_runs
from .scheduler import Due, Kind, Scheduler
from .store import AttemptResult, Deadline, Finished, Store, Tx
from .telemetry import Telemetry, stopwatch
from .webhooks import (
    RESERVED_HEADERS,
    USER_AGENT,
    Deliverer,
    DeliveryFailed,
    WebhookRequest,
    execution_body,
    sign,
)

__all__ = ["DeliveryJob", "DeliveryService", "begun", "finish_attempt"]

log = logging.getLogger(__name__)
RESPONSE_EXCERPT_CHARS = 2000
Item = TypeVar("Item")
Answer = TypeVar("Answer")


@functools.lru_cache(maxsize=256)
def _instant(at_ms: int) -> str:
    """`iso` of a scheduled instant, remembered: a burst's executions share theirs."""
    return iso(at_ms) or ""


def finish_attempt(tx: Tx, result: AttemptResult, now_ms: int) -> Finished | None:
    """delivering (attempt n) -> success | retrying | failed, in one transaction.

    Delivered: `success`; the outcome from the response body is recorded if none
    exists (with the alerts its state calls for); the cue counts a run. Not delivered
    with `retry_at_ms`: `retrying` until then. Otherwise `failed`, the cue counts a run,
    and the failure may complete a streak of consecutive failures. None when the row is
    no longer in attempt n (deleted, or finished by someone else).
    """
    if result.delivered:
        status = ExecutionStatus.SUCCESS
    elif result.retry_at_ms is not None:
        status = ExecutionStatus.RETRYING
    else:
        status = ExecutionStatus.FAILED
    ref = tx.finish_attempt(result, status, now_ms)
    if ref is None:
        return None
    if (
        result.outcome is not None
        and result.outcome_state is not None
        and tx.write_outcome(ref.id, result.outcome, result.outcome_state, now_ms)
    ):
        alert_on_outcome(tx, ref.cue_id, ref.id, result.outcome_state, now_ms)
    cue_status = ""
    if status != ExecutionStatus.RETRYING:
        cue_status = count_run(tx, ref, result.delivered, now_ms) or ""
    if status == ExecutionStatus.FAILED:
        check_consecutive_failures(tx, ref.cue_id, ref.id, now_ms)
    if result.retry_at_ms is not None:
        tx.after_commit(Deadline(Kind.RETRY, ref.id, result.retry_at_ms))
    if result.outcome_deadline_ms is not None:
        tx.after_commit(Deadline(Kind.OUTCOME_DEADLINE, ref.id, result.outcome_deadline_ms))
    return Finished(ref.cue_id, status.value, cue_status)


def finish_attempts(tx: Tx, results: list[AttemptResult], now_ms: int) -> list[Finished | None]:
    """`finish_attempt` for each result. A batch of delivered attempts with no outcome in
    their answers (a burst's) is written in a few statements for all, each cue's run
    counted as `finish_attempt` counts it; any other batch, one attempt at a time."""
    found = None
    if len(results) > 1 and all(r.delivered and r.outcome is None for r in results):
        found = tx.finish_delivered(results, now_ms)
    if found is None:
        return [finish_attempt(tx, result, now_ms) for result in results]
    statuses = count_runs(tx, [ref for ref, _cue in found], [cue for _ref, cue in found], now_ms)
    for result in results:
        if result.outcome_deadline_ms is not None:
            tx.after_commit(Deadline(Kind.OUTCOME_DEADLINE, result.execution_id,
                                     result.outcome_deadline_ms))  # fmt: skip
    success = ExecutionStatus.SUCCESS.value
    return [
        Finished(ref.cue_id, success, status or "")
        for (ref, _cue), status in zip(found, statuses, strict=True)
    ]


def begun(execution: Execution, now_ms: int) -> Execution:
    """A new execution as it is written when its first attempt begins with it: what
    `begin_attempts` makes of a pending row, `pending -> delivering` (attempt 1)."""
    return dataclasses.replace(
        execution,
        status=ExecutionStatus.DELIVERING.value,
        attempts=execution.attempts + 1,
        started_at_ms=now_ms,
        last_attempt_at_ms=now_ms,
        updated_at_ms=now_ms,
    )


@dataclasses.dataclass(slots=True)  # not frozen: built per execution (see models)
class DeliveryJob:
    """Everything one attempt needs, captured from the cue when the execution was made."""

    execution_id: str
    cue_id: str
    user_id: str
    cue_name: str
    scheduled_for_ms: int
    payload: dict[str, Any]
    callback: Callback
    retry: Retry
    timeout_s: int
    outcome_deadline_s: int
    verification_mode: str

    @classmethod
    def of(cls, cue: Cue, execution: Execution) -> DeliveryJob:
        return cls(
            execution_id=execution.id,
            cue_id=cue.id,
            user_id=cue.user_id,
            cue_name=cue.name,
            scheduled_for_ms=execution.scheduled_for_ms,
            payload=execution.payload,
            callback=cue.callback,
            retry=cue.retry,
            timeout_s=cue.delivery.timeout_seconds,
            outcome_deadline_s=cue.delivery.outcome_deadline_seconds,
            verification_mode=cue.verification.mode,
        )


class _Lanes:
    """Attempts waiting for a worker, one lane per scheduled instant, taken round robin:
    the 10,000 attempts of one instant never make an attempt of another instant wait
    behind them (an unrelated cue due during a burst is sent by the next free worker)."""

    def __init__(self) -> None:
        self._lanes: OrderedDict[int, deque[DeliveryJob]] = OrderedDict()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def put(self, job: DeliveryJob) -> None:
        lane = self._lanes.get(job.scheduled_for_ms)
        if lane is None:
            lane = self._lanes[job.scheduled_for_ms] = deque()
        lane.append(job)
        self._count += 1

    def holds(self, instant: int) -> bool:
        return instant in self._lanes

    def take(self) -> DeliveryJob:
        instant, lane = next(iter(self._lanes.items()))
        job = lane.popleft()
        self._count -= 1
        if lane:
            self._lanes.move_to_end(instant)
        else:
            del self._lanes[instant]
        return job


class _Batched(Generic[Item, Answer]):
    """Calls made during one turn of the event loop, run as one: the attempts of a burst
    begin together and finish together, one write for all instead of one write each.

    `run(items)` answers each item in order, an exception standing for that item's
    failure; if `run` itself raises, every item of the batch fails with it.
    """

    def __init__(self, run: Callable[[list[Item]], Awaitable[list[Answer | Exception]]]) -> None:
        self._run = run
        self._waiting: list[tuple[Item, asyncio.Future[Answer]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, item: Item) -> Answer:
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        if not self._waiting:
            # A task's first step runs on the loop's next turn: by then every call of
            # this turn has joined the batch.
            task = asyncio.ensure_future(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._waiting.append((item, future))
        return await future

    async def _flush(self) -> None:
        batch, self._waiting = self._waiting, []
        try:
            answers = await self._run([item for item, _future in batch])
        except Exception as exc:
            answers = [exc] * len(batch)
        for (_item, future), answer in zip(batch, answers, strict=True):
            if future.done():  # its caller was cancelled
                continue
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(answer)


class DeliveryService:
    def __init__(
        self,
        store: Store,
        scheduler: Scheduler,
        clock: Clock,
        deliverer: Deliverer,
        concurrency: int = 64,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.store = store
        self.telemetry = telemetry or Telemetry()
        self.scheduler = scheduler
        self.clock = clock
        self.deliverer = deliverer
        self.concurrency = concurrency
        # Attempts waiting for a worker. A worker is a task that sends one attempt after
        # another while any wait; it is taken (counted in `_in_flight`) before its task
        # exists, so the fire that reserves one can write the attempt as begun.
        self._lanes = _Lanes()
        self._workers: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        # Workers beside a saturated pool: the first attempt of an instant (a cue due
        # during a burst) need not wait for one of the burst's to end.
        self._extra_limit = max(1, concurrency // 8)
        self._sending: dict[int, int] = {}  # workers taken per scheduled instant
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._secrets: dict[str, str] = {}
        self._begin = _Batched(self._begin_many)
        self._finish = _Batched(self._finish_many)
        scheduler.on(Kind.RETRY, self._retries_due)

    # --- lifecycle ------------------------------------------------------------------

    async def aclose(self) -> None:
        # What is handed on from now (a fire finishing during shutdown) stays in the
        # database, `pending` or `delivering`, for the next start.
        self._closed = True
        tasks = list(self._workers)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def drain(self) -> None:
        """Wait until no attempt is queued or in flight."""
        while self._lanes or self._in_flight:
            self._idle.clear()
            await self._idle.wait()

    @property
    def in_flight(self) -> int:
        """Workers taken: attempts being sent, and attempts whose fire is being written."""
        return self._in_flight

    @property
    def queued(self) -> int:
        return len(self._lanes)

    @property
    def busy(self) -> bool:
        return bool(self._lanes or self._in_flight)

    def submit(self, job: DeliveryJob) -> None:
        """Send an attempt of `job` (pending or retrying) when a worker is free for it."""
        if self._take_worker(job.scheduled_for_ms):
            self._start(job, None)
        else:
            self._lanes.put(job)

    def reserve(self, cue: Cue, execution: Execution, now_ms: int) -> Execution:
        """The new `execution` as its fire writes it: begun (see `begun`) when a worker
        is free for it now, which is then held for it until `dispatch` or `release`."""
        if (
            cue.transport != Transport.WEBHOOK
            or execution.status != ExecutionStatus.PENDING
            or not self._take_worker(execution.scheduled_for_ms)
        ):
            return execution
        return begun(execution, now_ms)

    def dispatch(self, cue: Cue, executions: list[Execution]) -> None:
        """New runnable executions of `cue`, written: webhook ones are sent (those begun
        with their fire on the worker reserved for them); worker ones wait for a claim
        (a worker cue's callback is stored but never delivered to)."""
        if cue.transport == Transport.WORKER:
            return
        for execution in executions:
            job = DeliveryJob.of(cue, execution)
            if execution.status == ExecutionStatus.DELIVERING:
                self._start(job, execution.attempts)
            else:
                self.submit(job)

    def release(self, executions: list[Execution]) -> None:
        """Give back the workers reserved for begun executions that were not written (the
        fire lost its compare-and-set, the occurrence had a row, the write failed)."""
        for execution in executions:
            if execution.status != ExecutionStatus.DELIVERING:
                continue
            self._worker_done(execution.scheduled_for_ms)
            if self._room_for_waiting():
                self._start(self._take_waiting(), None)
            else:
                self._leave()

    def secret_changed(self, user_id: str) -> None:
        """Forget a cached webhook secret (after rotation the next attempt reads anew)."""
        self._secrets.pop(user_id, None)

    async def resume(self, now_ms: int) -> int:
        """After a start: send what was pending or cut off, re-plan waiting retries."""
        await self.store.executions.requeue_interrupted(now_ms)
        executions = await self.store.executions.open_webhook_executions()
        cues = {c.id: c for c in await self.store.cues.get_many(
            sorted({e.cue_id for e in executions}))}  # fmt: skip
        for execution in executions:
            cue = cues.get(execution.cue_id)
            if cue is None:
                continue
            if execution.status == ExecutionStatus.RETRYING and execution.next_retry_ms:
                self.scheduler.push(execution.next_retry_ms, Kind.RETRY, execution.id)
            else:
                self.submit(DeliveryJob.of(cue, execution))
        return len(executions)

    async def plan_retries(self) -> None:
        """Put every waiting retry on the heap (after the heap was re-planned)."""
        for execution in await self.store.executions.open_webhook_executions():
            if execution.status == ExecutionStatus.RETRYING and execution.next_retry_ms:
                self.scheduler.push(execution.next_retry_ms, Kind.RETRY, execution.id)

    # --- the pool -------------------------------------------------------------------

    def _take_worker(self, instant: int) -> bool:
        """Take a worker for an attempt of `instant`, if one may start now: one of the
        pool's, or, when every one is busy (a burst), one beside them for the first
        attempt of another instant (none of it waiting or in flight), so that it does
        not wait for one of the burst's attempts to end."""
        if self._in_flight >= self.concurrency and (
            self._in_flight >= self.concurrency + self._extra_limit
            or instant in self._sending
            or self._lanes.holds(instant)
        ):
            return False
        self._in_flight += 1
        self._idle.clear()
        self._worker_on(instant)
        return True

    def _worker_on(self, instant: int) -> None:
        self._sending[instant] = self._sending.get(instant, 0) + 1

    def _worker_done(self, instant: int) -> None:
        if self._sending[instant] == 1:
            del self._sending[instant]
        else:
            self._sending[instant] -= 1

    def _room_for_waiting(self) -> bool:
        """Whether a worker that is free takes a waiting attempt: one beside a saturated
        pool leaves instead."""
        return bool(self._lanes) and self._in_flight <= self.concurrency

    def _take_waiting(self) -> DeliveryJob:
        job = self._lanes.take()
        self._worker_on(job.scheduled_for_ms)
        return job

    def _leave(self) -> None:
        self._in_flight -= 1
        if not self._lanes and not self._in_flight:
            self._idle.set()

    def _start(self, job: DeliveryJob, attempt: int | None) -> None:
        """Send `job` on the worker taken for it (`attempt` when already begun)."""
        if self._closed:
            return
        task = asyncio.ensure_future(self._work(job, attempt))
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    async def _work(self, job: DeliveryJob, attempt: int | None) -> None:
        """One worker: this attempt, then waiting ones (see `_room_for_waiting`)."""
        try:
            while True:
                try:
                    await self.attempt(job, attempt)
                except Exception:
                    log.exception("delivery attempt for execution %s crashed", job.execution_id)
                finally:
                    self._worker_done(job.scheduled_for_ms)
                if not self._room_for_waiting():
                    return
                job, attempt = self._take_waiting(), None
        finally:
            self._leave()

    async def _retries_due(self, entries: list[Due], now_ms: int) -> None:
        due = {key: due_ms for due_ms, key in entries}
        executions = [await self.store.executions.get_any(key) for key in due]
        waiting = [
            e for e in executions
            if e is not None and e.status == ExecutionStatus.RETRYING
            and e.next_retry_ms == due[e.id]
        ]  # fmt: skip
        cues = {c.id: c for c in await self.store.cues.get_many(
            sorted({e.cue_id for e in waiting}))}  # fmt: skip
        for execution in waiting:
            cue = cues.get(execution.cue_id)
            if cue is not None:
                # Re-read the cue: a retry uses its current callback and retry policy.
                self.submit(DeliveryJob.of(cue, execution))

    async def _secret(self, user_id: str) -> str | None:
        secret = self._secrets.get(user_id)
        if secret is None:
            found = await self.store.users.secrets_for([user_id])
            secret = found.get(user_id)
            if secret is not None:
                self._secrets[user_id] = secret
        return secret

    # --- one attempt ----------------------------------------------------------------

    def build_request(self, job: DeliveryJob, attempt: int, secret: str) -> WebhookRequest:
        scheduled_for = _instant(job.scheduled_for_ms)
        body = execution_body(
            job.execution_id, job.cue_id, job.cue_name, scheduled_for, attempt, job.payload
        )
        timestamp_s = self.clock.now_ms() // 1000
        headers = {"User-Agent": USER_AGENT}
        for name, value in job.callback.headers.items():
            if name.lower() not in RESERVED_HEADERS and not name.lower().startswith("x-cueapi-"):
                headers[name] = value
        headers.update(
            {
                "Content-Type": "application/json",
                "X-CueAPI-Signature": sign(secret, timestamp_s, body),
                "X-CueAPI-Timestamp": str(timestamp_s),
                "X-CueAPI-Cue-Id": job.cue_id,
                "X-CueAPI-Execution-Id": job.execution_id,
                "X-CueAPI-Scheduled-For": scheduled_for,
                "X-CueAPI-Attempt": str(attempt),
            }
        )
        method = job.callback.method.upper()
        return WebhookRequest(
            url=job.callback.url or "",
            method=method,
            headers=headers,
            body=None if method == "GET" else body,  # H32: GET carries no body
            timeout_s=float(job.timeout_s),
        )

    async def attempt(self, job: DeliveryJob, attempt: int | None = None) -> None:
        """One attempt of `job`: begun here, unless its fire began it (`attempt`)."""
        if attempt is None:
            attempt = await self._begin(job.execution_id)
        if attempt is None:
            return  # deleted, or another attempt got there first
        started = stopwatch()
        try:
            result = await self._deliver(job, attempt)
        except Exception:
            # Whatever went wrong, the attempt ends in a recorded state: a row left in
            # `delivering` would never be retried, replayed or given a deadline.
            log.exception("delivery attempt for execution %s crashed", job.execution_id)
            result = self._failed(job, attempt, None, "The attempt failed inside the server")
        self.telemetry.attempted(
            job.execution_id, job.cue_name, job.callback.url, attempt, job.retry.max_attempts,
            result.http_status, stopwatch() - started, result.error_message, result.retry_at_ms,
        )  # fmt: skip
        try:
            finished = await self._finish(result)
        except Exception:
            log.exception("recording attempt %d of %s failed", attempt, job.execution_id)
            result = self._without_outcome(job, result, "it could not be stored")
            finished = await self._finish(result)
        if finished is not None and result.outcome_state is not None:
            self.telemetry.outcome(job.execution_id, result.outcome_state, "webhook answer")

    async def _begin_many(self, execution_ids: list[str]) -> list[int | Exception | None]:
        begun = await self.store.executions.begin_attempts(execution_ids, self.clock.now_ms())
        return list(begun)

    async def _finish_many(self, results: list[AttemptResult]) -> list[Finished | Exception | None]:
        now_ms = self.clock.now_ms()
        try:
            finished = await self.store.transact(lambda tx: finish_attempts(tx, results, now_ms))
            return list(finished)
        except Exception as exc:
            if len(results) == 1:
                return [exc]
        # One of them could not be recorded: each on its own, so that the others are,
        # and the failure reaches only its own attempt.
        answers: list[Finished | Exception | None] = []
        for result in results:
            answers += await self._finish_many([result])
        return answers

    async def _deliver(self, job: DeliveryJob, attempt: int) -> AttemptResult:
        secret = await self._secret(job.user_id)
        if secret is None or not job.callback.url:
            return self._failed(job, attempt, None, "Cue has no callback URL or owner")
        request = self.build_request(job, attempt, secret)
        try:
            response = await self.deliverer.send(request)
        except DeliveryFailed as exc:
            return self._failed(job, attempt, None, str(exc))
        return self._answered(job, attempt, response.status, response.body)

    def _answered(self, job: DeliveryJob, attempt: int, status: int, raw: bytes) -> AttemptResult:
        excerpt = raw.decode("utf-8", errors="replace")[:RESPONSE_EXCERPT_CHARS] or None
        if not 200 <= status < 300:
            message = f"Webhook endpoint returned {status}"
            if 300 <= status < 400:
                message += " (redirects are not followed)"
            return self._failed(job, attempt, status, message, excerpt)
        now_ms = self.clock.now_ms()
        note = None
        try:
            outcome = outcome_from_response(raw, now_ms)
        except UnreadableAnswer as exc:
            outcome, note = None, str(exc)
        return AttemptResult(
            execution_id=job.execution_id,
            attempt=attempt,
            delivered=True,
            http_status=status,
            error_message=note,
            response_body=excerpt,
            outcome=outcome,
            outcome_state=outcome_state(outcome, job.verification_mode) if outcome else None,
            outcome_deadline_ms=None if outcome else now_ms + job.outcome_deadline_s * 1000,
        )

    def _without_outcome(self, job: DeliveryJob, result: AttemptResult, why: str) -> AttemptResult:
        """The same attempt with its outcome and response excerpt dropped, and why."""
        if result.outcome is None:
            return dataclasses.replace(result, response_body=None)
        deadline_ms = self.clock.now_ms() + job.outcome_deadline_s * 1000
        return dataclasses.replace(
            result,
            error_message=f"The receiver's answer was not recorded as an outcome: {why}",
            response_body=None,
            outcome=None,
            outcome_state=None,
            outcome_deadline_ms=deadline_ms if result.delivered else None,
        )

    def _failed(
        self,
        job: DeliveryJob,
        attempt: int,
        status: int | None,
        message: str,
        excerpt: str | None = None,
    ) -> AttemptResult:
        retry_at = None
        if attempt < job.retry.max_attempts:
            retry_at = self.clock.now_ms() + job.retry.delay_ms(attempt)
        return AttemptResult(
            execution_id=job.execution_id,
            attempt=attempt,
            delivered=False,
            http_status=status,
            error_message=message,
            response_body=excerpt,
            retry_at_ms=retry_at,
        )
