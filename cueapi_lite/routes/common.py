"""What every route shares: JSON in and out, paging, the caller's identity and rate."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable, Hashable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from ..config import Settings
from ..errors import Unprocessable
from ..json_input import decode_json_body
from ..models import User, encode
from ..ratelimit import SCOPE_KEY, RateState
from ..read_cache import ReadCache
from ..services.accounts import AccountService, Caller

__all__ = [
    "admit_anonymous",
    "caller_of",
    "caller_with",
    "client_address",
    "host_is_ours",
    "int_param",
    "json_body",
    "no_content",
    "ok",
    "page",
    "public_base",
    "query",
    "rate_state",
    "reused",
    "user_of",
]

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_OFFSET = 1_000_000_000  # more rows than one user can hold; keeps SQL integers small
_INTEGER = re.compile(r"^-?[0-9]{1,19}$")
_HOST_HEADER = re.compile(r"^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$")


class JsonResponse(Response):
    """An encoded JSON answer; its headers are built directly (the same two Starlette
    would add: content-length, content-type)."""

    media_type = "application/json"

    def __init__(self, body: bytes, status: int = 200, headers: dict[str, str] | None = None):
        self.status_code = status
        self.background = None
        self.body = body
        self.raw_headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ]
        if headers:
            self.raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]


def ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JsonResponse(encode(data), status, headers)


async def reused(
    request: Request, reads: ReadCache, who: Hashable, render: Callable[[], Awaitable[Any]]
) -> Response:
    """A 200 answer to this path and query string, kept while nothing commits; `render()`
    makes it (and checks the query) when none is kept. `who` holds everything else the
    answer depends on: the user, or the credential when the answer names it."""

    async def body() -> bytes:
        return encode(await render())

    key = (who, request.scope["path"], request.scope["query_string"])
    return JsonResponse(await reads.get(key, body))


def no_content() -> Response:
    return Response(status_code=204)


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object; empty means `{}` (CONTRACT §4.4), whatever the type."""
    raw = await request.body()
    if not raw.strip():
        return {}
    data = decode_json_body(raw)
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


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter in `low..high` (422 naming it otherwise): every integer
    that reaches SQL is bounded, so none can overflow a 64-bit column."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not _INTEGER.match(raw):
        raise _bad_param(name, "must be an integer")
    value = int(raw)
    if not low <= value <= high:
        raise _bad_param(name, f"must be between {low:,} and {high:,}")
    return value


def _bad_param(name: str, message: str) -> Unprocessable:
    return Unprocessable(f"{name}: {message}", details=[{"field": name, "message": message}])


def page(request: Request) -> tuple[int, int]:
    """`limit` (default 20, clamped to 1..100) and `offset` (0..MAX_OFFSET) from the query."""
    limit = int_param(request, "limit", DEFAULT_LIMIT, -MAX_OFFSET, MAX_OFFSET)
    offset = int_param(request, "offset", 0, 0, MAX_OFFSET)
    return min(max(limit, 1), MAX_LIMIT), offset


def client_address(request: Request) -> str:
    """The peer address (a proxy's X-Forwarded-For is not trusted: anyone can send it)."""
    return request.client.host if request.client else "unknown"


def _keep_rate(request: Request, state: RateState | None) -> None:
    if state is not None:
        request.scope[SCOPE_KEY] = state  # the edge adds X-RateLimit-* from it


def rate_state(request: Request) -> RateState | None:
    state = request.scope.get(SCOPE_KEY)
    return state if isinstance(state, RateState) else None


async def caller_of(request: Request, accounts: AccountService) -> Caller:
    """Authenticate the request (401) and count it against its key's window (429)."""
    return await caller_with(request, accounts, request.headers.get("authorization"))


async def caller_with(
    request: Request, accounts: AccountService, authorization: str | None
) -> Caller:
    """`caller_of` for a credential the request carries elsewhere (the dashboard's
    session cookie), given as an `Authorization` value."""
    caller, state = await accounts.admit(authorization, client_address(request))
    _keep_rate(request, state)
    return caller


async def user_of(request: Request, accounts: AccountService) -> User:
    return (await caller_of(request, accounts)).user


def admit_anonymous(request: Request, accounts: AccountService) -> None:
    """Count a request to a route without auth against the client address (429)."""
    _keep_rate(request, accounts.admit_anonymous(client_address(request)))


def _host_name(request: Request) -> str | None:
    host = request.headers.get("host", "")
    if not _HOST_HEADER.match(host):
        return None
    return urlsplit(f"//{host}").hostname


def public_base(request: Request, settings: Settings) -> str:
    """This server's origin as people reach it: the configured public URL, else the
    request's (well-formed) Host, else the listening address."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = request.headers.get("host", "")
    if _HOST_HEADER.match(host):
        return f"{request.url.scheme}://{host}"
    return settings.base_url


def host_is_ours(request: Request, settings: Settings) -> bool:
    """Whether the Host header names this server: an IP address, `localhost`, the
    listening host or the public URL's host. A DNS-rebinding page arrives with the
    attacker's own name and is refused."""
    name = _host_name(request)
    if name is None:
        return False
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return True
    names = {"localhost", settings.host.lower()}
    if settings.public_url:
        names.add((urlsplit(settings.public_url).hostname or "").lower())
    return name.lower() in names
