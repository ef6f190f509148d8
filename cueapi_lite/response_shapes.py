"""The JSON objects the API answers with, as msgspec Structs, for `/openapi.json`.

Rendering stays in `models.py` and the routes (plain dicts, fast); these shapes only
describe it, and the spec fuzz test checks every answer against them. Every field is
always present; `X | None` means the value may be null.
"""

from __future__ import annotations

from typing import Any, Literal

from msgspec import Struct

__all__ = ["RESPONSE_SHAPES"]

Instant = str  # ISO 8601 in UTC with +00:00 (CONTRACT §3.2)


class ErrorDetail(Struct):
    code: str
    message: str
    status: int
    details: list[dict[str, Any]] | None = None


class ErrorDetailCopy(Struct):
    error: ErrorDetail


class Error(Struct):
    """Every 4xx and 5xx: `error` for the SDK and worker, `detail.error` for the CLI."""

    error: ErrorDetail
    detail: ErrorDetailCopy


# --- cues ---------------------------------------------------------------------------------


class ScheduleOut(Struct):
    type: Literal["recurring", "once"]
    cron: str | None
    at: Instant | None
    timezone: str


class CallbackOut(Struct):
    url: str | None
    method: str
    headers: dict[str, str]


class RetryOut(Struct):
    max_attempts: int
    backoff_minutes: list[int]


class OnFailureOut(Struct):
    email: bool
    webhook: str | None
    pause: bool


class DeliveryOut(Struct):
    timeout_seconds: int
    outcome_deadline_seconds: int


class AlertsOut(Struct):
    consecutive_failures: int
    missed_window_multiplier: int


class VerificationOut(Struct):
    mode: str


class Cue(Struct):
    id: str
    name: str
    description: str | None
    status: Literal["active", "paused", "completed", "failed"]
    transport: Literal["webhook", "worker"]
    schedule: ScheduleOut
    callback: CallbackOut
    payload: dict[str, Any]
    retry: RetryOut
    on_failure: OnFailureOut
    delivery: DeliveryOut
    alerts: AlertsOut
    catch_up: str
    verification: VerificationOut
    next_run: Instant | None
    last_run: Instant | None
    run_count: int
    fired_count: int
    warning: str | None
    created_at: Instant
    updated_at: Instant


class CueList(Struct):
    cues: list[Cue]
    total: int
    limit: int
    offset: int


# --- executions ---------------------------------------------------------------------------


class OutcomeOut(Struct):
    success: bool
    result: str | None
    error: str | None
    metadata: dict[str, Any] | None
    external_id: str | None
    result_url: str | None
    result_ref: str | None
    result_type: str | None
    summary: str | None
    artifacts: list[Any] | None
    recorded_at: Instant | None


class Execution(Struct):
    id: str
    cue_id: str
    scheduled_for: Instant
    status: Literal["pending", "delivering", "retrying", "success", "failed", "missed"]
    triggered_by: Literal["schedule", "manual_fire", "replay", "catch_up"]
    missed_reason: str | None
    attempts: int
    http_status: int | None
    error_message: str | None
    response_body: str | None
    next_retry: Instant | None
    started_at: Instant | None
    delivered_at: Instant | None
    last_attempt_at: Instant | None
    claimed_by_worker: str | None
    claimed_at: Instant | None
    last_heartbeat_at: Instant | None
    lease_expires_at: Instant | None
    payload: dict[str, Any]
    outcome: OutcomeOut | None
    outcome_state: str | None
    outcome_success: bool | None
    outcome_deadline: Instant | None
    verification_reason: str | None
    replayed_from: str | None
    created_at: Instant
    updated_at: Instant


class CueDetail(Cue):
    """A cue with its newest executions."""

    executions: list[Execution]
    execution_total: int
    execution_limit: int
    execution_offset: int


class ExecutionList(Struct):
    executions: list[Execution]
    total: int
    limit: int
    offset: int
    has_more: bool


class Started(Struct):
    """A manual fire's or a replay's new execution."""

    id: str
    execution_id: str
    cue_id: str
    scheduled_for: Instant
    status: str
    triggered_by: str
    payload: dict[str, Any]
    replayed_from: str | None


class OutcomeRecorded(Struct):
    execution_id: str
    outcome_recorded: bool
    outcome_state: str
    reason: str | None


class Verified(Struct):
    execution_id: str
    outcome_state: str | None
    valid: bool
    reason: str | None


class VerificationPending(Struct):
    execution_id: str
    outcome_state: Literal["verification_pending"]


class EvidenceUpdated(Struct):
    execution_id: str
    outcome_state: str | None
    evidence_updated: bool


# --- workers ------------------------------------------------------------------------------


class ClaimableItem(Struct):
    execution_id: str
    cue_id: str
    cue_name: str
    task: str | None
    scheduled_for: Instant
    payload: dict[str, Any]
    attempt: int


class ClaimableList(Struct):
    executions: list[ClaimableItem]


class Claimed(Struct):
    claimed: bool
    execution_id: str
    lease_seconds: int
    lease_expires_at: Instant | None


