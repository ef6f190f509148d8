"""Records, status words and the JSON shapes the clients read (CONTRACT §6).

Records carry times as UTC epoch milliseconds (`*_ms`); ISO 8601 strings exist only in
the JSON this module renders and in the instants it parses. No I/O here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import string
import threading
import time
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

__all__ = [
    "DEFAULT_ALERTS",
    "DEFAULT_DELIVERY",
    "DEFAULT_ON_FAILURE",
    "DEFAULT_RETRY",
    "Alert",
    "Alerts",
    "Callback",
    "CatchUp",
    "Cue",
    "CueStatus",
    "Delivery",
    "Execution",
    "ExecutionStatus",
    "OnFailure",
    "OutcomeState",
    "Retry",
    "Schedule",
    "Transport",
    "TriggeredBy",
    "User",
    "Verification",
    "alert_json",
    "cue_json",
    "cue_raw",
    "cue_raw_with",
    "dumps",
    "encode",
    "epoch_ms",
    "execution_json",
    "execution_raw",
    "iso",
    "new_cue_id",
    "new_execution",
    "new_execution_id",
    "parse_instant",
    "started_json",
]


class CueStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"


class Transport(StrEnum):
    WEBHOOK = "webhook"
    WORKER = "worker"


class ExecutionStatus(StrEnum):
    PENDING = "pending"
    DELIVERING = "delivering"
    RETRYING = "retrying"
    SUCCESS = "success"
    FAILED = "failed"
    MISSED = "missed"


TERMINAL_STATUSES = frozenset(
    {ExecutionStatus.SUCCESS, ExecutionStatus.FAILED, ExecutionStatus.MISSED}
)


class TriggeredBy(StrEnum):
    SCHEDULE = "schedule"
    MANUAL_FIRE = "manual_fire"
    REPLAY = "replay"
    CATCH_UP = "catch_up"


class OutcomeState(StrEnum):
    REPORTED_SUCCESS = "reported_success"
    REPORTED_FAILURE = "reported_failure"
    VERIFIED_SUCCESS = "verified_success"
    VERIFICATION_PENDING = "verification_pending"
    VERIFICATION_FAILED = "verification_failed"
    UNKNOWN = "unknown"


class CatchUp(StrEnum):
    SKIP_MISSED = "skip_missed"
    RUN_ONCE_IF_MISSED = "run_once_if_missed"
    REPLAY_ALL_MISSED = "replay_all_missed"


class MissedReason(StrEnum):
    SERVER_DOWN = "server_down"
    HOST_ASLEEP = "host_asleep"
    CLOCK_JUMP = "clock_jump"
    CATCH_UP_SKIPPED = "catch_up_skipped"
    OVERLAP = "overlap"
    EXECUTION_LIMIT = "execution_limit"
    UNCLAIMED = "unclaimed"


class VerificationMode(StrEnum):
    NONE = "none"
    REQUIRE_EXTERNAL_ID = "require_external_id"
    REQUIRE_RESULT_URL = "require_result_url"
    REQUIRE_ARTIFACTS = "require_artifacts"
    MANUAL = "manual"


# --- cue options (each renders as the object of the same name) -------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Schedule:
    type: str  # "recurring" | "once"
    cron: str | None
    at_ms: int | None
    timezone: str


@dataclasses.dataclass(frozen=True, slots=True)
class Callback:
    url: str | None
    method: str = "POST"
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Retry:
    max_attempts: int = 3
    backoff_minutes: tuple[int, ...] = (1, 5, 15)

    def delay_ms(self, attempt: int) -> int:
        """The wait after failed attempt number `attempt` (1-based)."""
        index = min(attempt - 1, len(self.backoff_minutes) - 1)
        return self.backoff_minutes[index] * 60_000


@dataclasses.dataclass(frozen=True, slots=True)
class OnFailure:
    email: bool = True
    webhook: str | None = None
    pause: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    timeout_seconds: int = 30
    outcome_deadline_seconds: int = 300


@dataclasses.dataclass(frozen=True, slots=True)
class Alerts:
    consecutive_failures: int = 3
    missed_window_multiplier: int = 2


@dataclasses.dataclass(frozen=True, slots=True)
class Verification:
    mode: str = VerificationMode.NONE.value


DEFAULT_RETRY = Retry()
DEFAULT_ON_FAILURE = OnFailure()
DEFAULT_DELIVERY = Delivery()
DEFAULT_ALERTS = Alerts()


# --- records ---------------------------------------------------------------------------
# Cue and Execution are plain (not frozen) slotted dataclasses: a burst builds tens of
# thousands of them, and a frozen dataclass of this size costs 8x more to construct.
# They are still never mutated; changes go through dataclasses.replace.


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    webhook_secret: str
    created_at_ms: int


@dataclasses.dataclass(slots=True)
class Cue:
    id: str
    user_id: str
    name: str
    description: str | None
    status: str
    transport: str
    schedule: Schedule
    callback: Callback
    payload: dict[str, Any]
    retry: Retry
    on_failure: OnFailure
    delivery: Delivery
    alerts: Alerts
    catch_up: str
    verification: Verification
    next_fire_at_ms: int | None
    last_run_ms: int | None
    run_count: int
    fired_count: int
    warning: str | None
    created_at_ms: int
    updated_at_ms: int
    # Start of the window in which the cue must succeed (the missed_window alert).
    watch_from_ms: int | None = None
    # The record's rendered JSON, kept on first render (`cue_raw`). Not an init field, so
    # `dataclasses.replace` never carries a rendering over to a changed cue.
    rendered: bytes | None = dataclasses.field(default=None, init=False, repr=False, compare=False)


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    success: bool
    result: str | None = None
    error: str | None = None
    metadata: dict[str, Any] | None = None
    external_id: str | None = None
    result_url: str | None = None
    result_ref: str | None = None
    result_type: str | None = None
    summary: str | None = None
    artifacts: list[Any] | None = None
    recorded_at_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["recorded_at"] = iso(data.pop("recorded_at_ms"))
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        fields = {f.name for f in dataclasses.fields(cls)} - {"recorded_at_ms"}
        values = {k: v for k, v in data.items() if k in fields}
        recorded = data.get("recorded_at")
        recorded_ms = parse_instant(recorded, UTC) if isinstance(recorded, str) else 0
        return cls(recorded_at_ms=recorded_ms, **values)


@dataclasses.dataclass(slots=True)
class Execution:
    id: str
    cue_id: str
    user_id: str
    scheduled_for_ms: int
    triggered_by: str
    status: str
    payload: dict[str, Any]
    attempts: int = 0
    missed_reason: str | None = None
    http_status: int | None = None
    error_message: str | None = None
    response_body: str | None = None
    next_retry_ms: int | None = None
    started_at_ms: int | None = None
    delivered_at_ms: int | None = None
    last_attempt_at_ms: int | None = None
    claimed_by_worker: str | None = None
    claimed_at_ms: int | None = None
    last_heartbeat_at_ms: int | None = None
    lease_expires_at_ms: int | None = None
    outcome: Outcome | None = None
    outcome_state: str | None = None
    outcome_deadline_ms: int | None = None
    replayed_from: str | None = None
    created_at_ms: int = 0
    updated_at_ms: int = 0
    transport: str = Transport.WEBHOOK.value
    verification_reason: str | None = None
    # The record's rendered JSON, kept on first render (`execution_raw`); see `Cue`.
    rendered: bytes | None = dataclasses.field(default=None, init=False, repr=False, compare=False)


@dataclasses.dataclass(slots=True)
class Alert:
    id: str
    user_id: str
    cue_id: str | None
    execution_id: str | None
    alert_type: str
    severity: str
    message: str
    metadata: dict[str, Any]
    acknowledged_at_ms: int | None
    created_at_ms: int


def new_execution(
    cue: Cue,
    scheduled_for_ms: int,
    triggered_by: str,
    now_ms: int,
    payload: dict[str, Any] | None = None,
    replayed_from: str | None = None,
) -> Execution:
    """A pending execution of `cue` (with the cue's payload unless another is given)."""
    return Execution(
        id=new_execution_id(),
        cue_id=cue.id,
        user_id=cue.user_id,
        scheduled_for_ms=scheduled_for_ms,
        triggered_by=triggered_by,
        status=ExecutionStatus.PENDING.value,
        payload=cue.payload if payload is None else payload,
        replayed_from=replayed_from,
        created_at_ms=now_ms,
        updated_at_ms=now_ms,
        transport=cue.transport,
    )


# --- ids -------------------------------------------------------------------------------

# Cue ids sort in the order they were made: the twelve characters spell, in base 36 with
# digits before letters (so text order is number order), the millisecond the id was made
# (42 bits, until 2109) and 20 bits that count on from a random start within it. A burst
# fires its cues in the order they were made, so the rows an execution adds to the
# indexes that begin with its cue's id (its occurrence, its cue's history, its cue's
# count) land beside each other, not one on each of the indexes' pages: SQLite's commit
# work per execution went from 36-41 to 23-25 µs (`bench/sql_writes.py`). Within a
# process the ids never repeat; processes sharing a PostgreSQL database start each
# millisecond at their own random point of the 20 bits.
_CUE_ID_DIGITS = string.digits + string.ascii_lowercase
_CUE_ID_SPAN = 1 << 20
_cue_id_lock = threading.Lock()
_cue_id_last = [0, 0]  # the millisecond, the count within it


def new_cue_id() -> str:
    with _cue_id_lock:
        now_ms, count = time.time_ns() // 1_000_000, _cue_id_last[1] + 1
        if now_ms > _cue_id_last[0] or count >= _CUE_ID_SPAN:
            now_ms, count = max(now_ms, _cue_id_last[0] + 1), secrets.randbelow(_CUE_ID_SPAN // 2)
        else:
            now_ms = _cue_id_last[0]
        _cue_id_last[:] = now_ms, count
    value = now_ms * _CUE_ID_SPAN + count
    digits = []
    for _ in range(12):
        value, digit = divmod(value, 36)
        digits.append(_CUE_ID_DIGITS[digit])
    return "cue_" + "".join(reversed(digits))


_RANDOM_IDS = 256  # ids drawn from the system's random source at once
_random_pool = b""
_random_at = 0
_random_lock = threading.Lock()


def new_execution_id() -> str:
    """A random (version 4) UUID. The random bytes are read for 256 ids at a time: one
    system call per id cost a burst's event loop its hold on the interpreter each time."""
    global _random_pool, _random_at
    with _random_lock:
        if _random_at >= len(_random_pool):
            _random_pool, _random_at = os.urandom(16 * _RANDOM_IDS), 0
        h = _random_pool[_random_at : _random_at + 16].hex()
        _random_at += 16
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _forget_ids_made() -> None:
    """In a forked child: draw fresh randomness, so that parent and child never make the
    same execution id from one pool, nor count on from the same cue id."""
    global _random_pool, _random_at
    _random_pool, _random_at = b"", 0
    _cue_id_last[:] = 0, 0


os.register_at_fork(after_in_child=_forget_ids_made)


# --- time at the edge ------------------------------------------------------------------


def iso(at_ms: int | None) -> str | None:
    """UTC ISO 8601 with `+00:00`, as the clients expect (CONTRACT §3.2, H13).

    Every instant renders: one outside the years 1-9999 (which the API never accepts,
    but an old row might hold) shows as the nearest instant ISO 8601 can write, so a
    single row can never make a whole list unreadable.
    """
    if at_ms is None:
        return None
    at_ms = min(max(at_ms, MIN_INSTANT_MS), MAX_INSTANT_MS)
    seconds, millis = divmod(at_ms, 1000)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=millis * 1000)
    return moment.isoformat()


def parse_instant(text: str, zone: ZoneInfo | Any) -> int:
    """Epoch ms for an ISO 8601 string; a naive value is read in `zone` (CONTRACT §3.1).

    Accepts `Z`, numeric offsets, no offset, 0-6 fraction digits and `T` or a space.
    Raises ValueError for anything else, and for an instant outside the years 1-9999 in
    UTC (`9999-12-31T23:00:00-12:00` is in the year 10000 there, so it cannot be shown).
    """
    if not isinstance(text, str) or not 10 <= len(text) <= 40:
        raise ValueError("not an ISO 8601 date-time")
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    at_ms = epoch_ms(moment)
    if not MIN_INSTANT_MS <= at_ms <= MAX_INSTANT_MS:
        raise ValueError("the instant is outside the years 0001-9999 in UTC")
    return at_ms


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The instants ISO 8601 in UTC can write: the API accepts and renders only these.
MIN_INSTANT_MS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
MAX_INSTANT_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // timedelta(
    milliseconds=1
)


