"""What an agent reports about an execution: parsing, limits and the outcome state.

Two doors lead here: `POST /v1/executions/{id}/outcome` (strict: a bad field is a 422)
and the JSON body of a 2xx webhook response (lenient: bad fields are dropped, CONTRACT
§7.5). Both end in an `Outcome` and the state the cue's verification mode gives it.
Recording one is a set of plain functions run inside one store transaction: the
write-once report (which also ends a worker execution), verification, late evidence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import msgspec

from .alerts import alert_on_outcome
from .errors import ApiError, Unprocessable
from .json_input import JsonInputError, decode_json_body
from .models import (
    TERMINAL_STATUSES,
    Execution,
    ExecutionStatus,
    Outcome,
    OutcomeState,
    VerificationMode,
)
from .request_shapes import Evidence, OutcomeReport, load
from .runs import count_run
from .store import ExecutionRef, Refusal, Tx

__all__ = [
    "REPORT_FIELDS",
    "UnreadableAnswer",
    "add_evidence",
    "clean_evidence",
    "mark_verification_pending",
    "merged_evidence",
    "outcome_from_response",
    "outcome_state",
    "parse_evidence",
    "parse_outcome",
    "record_outcome",
    "verify_outcome",
]

MAX_METADATA_BYTES = 10 * 1024
MAX_ARTIFACTS = 100
MAX_ARTIFACTS_BYTES = 64 * 1024
RESPONSE_BODY_LIMIT = 64 * 1024
# What a report may carry besides `success`, in the order the shapes declare it.
REPORT_FIELDS = tuple(f for f in OutcomeReport.__struct_fields__ if f != "success")


class UnreadableAnswer(ValueError):
    """A receiver's 2xx answer that cannot be stored as an outcome; the attempt is still
    delivered, and the note says why no outcome was recorded."""

    def __init__(self, field: str | None, reason: str) -> None:
        where = f" ({field})" if field else ""
        super().__init__(f"The receiver's answer was not recorded as an outcome: {reason}{where}")


def compact_size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON (how the size limits are measured); msgspec
    writes the same bytes as `json.dumps(separators=(",", ":"), ensure_ascii=False)`
    but for a float's exponent (`1e16`, not `1e+16`), in a tenth of the time."""
    return len(msgspec.json.encode(value))


def _sent(report: Evidence) -> dict[str, Any]:
    """The fields a loaded report set (null and absent both mean "not sent")."""
    fields = msgspec.to_builtins(report)  # leaves unsent (UNSET) fields out
    return {name: value for name, value in fields.items() if value is not None}


# JSON sizes: what the shapes cannot hold.
_SIZES = (
    ("metadata", MAX_METADATA_BYTES, "must be at most 10 KiB as JSON"),
    ("artifacts", MAX_ARTIFACTS_BYTES, "must be at most 64 KiB as JSON"),
)


def _sized(fields: dict[str, Any], strict: bool) -> dict[str, Any]:
    """`fields` without `success`, checked for the rules the shapes cannot hold (JSON
    sizes, a URL that parses). Strict: a bad field raises Unprocessable. Lenient: bad
    fields are left out."""
    fields.pop("success", None)
    bad = [
        (name, message)
        for name, limit, message in _SIZES
        if name in fields and compact_size(fields[name]) > limit
    ]
    if "result_url" in fields and not _is_http_url(fields["result_url"]):
        bad.append(("result_url", "must be an absolute http(s) URL"))
    if bad and strict:
        name, message = bad[0]
        raise Unprocessable(f"{name}: {message}", details=[{"field": name, "message": message}])
    for name, _ in bad:
        del fields[name]
    return fields


def clean_evidence(body: dict[str, Any]) -> dict[str, Any]:
    """The evidence and text fields of `body` that pass their limits; bad ones are left
    out (a webhook answer's outcome, CONTRACT §7.5). Each field is checked on its own
    against the same shape as a report."""
    kept: dict[str, Any] = {}
    for name in REPORT_FIELDS:
        if body.get(name) is None:
            continue
        try:
            one = load({"success": True, name: body[name]}, OutcomeReport)
        except ApiError:
            continue
        kept[name] = getattr(one, name)
    return _sized(kept, strict=False)


def parse_evidence(body: dict[str, Any]) -> dict[str, Any]:
    """Evidence sent after the outcome (E10); raises Unprocessable for a bad field."""
    return _sized(_sent(load(body, Evidence)), strict=True)


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def parse_outcome(body: dict[str, Any], now_ms: int) -> Outcome:
    """An outcome report (E9); raises Unprocessable for any field out of bounds."""
    report = load(body, OutcomeReport)
    fields = _sized(_sent(report), strict=True)
    return Outcome(success=report.success, recorded_at_ms=now_ms, **fields)


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
    return Outcome(success=success, recorded_at_ms=now_ms, **clean_evidence(body))


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
