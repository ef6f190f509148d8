"""The dashboard's forms turned into the JSON bodies the services take.

The edit form becomes the body of `PATCH /v1/cues/{id}` (the fields the form shows,
always; the cue service validates them exactly as for the API). A value that is not
even the right kind (a word where a number goes) is refused here with its field name;
JSON fields go through the API's one decoder, so a form refuses what the API refuses.
"""

from __future__ import annotations

from typing import Any

from ..errors import Unprocessable
from ..json_input import JsonInputError, decode_json_body
from ..models import Cue
from .render import iso_z

__all__ = ["edit_body", "fire_body", "first"]

MAX_JSON_CHARS = 1_100_000


def first(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name)
    return values[0] if values else ""


def _integer(form: dict[str, list[str]], name: str, field: str) -> int:
    text = first(form, name).strip()
    try:
        return int(text)
    except ValueError:
        raise Unprocessable(f"{field}: must be a whole number", details=[
            {"field": field, "message": "must be a whole number"}]) from None  # fmt: skip


def _json_object(text: str, field: str) -> dict[str, Any]:
    example = f'{field}: must be a JSON object, e.g. {{"task": "report"}}'
    if len(text) > MAX_JSON_CHARS:
        raise Unprocessable(f"{field}: too large")
    try:
        value = decode_json_body(text)
    except JsonInputError as exc:
        if exc.field is None:  # not JSON at all
            raise Unprocessable(example) from None
        where = f"{field}.{exc.field}"
        raise Unprocessable(
            f"{where}: {exc.reason}", details=[{"field": where, "message": exc.reason}]
        ) from None
    if not isinstance(value, dict):
        raise Unprocessable(example)
    return value


def fire_body(form: dict[str, list[str]]) -> dict[str, Any]:
    """A manual fire: an optional payload override merged into the cue's payload."""
    text = first(form, "payload_override").strip()
    if not text:
        return {}
    return {"payload_override": _json_object(text, "payload_override"), "merge_strategy": "merge"}


def edit_body(form: dict[str, list[str]], cue: Cue) -> dict[str, Any]:
    timezone = first(form, "timezone").strip()
    if cue.schedule.type == "once":
        schedule: dict[str, Any] = {"type": "once", "timezone": timezone}
        at = first(form, "at").strip()
        if at != iso_z(cue.schedule.at_ms):  # unchanged: keep it (it may have passed)
            schedule["at"] = at
    else:
        schedule = {"type": "recurring", "cron": first(form, "cron"), "timezone": timezone}
    backoff = [part.strip() for part in first(form, "backoff_minutes").split(",") if part.strip()]
    try:
        backoff_minutes = [int(part) for part in backoff]
    except ValueError:
        raise Unprocessable(
            "retry.backoff_minutes: whole minutes separated by commas, e.g. 1, 5, 15"
        ) from None
    body: dict[str, Any] = {
        "schedule": schedule,
        "payload": _json_object(first(form, "payload"), "payload"),
        "retry": {
            "max_attempts": _integer(form, "max_attempts", "retry.max_attempts"),
            "backoff_minutes": backoff_minutes,
        },
        "alerts": {
            "consecutive_failures": _integer(
                form, "consecutive_failures", "alerts.consecutive_failures"
            ),
            "missed_window_multiplier": _integer(
                form, "missed_window_multiplier", "alerts.missed_window_multiplier"
            ),
        },
        "on_failure": {
            "email": first(form, "on_failure_email") == "on",
            "pause": first(form, "on_failure_pause") == "on",
            "webhook": first(form, "on_failure_webhook").strip() or None,
        },
        "verification": {"mode": first(form, "verification_mode")},
    }
    if cue.transport == "webhook":
        body["callback"] = {
            "url": first(form, "callback_url").strip(),
            "method": first(form, "callback_method") or "POST",
        }
    return body
