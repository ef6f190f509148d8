"""`/v1/support` (E41-E43): tickets stored on this server."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..models import iso
from ..services.accounts import AccountService
from ..services.support import SupportService
from ..store import Ticket
from .common import json_body, ok, page, user_of

__all__ = ["support_routes"]


def ticket_json(ticket: Ticket) -> dict[str, Any]:
    return {
        "ticket_id": ticket.id,
        "subject": ticket.subject,
        "message": ticket.message,
        "severity": ticket.severity,
        "type": ticket.type,
        "status": ticket.status,
        "created_at": iso(ticket.created_at_ms),
        "updated_at": iso(ticket.updated_at_ms),
    }


def support_routes(support: SupportService, accounts: AccountService) -> list[Route]:
    async def file(request: Request) -> Response:
        user = await user_of(request, accounts)
        ticket = await support.file(user, await json_body(request))
        return ok(
            {"status": "received", "ticket_id": ticket.id, "ticket_status": ticket.status}, 201
        )

    async def list_tickets(request: Request) -> Response:
        user = await user_of(request, accounts)
        limit, offset = page(request)
        found, total = await support.page(user, limit, offset)
        return ok(
            {
                "tickets": [ticket_json(t) for t in found],
                "total": total,
                "limit": limit,
                "offset": offset,
            }
        )

    async def get(request: Request) -> Response:
        user = await user_of(request, accounts)
        return ok(ticket_json(await support.get(user, request.path_params["ticket_id"])))

    return [
        Route("/v1/support", file, methods=["POST"]),
        Route("/v1/support", list_tickets, methods=["GET"]),
        Route("/v1/support/{ticket_id}", get, methods=["GET"]),
    ]
