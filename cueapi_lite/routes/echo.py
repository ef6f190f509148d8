"""`/v1/echo/{token}` (E46): the quickstart's webhook target on this very server.

The POST needs no auth (it is the server's own delivery) and counts against the client
address; the GET needs auth and shows the echo only to the owner of the cue it came from.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import RequestTooLarge
from ..models import iso
from ..services.accounts import AccountService
from ..services.echo import MAX_ECHO_BYTES, EchoService, check_token
from .common import admit_anonymous, json_body, ok, user_of

__all__ = ["echo_routes"]


def echo_routes(echoes: EchoService, accounts: AccountService) -> list[Route]:
    async def store(request: Request) -> Response:
        admit_anonymous(request, accounts)
        token = check_token(request.path_params["token"])
        size = len(await request.body())
        if size > MAX_ECHO_BYTES:
            raise RequestTooLarge(f"Echo bodies are limited to {MAX_ECHO_BYTES:,} bytes")
        payload = await json_body(request)
        headers = {k.lower(): v for k, v in request.headers.items()}
        await echoes.store_echo(token, payload, headers, size)
        return ok({"stored": True})

    async def read(request: Request) -> Response:
        user = await user_of(request, accounts)
        echo = echoes.read(user, request.path_params["token"])
        if echo is None:
            return ok({"status": "waiting"})
        return ok(
            {
                "status": "delivered",
                "payload": echo.payload,
                "headers": echo.headers,
                "received_at": iso(echo.received_at_ms),
            }
        )

    return [
        Route("/v1/echo/{token}", store, methods=["POST"]),
        Route("/v1/echo/{token}", read, methods=["GET"]),
    ]
