"""`/health` and `/status` (E44, E45): no auth, no rate limit."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import __version__
from ..models import iso
from .common import ok

__all__ = ["health_routes"]

Checks = Callable[[], dict[str, bool]]


def health_routes(checks: Checks, now_ms: Callable[[], int]) -> list[Route]:
    async def health(request: Request) -> Response:
        services = checks()
        healthy = all(services.values())
        return ok(
            {
                "status": "healthy" if healthy else "unhealthy",
                "version": __version__,
                "timestamp": iso(now_ms()),
                "services": {name: "up" if up else "down" for name, up in services.items()},
            },
            200 if healthy else 503,
        )

    async def status(request: Request) -> Response:
        services = checks()
        down = sorted(name for name, up in services.items() if not up)
        if not down:
            return ok({"status": "healthy"})
        return ok({"status": "down", "reason": ", ".join(down) + " not running"}, 503)

    return [
        Route("/health", health, methods=["GET"]),
        Route("/status", status, methods=["GET"]),
    ]