def epoch_ms(moment: datetime) -> int:
    """Exact epoch milliseconds of an aware datetime (integer arithmetic, fold-aware)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


# --- JSON --------------------------------------------------------------------------------


def dumps(value: Any) -> str:
    """Stored JSON: the same library loads it back, so signatures survive (§3.4)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


# API answers are encoded with msgspec: 8-9x faster than the standard library on a page of
# cues, as fast as orjson, and it encodes integers of any size as `json` does (orjson
# refuses those beyond 64 bits). Same keys, types and strings; no spaces between tokens.
_encoder = msgspec.json.Encoder()


def encode(value: Any) -> bytes:
    """An API answer as UTF-8 JSON; `msgspec.Raw` values are pasted in as they are."""
    return _encoder.encode(value)


def cue_raw(cue: Cue) -> msgspec.Raw:
    """`cue_json` encoded, computed once per record: the store hands out one shared
    record per unchanged row, so a page of unchanged cues costs no rendering."""
    rendered = cue.rendered
    if rendered is None:
        rendered = cue.rendered = _encoder.encode(cue_json(cue))
    return msgspec.Raw(rendered)


def execution_raw(execution: Execution) -> msgspec.Raw:
    """`execution_json` encoded, computed once per record: the store hands out one shared
    record per identical row, so a page of unchanged executions costs no rendering."""
    rendered = execution.rendered
    if rendered is None:
        rendered = execution.rendered = _encoder.encode(execution_json(execution))
    return msgspec.Raw(rendered)


