"""What an agent reports about an execution: parsing, limits and the outcome state.

Two doors lead here: `POST /v1/executions/{id}/outcome` (strict: a bad field is a 422)
and the JSON body of a 2xx webhook response (lenient: bad fields are dropped, CONTRACT
§7.5). Both end in an `Outcome` and the state the cue's verification mode gives it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from .errors import Unprocessable
from .json_input import JsonInputError, decode_json_body
from .models import Outcome, OutcomeState, VerificationMode

__all__ = [
    "EVIDENCE_LIMITS",
    "UnreadableAnswer",
    "outcome_from_response",
    "outcome_state",
    "parse_outcome",
]

# Longest accepted string per field (the API document's limits, widened where the official
# worker sends more: external_id 500, result_type 100; CONTRACT H16).
TEXT_LIMITS = {
    "result": 8000,
    "error": 8000,
    "external_id": 500,
    "result_ref": 500,
    "result_type": 100,
    "summary": 500,
    "result_url": 2000,
}
EVIDENCE_LIMITS = {k: v for k, v in TEXT_LIMITS.items() if k not in {"result", "error"}}
MAX_METADATA_BYTES = 10 * 1024
MAX_ARTIFACTS = 100
MAX_ARTIFACTS_BYTES = 64 * 1024
RESPONSE_BODY_LIMIT = 64 * 1024


class UnreadableAnswer(ValueError):
    """A receiver's 2xx answer that cannot be stored as an outcome; the attempt is still
    delivered, and the note says why no outcome was recorded."""

    def __init__(self, field: str | None, reason: str) -> None:
        where = f" ({field})" if field else ""
        super().__init__(f"The receiver's answer was not recorded as an outcome: {reason}{where}")


def compact_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _field_error(field: str, strict: bool, message: str) -> None:
    if strict:
        raise Unprocessable(f"{field}: {message}", details=[{"field": field, "message": message}])


def clean_evidence(body: dict[str, Any], strict: bool) -> dict[str, Any]:
    """The evidence and text fields of `body` that pass their limits.

    Strict: the first bad field raises Unprocessable. Lenient: bad fields are left out.
    """
    clean: dict[str, Any] = {}
    for field, limit in TEXT_LIMITS.items():
        value = body.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            _field_error(field, strict, "must be a string")
            continue
        if len(value) > limit:
            _field_error(field, strict, f"must be at most {limit:,} characters")
            continue
        if field == "result_url" and not _is_http_url(value):
            _field_error(field, strict, "must be an absolute http(s) URL")
            continue
        clean[field] = value
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            _field_error("metadata", strict, "must be an object")
        elif compact_size(metadata) > MAX_METADATA_BYTES:
            _field_error("metadata", strict, "must be at most 10 KiB as JSON")
        else:
            clean["metadata"] = metadata
    artifacts = body.get("artifacts")
    if artifacts is not None:
        if not isinstance(artifacts, list):
            _field_error("artifacts", strict, "must be a list")
        elif len(artifacts) > MAX_ARTIFACTS:
            _field_error("artifacts", strict, f"must have at most {MAX_ARTIFACTS} items")
        elif compact_size(artifacts) > MAX_ARTIFACTS_BYTES:
            _field_error("artifacts", strict, "must be at most 64 KiB as JSON")
        else:
            clean["artifacts"] = artifacts
    return clean


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def parse_outcome(body: dict[str, Any], now_ms: int) -> Outcome:
    """An outcome report (E9); raises Unprocessable for any field out of bounds."""
    success = body.get("success")
    if not isinstance(success, bool):
        raise Unprocessable(
            "success: must be a JSON boolean (true or false)",
            details=[{"field": "success", "message": "must be a JSON boolean"}],
        )
    return Outcome(success=success, recorded_at_ms=now_ms, **clean_evidence(body, strict=True))


def outcome_from_response(raw: bytes, now_ms: int) -> Outcome | None:
    """The outcome carried by a 2xx webhook response body, if it carries one.

    A JSON object with a boolean `success`, or the SDK README's `{"outcome": "success"}`
    / `"failure"` (CONTRACT H27). Invalid evidence fields are dropped, never fatal.
    Raises `UnreadableAnswer` for a body that mentions an outcome but is not JSON this
    server can store (NaN, `1e400`, deep nesting, lone surrogates, broken JSON).
    """
    if not raw or len(raw) > RESPONSE_BODY_LIMIT:
        return None
    if b'"success"' not in raw and b'"outcome"' not in raw:
        return None  # cheap exit for the common `{}` / `OK` answers
    try:
        body = decode_json_body(raw)
    except JsonInputError as exc:
        raise UnreadableAnswer(exc.field, exc.reason) from None
    if not isinstance(body, dict):
        return None
    success = body.get("success")
    if not isinstance(success, bool):
        word = body.get("outcome")
        if word not in ("success", "failure"):
            return None
        success = word == "success"
    return Outcome(success=success, recorded_at_ms=now_ms, **clean_evidence(body, strict=False))


def outcome_state(outcome: Outcome, mode: str) -> str:
    """The state an outcome starts in under the cue's verification mode."""
    if not outcome.success:
        return OutcomeState.REPORTED_FAILURE.value
    if mode == VerificationMode.MANUAL:
        return OutcomeState.VERIFICATION_PENDING.value
    evidence = {
        VerificationMode.REQUIRE_EXTERNAL_ID: bool(outcome.external_id),
        VerificationMode.REQUIRE_RESULT_URL: bool(outcome.result_url),
        VerificationMode.REQUIRE_ARTIFACTS: bool(outcome.artifacts),
    }
    if mode in evidence:
        ok = evidence[VerificationMode(mode)]
        return (OutcomeState.VERIFIED_SUCCESS if ok else OutcomeState.VERIFICATION_FAILED).value
    return OutcomeState.REPORTED_SUCCESS.value
