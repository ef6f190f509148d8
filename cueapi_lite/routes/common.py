"""What every route shares: JSON in and out, paging, the caller's identity."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import BadRequest, Unprocessable
from ..models import User
from ..services.accounts import AccountService

__all__ = ["json_body", "no_content", "ok", "page", "query", "user_of"]

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def no_content() -> Response:
    return Response(status_code=204)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object; empty means `{}` (CONTRACT §4.4), whatever the type."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(data, dict):
        raise Unprocessable("Request body must be a JSON object")
    return data


def query(request: Request, name: str, max_chars: int = 255) -> str | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if len(value) > max_chars:
        raise Unprocessable(f"{name}: must be at most {max_chars} characters")
    return value


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise Unprocessable(f"{name}: must be an integer", details=[
            {"field": name, "message": "must be an integer"}]) from None  # fmt: skip


def page(request: Request) -> tuple[int, int]:
    """`limit` (default 20, clamped to 1..100) and `offset` (>= 0) from the query."""
    limit = min(max(_int_param(request, "limit", DEFAULT_LIMIT), 1), MAX_LIMIT)
    offset = _int_param(request, "offset", 0)
    if offset < 0:
        raise Unprocessable("offset: must be 0 or more")
    return limit, offset


async def user_of(request: Request, accounts: AccountService) -> User:
    return await accounts.authenticate(request.headers.get("authorization"))
