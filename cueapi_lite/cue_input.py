"""Reading cue create and update bodies into records, with the API's error codes.

Pure functions: no I/O and no clock (callers pass `now_ms`). Types and bounds come from
the request shapes (`CueCreate`, `CueBody`); this module adds the rules that need more
than the body (cron, zones, the callback policy, payload bytes, resuming). A bad field
raises an `ApiError` that names the field: 400 `invalid_schedule`,
`invalid_callback_url`, `invalid_payload_size`, 422 `invalid_timezone` or
`validation_error`.

Besides the nested body the clients send, the flat body of MCP-style clients is read:
top-level `cron` / `at` / `timezone` stand for `schedule`, and a string `callback` (with
optional `callback_method`, `callback_headers`) stands for `callback.url`.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import msgspec

from .callbacks import CallbackPolicy, CallbackRefused
from .cron import (
    CronError,
    TimezoneError,
    check_expression,
    check_zone_name,
    load_zone,
    schedule_for,
)
from .errors import BadRequest, Unprocessable
from .models import (
    DEFAULT_ALERTS,
    DEFAULT_DELIVERY,
    DEFAULT_ON_FAILURE,
    DEFAULT_RETRY,
    Alerts,
    Callback,
    CatchUp,
    Cue,
    CueStatus,
    Delivery,
    OnFailure,
    Retry,
    Schedule,
    Transport,
    Verification,
    new_cue_id,
    parse_instant,
)
from .request_shapes import UNSET, CueBody, CueCreate, load
from .webhooks import RESERVED_HEADERS

__all__ = [
    "AT_GRACE_MS",
    "CueCreate",
    "CueInput",
    "apply_update",
    "check_payload",
    "new_cue",
    "read_cue_body",
]

# An `at` this far in the past still fires at once: clients create cues "at now" (H20).
AT_GRACE_MS = 60_000
_PARTS = ("schedule", "callback", "retry", "on_failure", "delivery", "alerts", "verification")


def invalid(field: str, message: str) -> Unprocessable:
    return Unprocessable(f"{field}: {message}", details=[{"field": field, "message": message}])


@dataclasses.dataclass(frozen=True, slots=True)
class CueInput:
    """The fields a body set (None: not sent). Nested objects are already complete."""

    name: str | None = None
    description: str | None = None
    description_set: bool = False
    status: str | None = None
    transport: str | None = None
    schedule: dict[str, Any] | None = None  # raw partial schedule, checked on apply
    callback: dict[str, Any] | None = None  # raw partial callback, checked on apply
    payload: dict[str, Any] | None = None
    retry: dict[str, Any] | None = None
    on_failure: dict[str, Any] | None = None
    delivery: dict[str, Any] | None = None
    alerts: dict[str, Any] | None = None
    catch_up: str | None = None
    verification: dict[str, Any] | None = None


def read_cue_body(
    body: dict[str, Any], max_payload_bytes: int, kind: type[CueBody] = CueBody
) -> CueInput:
    """Check every field present in a create (`kind=CueCreate`) or update body against
    its shape."""
    shape = load(_unflatten(body), kind)
    values: dict[str, Any] = {}
    for name in ("name", "status", "transport", "catch_up"):
        if _sent(getattr(shape, name)):
            values[name] = getattr(shape, name)
    if shape.description is not UNSET:
        values.update(description=shape.description, description_set=True)
    for name in _PARTS:
        part = getattr(shape, name)
        if _sent(part):
            values[name] = msgspec.to_builtins(part)  # the fields it set; unsent ones left out
    if _sent(shape.payload):
        values["payload"] = check_payload(shape.payload, max_payload_bytes)
    return CueInput(**values)


def _sent(value: Any) -> bool:
    return value is not None and value is not UNSET


def _unflatten(body: dict[str, Any]) -> dict[str, Any]:
    """The nested form of an MCP-style flat body (nested fields win when both appear)."""
    flat_schedule = {k: body[k] for k in ("cron", "at", "timezone") if body.get(k) is not None}
    # The official MCP server (cueapi-mcp) sends `callback_url` and `worker: true`.
    mcp_style = body.get("callback_url") is not None or body.get("worker") is not None
    if not flat_schedule and not isinstance(body.get("callback"), str) and not mcp_style:
        return body
    body = dict(body)
    if body.get("callback") is None and body.get("callback_url") is not None:
        body["callback"] = body["callback_url"]
    if body.get("worker") is not None and body.get("transport") is None:
        if not isinstance(body["worker"], bool):
            raise invalid("worker", "must be true or false")
        body["transport"] = "worker" if body["worker"] else "webhook"
    if flat_schedule and body.get("schedule") is None:
        if "cron" in flat_schedule:
            flat_schedule["type"] = "recurring"
        elif "at" in flat_schedule:
            flat_schedule["type"] = "once"
        body["schedule"] = flat_schedule
    if isinstance(body.get("callback"), str):
        callback: dict[str, Any] = {"url": body["callback"]}
        if body.get("callback_method") is not None:
            callback["method"] = body["callback_method"]
        if body.get("callback_headers") is not None:
            callback["headers"] = body["callback_headers"]
        body["callback"] = callback
    return body


def check_payload(value: Any, max_bytes: int, field: str = "payload") -> dict[str, Any]:
    """The one payload check, wherever a payload enters (a cue's `payload`, a fire's
    `payload_override` and the payload it makes): a JSON object of at most
    `max_bytes` as compact UTF-8 JSON (400 `invalid_payload_size`)."""
    if not isinstance(value, dict):
        raise invalid(field, "must be a JSON object")
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > max_bytes:
        raise BadRequest(
            f"{field}: payload is {size:,} bytes; the limit is {max_bytes:,} bytes",
            "invalid_payload_size",
            details=[{"field": field, "message": f"must be at most {max_bytes:,} bytes as JSON"}],
        )
    return value


# --- building the parts ----------------------------------------------------------------


def _schedule(raw: dict[str, Any], current: Schedule | None, now_ms: int) -> Schedule:
    """A complete schedule from a (possibly partial) one; `current` fills what is unsent."""
    timezone = raw.get("timezone")
    if timezone is None:
        timezone = current.timezone if current else "UTC"
    try:
        if "timezone" in raw:  # a stored zone stays usable even if the rule got stricter
            check_zone_name(timezone)
        zone = load_zone(timezone)
    except TimezoneError as exc:
        raise Unprocessable(
            str(exc),
            "invalid_timezone",
            details=[{"field": "schedule.timezone", "message": str(exc)}],
        ) from None
    kind = raw.get("type")
    if kind is None:
        kind = "recurring" if raw.get("cron") else "once" if raw.get("at") else None
        kind = kind or (current.type if current else None)
    if kind not in ("recurring", "once"):
        raise BadRequest("schedule.type must be 'recurring' or 'once'", "invalid_schedule")
    same_kind = current is not None and current.type == kind
    if kind == "recurring":
        cron = raw.get("cron", current.cron if same_kind and current else None)
        if cron is None or not cron.strip():
            raise BadRequest("A recurring schedule needs a cron expression", "invalid_schedule")
        try:
            if "cron" in raw:
                cron = check_expression(cron)
            cron = schedule_for(cron, timezone).expression
        except CronError as exc:
            raise BadRequest(
                str(exc),
                "invalid_schedule",
                details=[{"field": "schedule.cron", "message": str(exc)}],
            ) from None
        return Schedule("recurring", cron, None, timezone)
    if "at" in raw:
        at = raw["at"]
        try:
            at_ms = parse_instant(at, zone)
        except (ValueError, OverflowError) as exc:
            raise BadRequest(
                f"schedule.at is not an ISO 8601 date-time in the years 0001-9999 (UTC):"
                f" {at[:64]!r} ({exc})",
                "invalid_schedule",
                details=[{"field": "schedule.at", "message": str(exc)}],
            ) from None
        if at_ms < now_ms - AT_GRACE_MS:
            raise BadRequest("schedule.at is in the past", "invalid_schedule")
    elif same_kind and current is not None and current.at_ms is not None:
        at_ms = current.at_ms
    else:
        raise BadRequest("A once schedule needs an 'at' date-time", "invalid_schedule")
    return Schedule("once", None, at_ms, timezone)


def _callback(
    raw: dict[str, Any] | None, current: Callback | None, policy: CallbackPolicy
) -> Callback:
    base = current or Callback(None)
    if raw is None:
        return base
    url = raw.get("url", base.url)
    if url is not None:
        url = _checked_url(url, "callback.url", policy)
    method = raw.get("method") or base.method  # the shape allows the four, in any case
    headers = raw.get("headers")
    headers = base.headers if headers is None else _headers(headers)
    return Callback(url, method.upper(), headers)


def _checked_url(url: str, field: str, policy: CallbackPolicy) -> str:
    """The canonical form of a URL the policy accepts: it is what gets stored and
    what delivery connects to (400 `invalid_callback_url` naming the field)."""
    try:
        return policy.check(url)
    except CallbackRefused as exc:
        raise BadRequest(
            f"{field}: {exc}",
            "invalid_callback_url",
            details=[{"field": field, "message": str(exc)}],
        ) from None


def _headers(headers: dict[str, str]) -> dict[str, str]:
    """Names, values and count are the shape's; the headers we set are ours (§7.1)."""
    for name in headers:
        if name.lower() in RESERVED_HEADERS or name.lower().startswith("x-cueapi-"):
            raise invalid("callback.headers", f"{name!r} is set by cueapi-lite itself")
    return dict(headers)