def cue_raw_with(cue: Cue, extra: dict[str, Any]) -> msgspec.Raw:
    """The cue's JSON object with `extra`'s keys appended (E3 adds recent executions)."""
    rendered = cue_raw(cue)
    tail = _encoder.encode(extra)
    if len(tail) <= 2:
        return rendered
    return msgspec.Raw(bytes(rendered)[:-1] + b"," + tail[1:])


def cue_json(cue: Cue) -> dict[str, Any]:
    """The complete Cue object (§6.1): nothing the SDK's strict model needs is null."""
    on_failure, delivery, alerts = cue.on_failure, cue.delivery, cue.alerts
    return {
        "id": cue.id,
        "name": cue.name,
        "description": cue.description,
        "status": cue.status,
        "transport": cue.transport,
        "schedule": {
            "type": cue.schedule.type,
            "cron": cue.schedule.cron,
            "at": iso(cue.schedule.at_ms),
            "timezone": cue.schedule.timezone,
        },
        "callback": {
            "url": cue.callback.url,
            "method": cue.callback.method,
            "headers": dict(cue.callback.headers),
        },
        "payload": cue.payload,
        "retry": {
            "max_attempts": cue.retry.max_attempts,
            "backoff_minutes": list(cue.retry.backoff_minutes),
        },
        "on_failure": {
            "email": on_failure.email,
            "webhook": on_failure.webhook,
            "pause": on_failure.pause,
        },
        "delivery": {
            "timeout_seconds": delivery.timeout_seconds,
            "outcome_deadline_seconds": delivery.outcome_deadline_seconds,
        },
        "alerts": {
            "consecutive_failures": alerts.consecutive_failures,
            "missed_window_multiplier": alerts.missed_window_multiplier,
        },
        "catch_up": cue.catch_up,
        "verification": {"mode": cue.verification.mode},
        "next_run": iso(cue.next_fire_at_ms) if cue.status == CueStatus.ACTIVE else None,
        "last_run": iso(cue.last_run_ms),
        "run_count": cue.run_count,
        "fired_count": cue.fired_count,
        "warning": cue.warning,
        "created_at": iso(cue.created_at_ms),
        "updated_at": iso(cue.updated_at_ms),
    }


