"""What an agent reports about an execution: parsing, limits and the outcome state.

Two doors lead here: `POST /v1/executions/{id}/outcome` (strict: a bad field is a 422)
and the JSON body of a 2xx webhook response (lenient: bad fields are dropped, CONTRACT
§7.5). Both end in an `Outcome` and the state the cue's verification mode gives it.
Recording one is a set of plain functions run inside one store transaction: the
write-once report (which also ends a worker execution), verification, late evidence.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .alerts import alert_on_outcome
from .errors import Unprocessable
from .json_input import JsonInputError, decode_json_body
from .models import (
    TERMINAL_STATUSES,
    Execution,
    ExecutionStatus,
    Outcome,
    OutcomeState,
    VerificationMode,
)
from .runs import count_run
from .store import ExecutionRef, Refusal, Tx

__all__ = [
    "EVIDENCE_LIMITS",
    "UnreadableAnswer",
    "add_evidence",
    "mark_verification_pending",
    "merged_evidence",
    "outcome_from_response",
    "outcome_state",
    "parse_outcome",
    "record_outcome",
    "verify_outcome",
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


# --- recording (inside a store transaction) --------------------------------------------

VERIFIABLE = (
    OutcomeState.REPORTED_SUCCESS.value,
    OutcomeState.REPORTED_FAILURE.value,
    OutcomeState.VERIFICATION_PENDING.value,
)
_OPEN = tuple(s.value for s in ExecutionStatus if s not in TERMINAL_STATUSES)


def record_outcome(
    tx: Tx,
    user_id: str,
    execution_id: str,
    outcome: Outcome,
    state: str,
    now_ms: int,
    end_status: str | None = None,
) -> Refusal | None:
    """Record an agent's outcome, once (`unknown` is no outcome: a late report replaces
    it). With `end_status` (worker executions) the outcome also ends an execution that
    has not ended: status `end_status`, `error_message` the reported error, the lease
    ends, and the cue counts a run. Then the alerts the state calls for."""
    execution = tx.execution(execution_id, user_id)
    if execution is None:
        return Refusal.MISSING
    if not tx.write_outcome(execution_id, outcome, state, now_ms):
        return Refusal.OUTCOME_EXISTS
    if end_status is not None and tx.end_execution(
        execution_id, end_status, outcome.error, now_ms, _OPEN
    ):
        ref = ExecutionRef(
            execution.id, execution.cue_id, execution.triggered_by, execution.scheduled_for_ms
        )
        count_run(tx, ref, end_status == ExecutionStatus.SUCCESS, now_ms)
    alert_on_outcome(tx, execution.cue_id, execution_id, state, now_ms)
    return None


def verify_outcome(
    tx: Tx, user_id: str, execution_id: str, valid: bool, reason: str | None, now_ms: int
) -> Execution | Refusal:
    """reported_success | reported_failure | verification_pending -> verified_success
    (valid) or verification_failed (with the reason, and its alert)."""
    if tx.execution(execution_id, user_id) is None:
        return Refusal.MISSING
    state = OutcomeState.VERIFIED_SUCCESS if valid else OutcomeState.VERIFICATION_FAILED
    updated = tx.verify_outcome(execution_id, state, reason, now_ms, VERIFIABLE)
    if updated is None:
        return Refusal.INVALID_STATE
    alert_on_outcome(tx, updated.cue_id, execution_id, state, now_ms)
    return updated


def mark_verification_pending(
    tx: Tx, user_id: str, execution_id: str, now_ms: int
) -> Refusal | None:
    """Any recorded outcome -> verification_pending."""
    if tx.execution(execution_id, user_id) is None:
        return Refusal.MISSING
    if not tx.mark_verification_pending(execution_id, now_ms):
        return Refusal.NO_OUTCOME
    return None


def add_evidence(
    tx: Tx,
    user_id: str,
    execution_id: str,
    merge: Callable[[Outcome], Outcome],
    restate: Callable[[Outcome, str], str],
    now_ms: int,
) -> str | Refusal:
    """Merge evidence into the recorded outcome (`merge` may raise EvidenceRejected);
    `restate(outcome, state)` gives the state afterwards, which is returned."""
    execution = tx.execution(execution_id, user_id)
    if execution is None:
        return Refusal.MISSING
    if (
        execution.outcome is None
        or execution.outcome_state is None
        or execution.outcome_state == OutcomeState.UNKNOWN
    ):
        return Refusal.NO_OUTCOME
    outcome = merge(execution.outcome)
    state = restate(outcome, execution.outcome_state)
    tx.replace_outcome(execution_id, outcome, state, now_ms)
    return state


def merged_evidence(outcome: Outcome, evidence: dict[str, Any]) -> Outcome:
    """Scalars overwrite, `artifacts` append, `metadata` merges shallowly (E10)."""
    changes: dict[str, Any] = {
        k: v for k, v in evidence.items() if k not in ("artifacts", "metadata")
    }
    if "artifacts" in evidence:
        changes["artifacts"] = [*(outcome.artifacts or []), *evidence["artifacts"]]
    if "metadata" in evidence:
        changes["metadata"] = {**(outcome.metadata or {}), **evidence["metadata"]}
    return dataclasses.replace(outcome, **changes)
