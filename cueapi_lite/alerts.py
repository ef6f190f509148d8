"""Alerts: the rules that raise them, the checks on the heap, and sending the outbox.

The rules are plain functions run inside the transaction of the change that calls for
an alert (a failed run, an outcome, a passed deadline), so the alert, its outbox rows
(one per channel of the cue's `on_failure`) and the `pause` action commit together with
that change: a crash can delay a notification, never lose it. One alert per (cue, type)
per five minutes. The time-based checks live here as heap entries: the outcome deadline
(no outcome in time -> `unknown` + `outcome_timeout`) and the missed window (no success
in interval x multiplier). The outbox is sent by email through SMTP and by a webhook
signed like a cue's (CONTRACT §6.4), retried with backoff.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import smtplib
import uuid
from functools import partial
from typing import Any

from .callbacks import CallbackPolicy, CallbackRefused
from .clock import Clock
from .cron import schedule_for
from .errors import NotFound
from .mailer import Mailer
from .models import (
    Alert,
    Cue,
    CueStatus,
    ExecutionStatus,
    OutcomeState,
    User,
    alert_json,
    iso,
)
from .scheduler import OUTBOX, Due, Kind, Scheduler
from .store import AlertFilters, CueState, Deadline, OutboxItem, Store, Tx
from .telemetry import Telemetry
from .webhooks import USER_AGENT, Deliverer, DeliveryFailed, WebhookRequest, canonical_body, sign

__all__ = [
    "AlertService",
    "alert_on_outcome",
    "check_consecutive_failures",
    "expire_outcome",
    "failure_streak",
    "missed_window",
    "missed_window_ms",
    "new_alert",
    "raise_alert",
    "window_deadline",
]

log = logging.getLogger(__name__)
SEND_BATCH = 100
RETRY_MINUTES = (1, 5, 15, 60)
MAX_SEND_ATTEMPTS = 5
ALERT_WEBHOOK_TIMEOUT_S = 30.0
DEDUP_MS = 5 * 60_000
SEVERITY = {
    "consecutive_failure": "critical",
    "missed_window": "warning",
    "outcome_timeout": "warning",
    "verification_failed": "warning",
}
_FINISHED = (ExecutionStatus.SUCCESS.value, ExecutionStatus.FAILED.value)
# With more watched cues than this, the heap holds only the missed-window checks that
# end within WINDOW_HORIZON_MS; a sweep over the watched cues reads the next ones
# halfway there. Below it, every check stays on the heap and there is no sweep.
WINDOW_HORIZON_CUES = 5_000
WINDOW_HORIZON_MS = 3_600_000
# Watched cues read per step of a sweep (each step is one heap entry, so fires and
# requests run between steps).
SWEEP_SLICE = 500
SWEEP_STEP = "step"


def missed_window_ms(cue: Cue) -> int | None:
    """When a recurring cue that has not succeeded since `watch_from` is overdue: the
    schedule's interval (the gap between its next two occurrences) x the multiplier."""
    if cue.schedule.type != "recurring" or cue.schedule.cron is None:
        return None
    start = cue.watch_from_ms if cue.watch_from_ms is not None else cue.created_at_ms
    return window_end_ms(
        cue.schedule.cron, cue.schedule.timezone, start, cue.alerts.missed_window_multiplier
    )


def window_end_ms(cron: str, timezone: str, start_ms: int, multiplier: int) -> int | None:
    """The end of a missed window that starts at `start_ms` (see `missed_window_ms`)."""
    schedule = schedule_for(cron, timezone)
    first = schedule.next_after(start_ms)
    second = None if first is None else schedule.next_after(first)
    if first is None or second is None:
        return None
    return start_ms + (second - first) * multiplier


def window_deadline(cue: Cue) -> Deadline | None:
    """The missed-window check of an active recurring cue, for the heap."""
    if cue.status != CueStatus.ACTIVE:
        return None
    due_ms = missed_window_ms(cue)
    return None if due_ms is None else Deadline(Kind.MISSED_WINDOW, cue.id, due_ms)