def execution_json(execution: Execution) -> dict[str, Any]:
    """The Execution object (§6.2)."""
    outcome = execution.outcome
    return {
        "id": execution.id,
        "cue_id": execution.cue_id,
        "scheduled_for": iso(execution.scheduled_for_ms),
        "status": execution.status,
        "triggered_by": execution.triggered_by,
        "missed_reason": execution.missed_reason,
        "attempts": execution.attempts,
        "http_status": execution.http_status,
        "error_message": execution.error_message,
        "response_body": execution.response_body,
        "next_retry": iso(execution.next_retry_ms),
        "started_at": iso(execution.started_at_ms),
        "delivered_at": iso(execution.delivered_at_ms),
        "last_attempt_at": iso(execution.last_attempt_at_ms),
        "claimed_by_worker": execution.claimed_by_worker,
        "claimed_at": iso(execution.claimed_at_ms),
        "last_heartbeat_at": iso(execution.last_heartbeat_at_ms),
        "lease_expires_at": iso(execution.lease_expires_at_ms),
        "payload": execution.payload,
        "outcome": outcome.to_json() if outcome is not None else None,
        "outcome_state": execution.outcome_state,
        "outcome_success": outcome.success if outcome is not None else None,
        "outcome_deadline": iso(execution.outcome_deadline_ms),
        "verification_reason": execution.verification_reason,
        "replayed_from": execution.replayed_from,
        "created_at": iso(execution.created_at_ms),
        "updated_at": iso(execution.updated_at_ms),
    }


def alert_json(alert: Alert) -> dict[str, Any]:
    """The Alert object (§6.4)."""
    return {
        "id": alert.id,
        "alert_type": alert.alert_type,
        "severity": alert.severity,
        "message": alert.message,
        "cue_id": alert.cue_id,
        "execution_id": alert.execution_id,
        "metadata": alert.metadata,
        "acknowledged": alert.acknowledged_at_ms is not None,
        "acknowledged_at": iso(alert.acknowledged_at_ms),
        "created_at": iso(alert.created_at_ms),
    }


def started_json(execution: Execution) -> dict[str, Any]:
    """The answer to a manual fire or a replay: the new execution, as clients read it."""
    return {
        "id": execution.id,
        "execution_id": execution.id,
        "cue_id": execution.cue_id,
        "scheduled_for": iso(execution.scheduled_for_ms),
        "status": execution.status,
        "triggered_by": execution.triggered_by,
        "payload": execution.payload,
        "replayed_from": execution.replayed_from,
    }