# The parts below get partial objects already checked against their shapes: what was not
# sent keeps its current value.


def _retry(raw: dict[str, Any] | None, current: Retry) -> Retry:
    if raw is None:
        return current
    backoff = raw.get("backoff_minutes", current.backoff_minutes)
    return Retry(raw.get("max_attempts", current.max_attempts), tuple(backoff))


def _on_failure(
    raw: dict[str, Any] | None, current: OnFailure, policy: CallbackPolicy
) -> OnFailure:
    if raw is None:
        return current
    webhook = raw.get("webhook", current.webhook)
    if webhook is not None:
        webhook = _checked_url(webhook, "on_failure.webhook", policy)
    return OnFailure(
        email=raw.get("email", current.email),
        webhook=webhook,
        pause=raw.get("pause", current.pause),
    )


def _delivery(raw: dict[str, Any] | None, current: Delivery) -> Delivery:
    return current if raw is None else dataclasses.replace(current, **raw)


def _alerts(raw: dict[str, Any] | None, current: Alerts) -> Alerts:
    return current if raw is None else dataclasses.replace(current, **raw)


def _verification(raw: dict[str, Any] | None, current: Verification) -> Verification:
    return current if raw is None else dataclasses.replace(current, **raw)


def _next_fire(schedule: Schedule, now_ms: int) -> int | None:
    if schedule.type == "once":
        return schedule.at_ms
    assert schedule.cron is not None
    return schedule_for(schedule.cron, schedule.timezone).next_after(now_ms)