class HeartbeatAck(Struct):
    execution_id: str
    acknowledged: bool
    lease_extended_until: Instant | None


class WorkerAck(Struct):
    acknowledged: bool
    worker_id: str
    server_time: Instant


class Worker(Struct):
    worker_id: str
    handlers: list[str] | None
    last_heartbeat: Instant
    seconds_since_heartbeat: int
    heartbeat_status: Literal["active", "stale", "dead"]
    registered_since: Instant


class WorkerList(Struct):
    workers: list[Worker]
    total: int


# --- alerts -------------------------------------------------------------------------------


class Alert(Struct):
    id: str
    alert_type: str
    severity: Literal["warning", "critical"]
    message: str
    cue_id: str | None
    execution_id: str | None
    metadata: dict[str, Any] | None
    acknowledged: bool
    acknowledged_at: Instant | None
    created_at: Instant


class AlertList(Struct):
    alerts: list[Alert]
    total: int
    limit: int
    offset: int


# --- accounts -----------------------------------------------------------------------------


class Registered(Struct):
    api_key: str
    email: str
    webhook_secret: str


class Me(Struct):
    id: str
    email: str
    plan: str
    active_cues: int
    active_cue_limit: int
    executions_this_month: int
    monthly_execution_limit: int
    rate_limit_per_minute: int
    api_key_prefix: str | None
    authenticated_with: Literal["api_key", "session"]
    has_webhook_secret: bool
    alert_webhook_url: str | None
    email_alerts: bool
    created_at: Instant


class Key(Struct):
    id: str
    label: str
    prefix: str
    status: Literal["active", "revoked"]
    revoked_reason: str | None
    replaced_by: str | None
    created_at: Instant
    last_used_at: Instant | None
    revoked_at: Instant | None
    current: bool


class NewKey(Key):
    """The key's plaintext, shown this once."""

    api_key: str


class KeyList(Struct):
    keys: list[Key]
    total: int


class Regenerated(Struct):
    api_key: str
    prefix: str
    id: str
    label: str
    previous_key_revoked: bool


class KeyNotShown(Struct):
    api_key: None
    prefix: str | None
    message: str


class WebhookSecret(Struct):
    webhook_secret: str


class WebhookSecretRotated(WebhookSecret):
    previous_secret_revoked: bool


class Session(Struct):
    session_token: str
    email: str
    expires_at: Instant
    token_type: Literal["bearer"]


class DeviceCodeStarted(Struct):
    device_code: str
    verification_url: str
    expires_in: int


class DeviceCodeStatus(Struct, kw_only=True):
    """`pending`, then once `approved` (with a new key), then `claimed`; or `expired`."""

    status: Literal["pending", "approved", "claimed", "expired", "email_sent"]
    api_key: str | None = None
    email: str | None = None
    session_token: str | None = None


# --- usage, support, echo, health ---------------------------------------------------------


class BillingPeriod(Struct):
    start: Instant
    end: Instant
    days_remaining: int


class CueUsage(Struct):
    active: int
    used: int
    limit: int
    remaining: int


class ExecutionUsage(Struct):
    used: int
    limit: int
    remaining: int
    percent_used: int


class RateUsage(Struct):
    limit: int
    requests_per_minute: int
    current_usage: int


class Usage(Struct):
    plan: str
    billing_period: BillingPeriod
    cues: CueUsage
    executions: ExecutionUsage
    rate_limit: RateUsage


class TicketReceived(Struct):
    status: Literal["received"]
    ticket_id: int
    ticket_status: str


class Ticket(Struct):
    ticket_id: int
    subject: str
    message: str
    severity: str
    type: str
    status: str
    created_at: Instant
    updated_at: Instant


class TicketList(Struct):
    tickets: list[Ticket]
    total: int
    limit: int
    offset: int


class EchoStored(Struct):
    stored: bool


class EchoState(Struct, kw_only=True):
    """`waiting`, or `delivered` with the webhook body and headers it received."""

    status: Literal["waiting", "delivered"]
    payload: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    received_at: Instant | None = None


class Health(Struct):
    status: Literal["healthy", "unhealthy"]
    version: str
    timestamp: Instant
    services: dict[str, Literal["up", "down"]]


class Status(Struct, kw_only=True):
    status: Literal["healthy", "degraded", "down"]
    reason: str | None = None


RESPONSE_SHAPES: dict[str, type[Struct]] = {
    shape.__name__: shape
    for shape in (
        Error, Cue, CueDetail, CueList, Execution, ExecutionList, Started, OutcomeRecorded,
        Verified, VerificationPending, EvidenceUpdated, ClaimableList, Claimed, HeartbeatAck,
        WorkerAck, WorkerList, Alert, AlertList, Registered, Me, Key, NewKey, KeyList,
        Regenerated, KeyNotShown, WebhookSecret, WebhookSecretRotated, Session,
        DeviceCodeStarted, DeviceCodeStatus, Usage, TicketReceived, Ticket, TicketList,
        EchoStored, EchoState, Health, Status,
    )
}  # fmt: skip