# --- the rules (run inside the transaction of the change) ------------------------------


def new_alert(
    cue: CueState,
    owner_email: str | None,
    alert_type: str,
    execution_id: str | None,
    message: str,
    metadata: dict[str, Any],
    now_ms: int,
) -> tuple[Alert, list[tuple[str, str]]]:
    """The alert for `cue` and its notifications: (channel, target) per channel that
    the cue's `on_failure` turns on."""
    alert = Alert(
        id=str(uuid.uuid4()),
        user_id=cue.user_id,
        cue_id=cue.id,
        execution_id=execution_id,
        alert_type=alert_type,
        severity=SEVERITY.get(alert_type, "warning"),
        message=message,
        metadata={"cue_name": cue.name, **metadata},
        acknowledged_at_ms=None,
        created_at_ms=now_ms,
    )
    targets: list[tuple[str, str]] = []
    if cue.on_failure.email and owner_email is not None:
        targets.append(("email", owner_email))
    if cue.on_failure.webhook:
        targets.append(("webhook", cue.on_failure.webhook))
    return alert, targets


def raise_alert(
    tx: Tx,
    cue_id: str,
    execution_id: str | None,
    alert_type: str,
    message: str,
    metadata: dict[str, Any],
    now_ms: int,
) -> bool:
    """Record an alert for the cue, queue its notifications and apply `on_failure.pause`
    (recurring cues). False when the cue is gone or the same kind of alert for it was
    raised in the last five minutes."""
    cue = tx.cue_state(cue_id)
    if cue is None or tx.alerted_since(cue_id, alert_type, now_ms - DEDUP_MS):
        return False
    alert, targets = new_alert(
        cue, tx.user_email(cue.user_id), alert_type, execution_id, message, metadata, now_ms
    )
    tx.insert_alert(alert, targets)
    tx.after_commit(Deadline(Kind.NOTIFY, OUTBOX, now_ms))
    if cue.on_failure.pause and cue.status == CueStatus.ACTIVE and cue.schedule_type != "once":
        tx.set_cue_status(cue_id, CueStatus.ACTIVE, CueStatus.PAUSED, now_ms, stop_firing=True)
    return True


def failure_streak(latest: list[tuple[str, str, str | None]]) -> list[str]:
    """The ids of the unbroken run of failures at the head of `latest` (newest first;
    `(id, status, outcome_state)`): `failed`, or an outcome of `reported_failure`."""
    streak: list[str] = []
    for execution_id, status, state in latest:
        if status != ExecutionStatus.FAILED and state != OutcomeState.REPORTED_FAILURE:
            break
        streak.append(execution_id)
    return streak


def check_consecutive_failures(tx: Tx, cue_id: str, execution_id: str, now_ms: int) -> bool:
    """Raise `consecutive_failure` when the cue's newest finished executions, as many as
    its `alerts.consecutive_failures`, all failed and this execution is among them: the
    one whose failure made the streak reach the threshold. A longer streak does not
    alert again until a success breaks it."""
    cue = tx.cue_state(cue_id)
    if cue is None:
        return False
    threshold = cue.alerts.consecutive_failures
    latest = tx.latest_finished(cue_id, _FINISHED, threshold + 1)
    streak = failure_streak(latest)
    if len(streak) != threshold or execution_id not in streak:
        return False
    return raise_alert(
        tx, cue_id, execution_id, "consecutive_failure",
        f"{threshold} consecutive executions failed",
        {"consecutive_failures": threshold}, now_ms,
    )  # fmt: skip


