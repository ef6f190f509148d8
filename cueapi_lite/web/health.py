"""What a cue's and an execution's state look like on the dashboard.

One place decides the colour of an execution (its outcome category) and the badge of a
cue (healthy, failing, paused, completed); the overview, the cue list and the strips all
ask here. Pure functions of stored states.
"""

from __future__ import annotations

from functools import lru_cache

from ..models import CueStatus, ExecutionStatus, OutcomeState

__all__ = ["CATEGORIES", "CATEGORY_LABELS", "HEALTH_LABELS", "cue_health", "outcome_category"]

# In the order the chart stacks them and the legend lists them.
CATEGORY_LABELS = {
    "success": "Success",
    "failure": "Failure",
    "missed": "Missed",
    "unknown": "Unknown",
    "verification_failed": "Verification failed",
    "pending": "Verification pending",
    "running": "Running",
}
CATEGORIES = tuple(CATEGORY_LABELS)
HEALTH_LABELS = {
    "healthy": "Healthy",
    "failing": "Failing",
    "paused": "Paused",
    "completed": "Completed",
}
_BY_STATE: dict[str, str] = {
    OutcomeState.REPORTED_SUCCESS: "success",
    OutcomeState.VERIFIED_SUCCESS: "success",
    OutcomeState.REPORTED_FAILURE: "failure",
    OutcomeState.VERIFICATION_FAILED: "verification_failed",
    OutcomeState.VERIFICATION_PENDING: "pending",
    OutcomeState.UNKNOWN: "unknown",
}
_BY_STATUS: dict[str, str] = {
    ExecutionStatus.SUCCESS: "success",
    ExecutionStatus.FAILED: "failure",
    ExecutionStatus.MISSED: "missed",
}
_BAD = frozenset({"failure", "missed", "unknown", "verification_failed"})


@lru_cache(maxsize=256)  # a few dozen combinations; called for every row of a page
def outcome_category(status: str, outcome_state: str | None) -> str:
    """The outcome state decides when there is one (a delivered webhook whose agent
    reported failure is a failure); otherwise the delivery status does."""
    if outcome_state is not None and outcome_state in _BY_STATE:
        return _BY_STATE[outcome_state]
    return _BY_STATUS.get(status, "running")


@lru_cache(maxsize=1024)
def cue_health(cue_status: str, last_status: str | None, last_outcome_state: str | None) -> str:
    """Paused and completed cues say so; a cue whose newest finished execution failed,
    was missed, timed out without an outcome or failed verification is failing."""
    if cue_status == CueStatus.PAUSED:
        return "paused"
    if cue_status == CueStatus.COMPLETED:
        return "completed"
    if cue_status == CueStatus.FAILED:
        return "failing"
    if last_status is not None and outcome_category(last_status, last_outcome_state) in _BAD:
        return "failing"
    return "healthy"
