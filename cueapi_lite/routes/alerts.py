"""`/v1/alerts` (E36, E37): the alert history and acknowledging an alert."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..alerts import AlertService
from ..errors import Unprocessable
from ..models import Alert, alert_json, parse_instant
from ..services.accounts import AccountService
from ..store import AlertFilters
from .common import json_body, ok, page, query, user_of

__all__ = ["alert_page_json", "alert_routes"]


def alert_page_json(found: list[Alert], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {
        "alerts": [alert_json(a) for a in found],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


def _flag(value: str | None) -> bool | None:
    if value is None:
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise Unprocessable("acknowledged: must be true or false")


def alert_routes(alerts: AlertService, accounts: AccountService) -> list[Route]:
    async def list_alerts(request: Request) -> Response:
        user = await user_of(request, accounts)
        limit, offset = page(request)
        since = query(request, "since", 40)
        try:
            since_ms = None if since is None else parse_instant(since, UTC)
        except ValueError:
            raise Unprocessable("since: must be an ISO 8601 date-time") from None
        filters = AlertFilters(
            alert_type=query(request, "alert_type"),
            cue_id=query(request, "cue_id"),
            acknowledged=_flag(query(request, "acknowledged")),
            since_ms=since_ms,
        )
        found, total = await alerts.page(user, filters, limit, offset)
        return ok(alert_page_json(found, total, limit, offset))

    async def acknowledge(request: Request) -> Response:
        user = await user_of(request, accounts)
        await json_body(request)
        alert = await alerts.acknowledge(user, request.path_params["alert_id"])
        return ok(alert_json(alert))

    return [
        Route("/v1/alerts", list_alerts, methods=["GET"]),
        Route("/v1/alerts/{alert_id}/acknowledge", acknowledge, methods=["POST"]),
    ]