def alert_on_outcome(tx: Tx, cue_id: str, execution_id: str, state: str, now_ms: int) -> bool:
    """The alerts a newly recorded outcome state can raise; True if one was raised."""
    if state == OutcomeState.VERIFICATION_FAILED:
        return raise_alert(
            tx, cue_id, execution_id, "verification_failed",
            "The outcome does not satisfy the cue's verification policy", {}, now_ms,
        )  # fmt: skip
    if state == OutcomeState.REPORTED_FAILURE:
        return check_consecutive_failures(tx, cue_id, execution_id, now_ms)
    return False


def expire_outcome(tx: Tx, execution_id: str, deadline_ms: int, now_ms: int) -> bool:
    """No outcome by its deadline: the outcome becomes `unknown` and an
    `outcome_timeout` alert is raised. False when an outcome arrived or the deadline
    moved meanwhile."""
    cue_id = tx.expire_outcome(execution_id, deadline_ms, now_ms)
    if cue_id is None:
        return False
    raise_alert(
        tx, cue_id, execution_id, "outcome_timeout",
        "No outcome was reported before the outcome deadline",
        {"outcome_deadline": deadline_ms}, now_ms,
    )  # fmt: skip
    return True


def missed_window(tx: Tx, cue: Cue, now_ms: int) -> bool:
    """The cue had no success since its window started: raise `missed_window` and start
    a new window at now (so a cue that stays silent alerts once per window). False when
    the window moved meanwhile (a success, a resume) or the cue is no longer active."""
    if not tx.restart_watch(cue.id, cue.watch_from_ms, now_ms):
        return False
    raise_alert(
        tx, cue.id, None, "missed_window",
        "No successful execution within the cue's expected window",
        {"window_started_at": cue.watch_from_ms}, now_ms,
    )  # fmt: skip
    deadline = window_deadline(dataclasses.replace(cue, watch_from_ms=now_ms))
    if deadline is not None:
        tx.after_commit(deadline)
    return True


def _email(alert: Alert) -> tuple[str, str]:
    name = alert.metadata.get("cue_name", alert.cue_id)
    subject = f"[cueapi-lite] {alert.alert_type}: {name}"
    lines = [
        alert.message,
        "",
        f"alert:      {alert.alert_type} ({alert.severity})",
        f"cue:        {name} ({alert.cue_id})",
        f"execution:  {alert.execution_id or '-'}",
        f"raised at:  {iso(alert.created_at_ms)}",
        f"alert id:   {alert.id}",
    ]
    return subject, "\n".join(lines) + "\n"


