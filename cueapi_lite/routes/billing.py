"""Usage (E40) and the hosted service's billing endpoints (E38, E39).

A self-hosted server has no billing: checkout and portal answer a clear 404 that the CLI
prints (`cueapi upgrade`, `cueapi manage`), never a 5xx.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..clock import Clock
from ..errors import NotFound
from ..limits import UNLIMITED
from ..models import iso
from ..read_cache import ReadCache
from ..services.accounts import AccountService
from ..services.limits import DAY_MS, LimitService, Usage
from .common import admit_anonymous, caller_of, ok, rate_state

__all__ = ["billing_routes"]


def billing_routes(
    accounts: AccountService, limits: LimitService, clock: Clock, reads: ReadCache
) -> list[Route]:
    async def usage(request: Request) -> Response:
        caller = await caller_of(request, accounts)

        async def read() -> Usage:
            return await limits.usage(caller.user)

        # The month's counts start again at a midnight (UTC), so the day is in the key.
        now_ms = clock.now_ms()
        found = await reads.get(("usage", caller.user.id, now_ms // DAY_MS), read)
        rate = rate_state(request)
        rate_limit = rate.limit if rate else UNLIMITED
        return ok(
            {
                "plan": found.plan,
                "billing_period": {
                    "start": iso(found.period_start_ms),
                    "end": iso(found.period_end_ms),
                    "days_remaining": found.days_remaining(now_ms),
                },
                "cues": {
                    "active": found.cues_active,
                    "used": found.cues_counted,
                    "limit": found.cue_limit,
                    "remaining": max(0, found.cue_limit - found.cues_counted),
                },
                "executions": {
                    "used": found.executions_used,
                    "limit": found.execution_limit,
                    "remaining": max(0, found.execution_limit - found.executions_used),
                    "percent_used": found.percent_used,
                },
                "rate_limit": {
                    "limit": rate_limit,
                    "requests_per_minute": rate_limit,
                    "current_usage": rate.used if rate else 0,
                },
            }
        )

    async def not_available(request: Request) -> Response:
        admit_anonymous(request, accounts)
        raise NotFound("Billing is not available on a self-hosted server.", "billing_not_available")

    return [
        Route("/v1/usage", usage, methods=["GET"]),
        Route("/v1/billing/checkout", not_available, methods=["POST"]),
        Route("/v1/billing/portal", not_available, methods=["POST"]),
    ]
