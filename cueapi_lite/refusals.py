"""The one place a store `Refusal` (why a write changed nothing) becomes an API error.

Each kind of row has its own wording; the same refusal always reads the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from .errors import ApiError, BadRequest, Conflict, Forbidden, NotFound, TooManyRequests
from .store import Refusal

__all__ = ["Subject", "refused"]

Subject = Literal["execution", "device_code"]

_ERRORS: dict[tuple[Subject, Refusal], Callable[[], ApiError]] = {
    ("execution", Refusal.MISSING): lambda: NotFound("Execution not found", "execution_not_found"),
    ("execution", Refusal.NOT_CLAIMING): lambda: Conflict(
        "Execution is not claimed by a worker (it is not in 'delivering')",
        "execution_not_claiming",
    ),
    ("execution", Refusal.NOT_OWNER): lambda: Forbidden(
        "X-Worker-Id does not match the worker that claimed this execution",
        "not_execution_owner",
    ),
    ("execution", Refusal.OUTCOME_EXISTS): lambda: Conflict(
        "Outcome already recorded for this execution", "outcome_already_recorded"
    ),
    ("execution", Refusal.NO_OUTCOME): lambda: Conflict(
        "This execution has no recorded outcome yet", "no_outcome"
    ),
    ("execution", Refusal.INVALID_STATE): lambda: Conflict(
        "Only a reported or pending outcome can be verified", "invalid_state"
    ),
    ("device_code", Refusal.MISSING): lambda: NotFound(
        "Unknown login code", "device_code_not_found"
    ),
    ("device_code", Refusal.EXPIRED): lambda: BadRequest(
        "This login code has expired: run the login again", "device_code_expired"
    ),
    ("device_code", Refusal.NOT_PENDING): lambda: BadRequest(
        "This login code was already approved", "device_code_not_pending"
    ),
    ("device_code", Refusal.EXISTS): lambda: Conflict(
        "This login code is already in use", "device_code_exists"
    ),
    ("device_code", Refusal.FULL): lambda: TooManyRequests(
        "Too many logins are waiting for approval; try again in a minute",
        60,
        "too_many_device_codes",
    ),
}


def refused(refusal: Refusal, subject: Subject = "execution") -> ApiError:
    """The error to raise for `refusal` of a write on a `subject` row."""
    return _ERRORS[subject, refusal]()