class AlertService:
    def __init__(
        self,
        store: Store,
        scheduler: Scheduler,
        clock: Clock,
        deliverer: Deliverer,
        policy: CallbackPolicy,
        mailer: Mailer | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.store = store
        self.telemetry = telemetry or Telemetry()
        # The newest alert already logged (an alerts rowid): alerts are raised inside the
        # transactions that detect them, and each is logged once when the outbox wakes.
        self._seen_alert = 0
        self.scheduler = scheduler
        self.clock = clock
        self.deliverer = deliverer
        self.policy = policy
        self.mailer = mailer
        scheduler.on(Kind.NOTIFY, self._outbox_due)
        scheduler.on(Kind.OUTCOME_DEADLINE, self._deadlines_due)
        scheduler.on(Kind.MISSED_WINDOW, self._windows_due)
        scheduler.on(Kind.WINDOW_HORIZON, self._sweep_due)
        # Where the sweep under way over the watched cues has got to (None between
        # sweeps), the horizon it fills the heap up to, the checks it found beyond the
        # horizon while it may still keep them all, and the key of the entry that starts
        # the next sweep.
        self._sweep: int | None = None
        self._sweeps = 0
        self._sweep_horizon_ms = 0
        self._beyond: list[tuple[int, str]] | None = None
        self._next_sweep: str | None = None

    # --- arming -----------------------------------------------------------------------

    async def load(self) -> None:
        """At start: re-arm outcome deadlines, missed-window checks and unsent alerts."""
        self._seen_alert = await self.store.history.newest_alert()
        for execution_id, deadline_ms in await self.store.outcomes.open_deadlines():
            self.scheduler.push(deadline_ms, Kind.OUTCOME_DEADLINE, execution_id)
        next_ms = await self.store.alerts.next_outbox_ms()
        if next_ms is not None:
            self.scheduler.push(next_ms, Kind.NOTIFY, OUTBOX)
        await self._begin_sweep(self.clock.now_ms())

    async def _begin_sweep(self, now_ms: int) -> None:
        """Compute every watched cue's missed-window end, a slice of cues per step (the
        first step now, the others as heap entries due at once), and keep the checks
        that end before the horizon; a few thousand cues are kept whole."""
        self._sweep = 0  # one under way is abandoned: the heap was re-planned
        self._sweeps += 1
        self._sweep_horizon_ms = now_ms + WINDOW_HORIZON_MS
        self._beyond = []
        # Every check set during the sweep is kept: the sweep may have read its cue before.
        self.scheduler.hold(Kind.MISSED_WINDOW, None)
        await self._sweep_step(now_ms)

    async def _sweep_step(self, now_ms: int) -> None:
        assert self._sweep is not None
        sweep = self._sweeps
        watched, position = await self.store.cues.watched(self._sweep, SWEEP_SLICE)
        if sweep != self._sweeps:
            return  # a new sweep began meanwhile (the heap was re-planned)
        self._sweep = position
        horizon_ms, push = self._sweep_horizon_ms, self.scheduler.push
        for cue_id, cron, timezone, start_ms, multiplier in watched:
            due_ms = window_end_ms(cron, timezone, start_ms, multiplier)
            if due_ms is None:
                continue
            if due_ms < horizon_ms:
                push(due_ms, Kind.MISSED_WINDOW, cue_id)
            elif self._beyond is not None:
                self._beyond.append((due_ms, cue_id))
                if len(self._beyond) > WINDOW_HORIZON_CUES:
                    self._beyond = None  # too many to keep: they wait for the next sweep
        if len(watched) < SWEEP_SLICE:  # the last slice
            self._end_sweep()
        else:
            push(now_ms, Kind.WINDOW_HORIZON, SWEEP_STEP)

    def _end_sweep(self) -> None:
        self._sweep = None
        if self._beyond is not None:  # few cues: every check is on the heap
            for due_ms, cue_id in self._beyond:
                self.scheduler.push(due_ms, Kind.MISSED_WINDOW, cue_id)
            self._beyond = None
            return
        horizon_ms = self._sweep_horizon_ms
        self.scheduler.hold(Kind.MISSED_WINDOW, horizon_ms)
        self._next_sweep = str(horizon_ms)
        sweep_at_ms = horizon_ms - WINDOW_HORIZON_MS // 2
        self.scheduler.push(sweep_at_ms, Kind.WINDOW_HORIZON, self._next_sweep)

    async def _sweep_due(self, entries: list[Due], now_ms: int) -> None:
        if self._sweep is not None:
            await self._sweep_step(now_ms)
        elif self._next_sweep in {key for _, key in entries}:
            await self._begin_sweep(now_ms)
        # Otherwise stale: from before the heap was re-planned.

    # --- the API --------------------------------------------------------------------

    async def page(
        self, user: User, filters: AlertFilters, limit: int, offset: int
    ) -> tuple[list[Alert], int]:
        return await self.store.alerts.page(user.id, filters, limit, offset)

    async def acknowledge(self, user: User, alert_id: str) -> Alert:
        alert = await self.store.alerts.acknowledge(user.id, alert_id, self.clock.now_ms())
        if alert is None:
            raise NotFound("Alert not found", "alert_not_found")
        return alert

    # --- heap handlers ----------------------------------------------------------------

    async def _deadlines_due(self, entries: list[Due], now_ms: int) -> None:
        for due_ms, execution_id in entries:
            expired = await self.store.transact(
                partial(
                    expire_outcome, execution_id=execution_id, deadline_ms=due_ms, now_ms=now_ms
                )
            )
            if expired:
                self.telemetry.outcome(execution_id, "unknown", "no outcome by its deadline")

    async def _windows_due(self, entries: list[Due], now_ms: int) -> None:
        cues = await self.store.cues.get_many(sorted({key for _, key in entries}))
        for cue in cues:
            due_ms = missed_window_ms(cue)
            if cue.status != CueStatus.ACTIVE or due_ms is None:
                continue
            if due_ms > now_ms:
                self.scheduler.push(due_ms, Kind.MISSED_WINDOW, cue.id)  # a re-check
                continue
            # When the window moved meanwhile (a success), its next check is armed.
            await self.store.transact(partial(missed_window, cue=cue, now_ms=now_ms))

    async def _outbox_due(self, entries: list[Due], now_ms: int) -> None:
        await self._log_new_alerts()
        items = await self.store.alerts.outbox_due(now_ms, SEND_BATCH)
        secrets = await self.store.users.secrets_for(sorted({i.alert.user_id for i in items}))
        await asyncio.gather(*(self._send(item, secrets.get(item.alert.user_id)) for item in items))
        next_ms = await self.store.alerts.next_outbox_ms()
        if next_ms is not None:
            self.scheduler.push(max(next_ms, now_ms), Kind.NOTIFY, OUTBOX)

    async def _send(self, item: OutboxItem, secret: str | None) -> None:
        try:
            if item.channel == "email":
                if self.mailer is None:
                    await self._done(item, "skipped", "email is not set up (CUEAPI_LITE_SMTP_HOST)")
                    return
                subject, body = _email(item.alert)
                await self.mailer.send(item.target, subject, body)
            else:
                if secret is None:
                    await self._done(item, "failed", "the alert's owner no longer exists")
                    return
                await self._post(item, secret)
        except (OSError, smtplib.SMTPException, DeliveryFailed, CallbackRefused) as exc:
            await self._retry(item, f"{exc.__class__.__name__}: {exc}"[:500])
        else:
            await self._done(item, "sent", None)

    async def _post(self, item: OutboxItem, secret: str) -> None:
        body = canonical_body({**alert_json(item.alert), "event": "alert"})
        timestamp_s = self.clock.now_ms() // 1000
        self.policy.check(item.target)
        response = await self.deliverer.send(
            WebhookRequest(
                url=item.target,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": USER_AGENT,
                    "X-CueAPI-Event": "alert",
                    "X-CueAPI-Signature": sign(secret, timestamp_s, body),
                    "X-CueAPI-Timestamp": str(timestamp_s),
                },
                body=body,
                timeout_s=ALERT_WEBHOOK_TIMEOUT_S,
            )
        )
        if not 200 <= response.status < 300:
            raise DeliveryFailed(f"alert webhook returned {response.status}")

    async def _log_new_alerts(self) -> None:
        raised, self._seen_alert = await self.store.history.alerts_after(self._seen_alert)
        for alert in raised:
            self.telemetry.alert_raised(alert)

    async def _done(self, item: OutboxItem, status: str, error: str | None) -> None:
        self.telemetry.alert_sent(item.alert, item.channel, status, error)
        await self.store.alerts.outbox_done(item.id, status, error, None, self.clock.now_ms())

    async def _retry(self, item: OutboxItem, error: str) -> None:
        now_ms = self.clock.now_ms()
        attempts = item.attempts + 1
        if attempts >= MAX_SEND_ATTEMPTS:
            self.telemetry.alert_sent(item.alert, item.channel, "failed", error)
            await self.store.alerts.outbox_done(item.id, "failed", error, None, now_ms)
            return
        wait_ms = RETRY_MINUTES[min(attempts, len(RETRY_MINUTES)) - 1] * 60_000
        self.telemetry.alert_sent(item.alert, item.channel, "retrying", error, now_ms + wait_ms)
        await self.store.alerts.outbox_done(item.id, "pending", error, now_ms + wait_ms, now_ms)
