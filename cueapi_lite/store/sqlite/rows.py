"""Rows <-> records for the SQLite backend: the column lists and the decoders every
module shares (a leaf: it imports no other module of the backend)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from functools import lru_cache
from typing import Any

from ...models import (
    Alert,
    Alerts,
    Callback,
    Cue,
    Delivery,
    Execution,
    OnFailure,
    Outcome,
    Retry,
    Schedule,
    User,
    Verification,
    dumps,
)
from ..records import CueState, KeyRecord

__all__ = [
    "AWAITING_OUTCOME",
    "CUE_COLUMNS",
    "CUE_INSERT",
    "CUE_STATE_COLUMNS",
    "EXECUTION_COLUMNS",
    "EXECUTION_INSERT",
    "KEY_COLUMNS",
    "UNFINISHED",
    "alert_from_row",
    "alerts_options",
    "cue_from_row",
    "cue_options",
    "cue_state_from_row",
    "execution_from_row",
    "execution_insert",
    "execution_params",
    "key_from_row",
    "user_from_row",
]


# The conditions of migration 0007's partial indexes on executions. SQLite uses a partial
# index only for a query that repeats its condition word for word, so the statements
# that look for unfinished work (start-up, a clock set back) include these texts.
UNFINISHED = "status IN ('pending', 'delivering', 'retrying')"
AWAITING_OUTCOME = "outcome IS NULL AND outcome_state IS NULL AND outcome_deadline_ms IS NOT NULL"


CUE_COLUMNS = (
    "id, user_id, name, description, status, transport, schedule_type, cron, at_ms, timezone,"
    " callback, payload, retry, on_failure, delivery, alerts, catch_up, verification,"
    " next_fire_at_ms, last_run_ms, run_count, fired_count, warning, created_at_ms,"
    " updated_at_ms, watch_from_ms"
)


CUE_INSERT = f"INSERT INTO cues ({CUE_COLUMNS}) VALUES ({', '.join('?' * 26)})"  # noqa: S608


# Option columns repeat across cues (most keep the defaults): decode each text once.
# The records are frozen, so cues can share them.
@lru_cache(maxsize=4096)
def _callback(text: str) -> Callback:
    data = json.loads(text)
    return Callback(data["url"], data["method"], data["headers"])


@lru_cache(maxsize=1024)
def _retry(text: str) -> Retry:
    data = json.loads(text)
    return Retry(data["max_attempts"], tuple(data["backoff_minutes"]))


@lru_cache(maxsize=1024)
def _on_failure(text: str) -> OnFailure:
    return OnFailure(**json.loads(text))


@lru_cache(maxsize=1024)
def _delivery(text: str) -> Delivery:
    return Delivery(**json.loads(text))


@lru_cache(maxsize=1024)
def _alerts(text: str) -> Alerts:
    return Alerts(**json.loads(text))


def alerts_options(text: str) -> Alerts:
    """An `alerts` column decoded (cached: most cues share the same text)."""
    return _alerts(text)


@lru_cache(maxsize=64)
def _verification(text: str) -> Verification:
    return Verification(**json.loads(text))


def cue_from_row(row: sqlite3.Row) -> Cue:
    """A Cue from a row of `SELECT {CUE_COLUMNS}` (positional: the hot path of a burst);
    columns after these are ignored."""
    (
        id_, user_id, name, description, status, transport, schedule_type, cron, at_ms,
        timezone, callback, payload, retry, on_failure, delivery, alerts, catch_up,
        verification, next_fire_at_ms, last_run_ms, run_count, fired_count, warning,
        created_at_ms, updated_at_ms, watch_from_ms,
    ) = tuple(row)[:26]  # fmt: skip
    return Cue(
        id=id_,
        user_id=user_id,
        name=name,
        description=description,
        status=status,
        transport=transport,
        schedule=Schedule(schedule_type, cron, at_ms, timezone),
        callback=_callback(callback),
        payload=json.loads(payload),
        retry=_retry(retry),
        on_failure=_on_failure(on_failure),
        delivery=_delivery(delivery),
        alerts=_alerts(alerts),
        catch_up=catch_up,
        verification=_verification(verification),
        next_fire_at_ms=next_fire_at_ms,
        last_run_ms=last_run_ms,
        run_count=run_count,
        fired_count=fired_count,
        warning=warning,
        created_at_ms=created_at_ms,
        updated_at_ms=updated_at_ms,
        watch_from_ms=watch_from_ms,
    )


CUE_STATE_COLUMNS = (
    "id, user_id, name, status, schedule_type, on_failure, alerts, delivery,"
    " next_fire_at_ms, last_run_ms, watch_from_ms"
)


def cue_state_from_row(row: sqlite3.Row | tuple[Any, ...]) -> CueState:
    """A CueState from a row of `SELECT {CUE_STATE_COLUMNS}`."""
    (
        id_, user_id, name, status, schedule_type, on_failure, alerts, delivery,
        next_fire_at_ms, last_run_ms, watch_from_ms,
    ) = row  # fmt: skip
    return CueState(
        id_, user_id, name, status, schedule_type, _on_failure(on_failure), _alerts(alerts),
        _delivery(delivery), next_fire_at_ms, last_run_ms, watch_from_ms,
    )  # fmt: skip


def cue_options(cue: Cue) -> tuple[Any, ...]:
    return (
        dumps(dataclasses.asdict(cue.callback)),
        dumps(cue.payload),
        dumps(
            {"max_attempts": cue.retry.max_attempts, "backoff_minutes": cue.retry.backoff_minutes}
        ),
        dumps(dataclasses.asdict(cue.on_failure)),
        dumps(dataclasses.asdict(cue.delivery)),
        dumps(dataclasses.asdict(cue.alerts)),
        cue.catch_up,
        dumps(dataclasses.asdict(cue.verification)),
    )


# What a new execution holds: an attempt begun in its fire's own transaction is written
# with its start (`delivery.begun`).
EXECUTION_COLUMNS = (
    "id, cue_id, user_id, scheduled_for_ms, triggered_by, status, missed_reason, payload,"
    " attempts, error_message, replayed_from, created_at_ms, updated_at_ms, transport,"
    " started_at_ms, last_attempt_at_ms"
)
_EXECUTION_VALUES = f"({', '.join('?' * (EXECUTION_COLUMNS.count(',') + 1))})"


# ON CONFLICT: a second row for the same occurrence of a schedule collapses (DESIGN §2).
EXECUTION_INSERT = (
    f"INSERT INTO executions ({EXECUTION_COLUMNS}) VALUES {_EXECUTION_VALUES}"  # noqa: S608
    " ON CONFLICT DO NOTHING"
)


@lru_cache(maxsize=128)
def execution_insert(rows: int) -> str:
    """EXECUTION_INSERT for `rows` rows in one statement."""
    values = ", ".join([_EXECUTION_VALUES] * rows)
    return f"INSERT INTO executions ({EXECUTION_COLUMNS}) VALUES {values} ON CONFLICT DO NOTHING"  # noqa: S608


def execution_from_row(row: sqlite3.Row) -> Execution:
    outcome = row["outcome"]
    return Execution(
        id=row["id"],
        cue_id=row["cue_id"],
        user_id=row["user_id"],
        scheduled_for_ms=row["scheduled_for_ms"],
        triggered_by=row["triggered_by"],
        status=row["status"],
        payload=json.loads(row["payload"]),
        attempts=row["attempts"],
        missed_reason=row["missed_reason"],
        http_status=row["http_status"],
        error_message=row["error_message"],
        response_body=row["response_body"],
        next_retry_ms=row["next_retry_ms"],
        started_at_ms=row["started_at_ms"],
        delivered_at_ms=row["delivered_at_ms"],
        last_attempt_at_ms=row["last_attempt_at_ms"],
        claimed_by_worker=row["claimed_by_worker"],
        claimed_at_ms=row["claimed_at_ms"],
        last_heartbeat_at_ms=row["last_heartbeat_at_ms"],
        lease_expires_at_ms=row["lease_expires_at_ms"],
        outcome=Outcome.from_json(json.loads(outcome)) if outcome else None,
        outcome_state=row["outcome_state"],
        outcome_deadline_ms=row["outcome_deadline_ms"],
        replayed_from=row["replayed_from"],
        created_at_ms=row["created_at_ms"],
        updated_at_ms=row["updated_at_ms"],
        transport=row["transport"],
        verification_reason=row["verification_reason"],
    )


def execution_params(e: Execution) -> tuple[Any, ...]:
    return (
        e.id, e.cue_id, e.user_id, e.scheduled_for_ms, e.triggered_by, e.status,
        e.missed_reason, dumps(e.payload), e.attempts, e.error_message, e.replayed_from,
        e.created_at_ms, e.updated_at_ms, e.transport, e.started_at_ms, e.last_attempt_at_ms,
    )  # fmt: skip


def alert_from_row(row: sqlite3.Row) -> Alert:
    return Alert(
        id=row["id"],
        user_id=row["user_id"],
        cue_id=row["cue_id"],
        execution_id=row["execution_id"],
        alert_type=row["alert_type"],
        severity=row["severity"],
        message=row["message"],
        metadata=json.loads(row["metadata"]),
        acknowledged_at_ms=row["acknowledged_at_ms"],
        created_at_ms=row["created_at_ms"],
    )


KEY_COLUMNS = (
    "id, user_id, label, prefix, status, created_at_ms, last_used_at_ms, revoked_at_ms, replaced_by"
)


def user_from_row(row: sqlite3.Row) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        webhook_secret=row["webhook_secret"],
        created_at_ms=row["created_at_ms"],
    )


def key_from_row(row: sqlite3.Row) -> KeyRecord:
    return KeyRecord(
        id=str(row["id"]),
        user_id=row["user_id"],
        label=row["label"],
        prefix=row["prefix"],
        status=row["status"],
        created_at_ms=row["created_at_ms"],
        last_used_at_ms=row["last_used_at_ms"],
        revoked_at_ms=row["revoked_at_ms"],
        replaced_by=row["replaced_by"],
    )