def _require_url(transport: str, callback: Callback) -> None:
    if transport == Transport.WEBHOOK and not callback.url:
        raise invalid("callback.url", "is required for a webhook cue")


# --- create and update -----------------------------------------------------------------


def new_cue(user_id: str, data: CueInput, policy: CallbackPolicy, now_ms: int) -> Cue:
    """A new active cue from a create body; raises for missing or bad fields."""
    if data.name is None:
        raise invalid("name", "is required")
    if data.schedule is None:
        raise BadRequest("schedule is required", "invalid_schedule")
    schedule = _schedule(data.schedule, None, now_ms)
    transport = data.transport or Transport.WEBHOOK.value
    callback = _callback(data.callback, None, policy)
    _require_url(transport, callback)
    return Cue(
        id=new_cue_id(),
        user_id=user_id,
        name=data.name,
        description=data.description,
        status=CueStatus.ACTIVE.value,
        transport=transport,
        schedule=schedule,
        callback=callback,
        payload=data.payload if data.payload is not None else {},
        retry=_retry(data.retry, DEFAULT_RETRY),
        on_failure=_on_failure(data.on_failure, DEFAULT_ON_FAILURE, policy),
        delivery=_delivery(data.delivery, DEFAULT_DELIVERY),
        alerts=_alerts(data.alerts, DEFAULT_ALERTS),
        catch_up=data.catch_up or CatchUp.RUN_ONCE_IF_MISSED.value,
        verification=_verification(data.verification, Verification()),
        next_fire_at_ms=_next_fire(schedule, now_ms),
        last_run_ms=None,
        run_count=0,
        fired_count=0,
        warning=None,
        created_at_ms=now_ms,
        updated_at_ms=now_ms,
        watch_from_ms=now_ms,
    )


def apply_update(cue: Cue, data: CueInput, policy: CallbackPolicy, now_ms: int) -> Cue:
    """The cue with the sent fields changed and everything else kept (E4).

    Resuming (or changing the schedule of an active cue) recomputes the next fire from
    now; a `once` cue whose `at` has passed needs a new `at` to be resumed.
    """
    schedule = cue.schedule
    if data.schedule is not None:
        schedule = _schedule(data.schedule, cue.schedule, now_ms)
    transport = data.transport or cue.transport
    callback = _callback(data.callback, cue.callback, policy)
    _require_url(transport, callback)
    status = data.status or cue.status
    next_fire = cue.next_fire_at_ms
    resumed = status == CueStatus.ACTIVE and cue.status != CueStatus.ACTIVE
    if status != CueStatus.ACTIVE:
        next_fire = None if status == CueStatus.PAUSED else cue.next_fire_at_ms
    elif resumed or schedule != cue.schedule:
        if schedule.type == "once" and (schedule.at_ms or 0) < now_ms - AT_GRACE_MS:
            raise BadRequest(
                "This one-time cue's 'at' has passed; send a new schedule.at to resume it",
                "invalid_schedule",
            )
        next_fire = _next_fire(schedule, now_ms)
    return dataclasses.replace(
        cue,
        name=data.name if data.name is not None else cue.name,
        description=data.description if data.description_set else cue.description,
        status=status,
        transport=transport,
        schedule=schedule,
        callback=callback,
        payload=data.payload if data.payload is not None else cue.payload,
        retry=_retry(data.retry, cue.retry),
        on_failure=_on_failure(data.on_failure, cue.on_failure, policy),
        delivery=_delivery(data.delivery, cue.delivery),
        alerts=_alerts(data.alerts, cue.alerts),
        catch_up=data.catch_up or cue.catch_up,
        verification=_verification(data.verification, cue.verification),
        next_fire_at_ms=next_fire,
        updated_at_ms=now_ms,
        # A resumed cue gets a fresh window to succeed in before missed_window alerts.
        watch_from_ms=now_ms if resumed else cue.watch_from_ms,
    )
