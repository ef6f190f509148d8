"""Every error the API can answer, and the one function that renders them.

Services raise these; routes never build error responses by hand. The tree::

    ApiError                         any answer in the error envelope (CONTRACT §2.1)
     ├── BadRequest          400     invalid_json, invalid_schedule, invalid_payload_size,
     │                               invalid_callback_url, confirmation_required
     ├── Unauthorized        401     invalid_api_key, key_rotated
     ├── Forbidden           403     cue_limit_exceeded, not_execution_owner, ...
     ├── NotFound            404     not_found, cue_not_found, execution_not_found
     ├── MethodNotAllowed    405     method_not_allowed
     ├── Conflict            409     duplicate_cue_name, outcome_already_recorded, ...
     ├── RequestTooLarge     413     request_too_large
     ├── Unprocessable       422     validation_error, invalid_timezone
     ├── TooManyRequests     429     rate_limit_exceeded (carries retry_after_s)
     └── InternalError       500     internal_error (never carries internals)
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

__all__ = [
    "ApiError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "InternalError",
    "MethodNotAllowed",
    "NotFound",
    "RequestTooLarge",
    "TooManyRequests",
    "Unauthorized",
    "Unprocessable",
    "envelope",
    "render",
]


class ApiError(Exception):
    """An error with an HTTP status, a snake_case code and a message for people."""

    status: ClassVar[int] = 400
    default_code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        message: str,
        code: str | None = None,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details
        self.headers = headers or {}


class BadRequest(ApiError):
    """Raised for malformed input: bad JSON, a bad schedule, URL or payload size."""

    status = 400
    default_code = "bad_request"


class Unauthorized(ApiError):
    """Raised when the bearer token is missing, unknown, revoked or rotated."""

    status = 401
    default_code = "invalid_api_key"


class Forbidden(ApiError):
    """Raised when a limit or an ownership rule refuses an otherwise valid request."""

    status = 403
    default_code = "forbidden"


class NotFound(ApiError):
    """Raised for unknown ids, other users' ids (tenant isolation) and unknown paths."""

    status = 404
    default_code = "not_found"


class MethodNotAllowed(ApiError):
    """Raised when a known path is called with a method it does not serve."""

    status = 405
    default_code = "method_not_allowed"


class Conflict(ApiError):
    """Raised when the request loses against the current state (a lost compare-and-set)."""

    status = 409
    default_code = "conflict"


class RequestTooLarge(ApiError):
    """Raised when a request body passes the server's size limit."""

    status = 413
    default_code = "request_too_large"


class Unprocessable(ApiError):
    """Raised for well-formed JSON whose fields have the wrong type or range."""

    status = 422
    default_code = "validation_error"


class TooManyRequests(ApiError):
    """Raised by rate limits; `Retry-After` is always a whole number of seconds (H11)."""

    status = 429
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after_s: int, code: str | None = None) -> None:
        super().__init__(message, code, headers={"Retry-After": str(int(retry_after_s))})
        self.retry_after_s = int(retry_after_s)


class InternalError(ApiError):
    """Rendered for unexpected exceptions; the message never names internals."""

    status = 500
    default_code = "internal_error"


def envelope(status: int, code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The error body: `error` for the SDK and worker, `detail.error` for the CLI (H7)."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return {"error": error, "detail": {"error": dict(error)}}


def render(exc: ApiError) -> tuple[int, bytes, dict[str, str]]:
    """Status, JSON body and extra headers for an error."""
    body = envelope(exc.status, exc.code, exc.message, exc.details)
    return exc.status, json.dumps(body).encode("utf-8"), dict(exc.headers)
