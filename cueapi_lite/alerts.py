"""Alerts: the checks that live on the heap, and sending the outbox to its channels.

Detection that belongs to a state change (consecutive failures, verification failures)
happens in the store, inside that change's transaction. The time-based checks live
here as heap entries: the outcome deadline (no outcome in time -> `unknown` +
`outcome_timeout`) and the missed window (no success in interval x multiplier). Every
alert's notifications sit in an outbox until sent: email through SMTP, a webhook signed
like a cue's (CONTRACT §6.4), retried with backoff.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import smtplib

from .callbacks import CallbackPolicy, CallbackRefused
from .clock import Clock
from .cron import schedule_for
from .errors import NotFound
from .mailer import Mailer
from .models import Alert, Cue, CueStatus, User, alert_json, iso
from .scheduler import OUTBOX, Due, Kind, Scheduler
from .store import Store
from .store.sqlite.alerts import AlertFilters, OutboxItem
from .telemetry import Telemetry
from .webhooks import USER_AGENT, Deliverer, DeliveryFailed, WebhookRequest, canonical_body, sign

__all__ = ["AlertService", "missed_window_ms"]

log = logging.getLogger(__name__)
SEND_BATCH = 100
RETRY_MINUTES = (1, 5, 15, 60)
MAX_SEND_ATTEMPTS = 5
ALERT_WEBHOOK_TIMEOUT_S = 30.0


def missed_window_ms(cue: Cue) -> int | None:
    """When a recurring cue that has not succeeded since `watch_from` is overdue: the
    schedule's interval (the gap between its next two occurrences) x the multiplier."""
    if cue.schedule.type != "recurring" or cue.schedule.cron is None:
        return None
    schedule = schedule_for(cue.schedule.cron, cue.schedule.timezone)
    start = cue.watch_from_ms if cue.watch_from_ms is not None else cue.created_at_ms
    first = schedule.next_after(start)
    second = None if first is None else schedule.next_after(first)
    if first is None or second is None:
        return None
    return start + (second - first) * cue.alerts.missed_window_multiplier


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

    # --- arming -----------------------------------------------------------------------

    async def load(self) -> None:
        """At start: re-arm outcome deadlines, missed-window checks and unsent alerts."""
        self._seen_alert = await self.store.history.newest_alert()
        for execution_id, deadline_ms in await self.store.outcomes.open_deadlines():
            self.scheduler.push(deadline_ms, Kind.OUTCOME_DEADLINE, execution_id)
        for cue in await self.store.cues.recurring_active():
            self.watch(cue)
        next_ms = await self.store.alerts.next_outbox_ms()
        if next_ms is not None:
            self.scheduler.push(next_ms, Kind.NOTIFY, OUTBOX)

    def watch(self, cue: Cue) -> None:
        """Arm the missed-window check of an active recurring cue."""
        if cue.status == CueStatus.ACTIVE:
            due_ms = missed_window_ms(cue)
            if due_ms is not None:
                self.scheduler.push(due_ms, Kind.MISSED_WINDOW, cue.id)

    def kick(self) -> None:
        """New alerts were committed: send their notifications now."""
        self.scheduler.push(self.clock.now_ms(), Kind.NOTIFY, OUTBOX)

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
        alerted = False
        for due_ms, execution_id in entries:
            expired = await self.store.outcomes.expire(execution_id, due_ms, now_ms)
            if expired is not None:
                self.telemetry.outcome(execution_id, "unknown", "no outcome by its deadline")
            alerted = bool(expired) or alerted
        if alerted:
            self.kick()

    async def _windows_due(self, entries: list[Due], now_ms: int) -> None:
        cues = await self.store.cues.get_many(sorted({key for _, key in entries}))
        alerted = False
        for cue in cues:
            due_ms = missed_window_ms(cue)
            if cue.status != CueStatus.ACTIVE or due_ms is None:
                continue
            if due_ms > now_ms:
                self.scheduler.push(due_ms, Kind.MISSED_WINDOW, cue.id)
                continue
            raised = await self.store.alerts.missed_window(cue.id, cue.watch_from_ms, now_ms)
            if raised is None:
                continue  # it succeeded or changed meanwhile; its next watch is armed
            alerted = alerted or raised
            # The window starts over: another alert if it stays silent as long again.
            self.watch(dataclasses.replace(cue, watch_from_ms=now_ms))
        if alerted:
            self.kick()

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
