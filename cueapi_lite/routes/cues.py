"""`/v1/cues` (E1-E6): parse, call the cue service, render."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..models import Cue, Execution, cue_raw, cue_raw_with, execution_raw, started_json
from ..read_cache import ReadCache
from ..services.accounts import AccountService
from ..services.cues import RECENT_EXECUTIONS, CueService
from .common import json_body, no_content, ok, page, query, reused, user_of

__all__ = ["cue_page_json", "cue_routes", "recent_executions_json"]


def cue_page_json(
    found: list[Cue], total: int, limit: int, offset: int, render: Callable[[Cue], Any] = cue_raw
) -> dict[str, Any]:
    """E2's page; `render` makes each cue (pre-encoded by default, `cue_json` for a dict)."""
    return {"cues": [render(c) for c in found], "total": total, "limit": limit, "offset": offset}


def recent_executions_json(
    executions: list[Execution], total: int, render: Callable[[Execution], Any] = execution_raw
) -> dict[str, Any]:
    """What E3 adds to the cue: its newest executions (pre-encoded by default)."""
    return {
        "executions": [render(e) for e in executions],
        "execution_total": total,
        "execution_limit": RECENT_EXECUTIONS,
        "execution_offset": 0,
    }


def cue_routes(cues: CueService, accounts: AccountService, reads: ReadCache) -> list[Route]:
    async def create(request: Request) -> Response:
        user = await user_of(request, accounts)
        cue = await cues.create(user, await json_body(request))
        return ok(cue_raw(cue), 201)

    async def list_cues(request: Request) -> Response:
        user = await user_of(request, accounts)

        async def render() -> Any:
            limit, offset = page(request)
            found, total = await cues.page(user, query(request, "status"), limit, offset)
            return cue_page_json(found, total, limit, offset)

        return await reused(request, reads, user.id, render)

    async def get(request: Request) -> Response:
        user = await user_of(request, accounts)

        async def render() -> Any:
            cue, executions, total = await cues.get(user, request.path_params["cue_id"])
            return cue_raw_with(cue, recent_executions_json(executions, total))

        return await reused(request, reads, user.id, render)

    async def update(request: Request) -> Response:
        user = await user_of(request, accounts)
        body = await json_body(request)
        cue = await cues.update(user, request.path_params["cue_id"], body)
        return ok(cue_raw(cue))

    async def delete(request: Request) -> Response:
        user = await user_of(request, accounts)
        await cues.delete(user, request.path_params["cue_id"])
        return no_content()

    async def fire(request: Request) -> Response:
        user = await user_of(request, accounts)
        body = await json_body(request)
        execution = await cues.fire(user, request.path_params["cue_id"], body)
        return ok(started_json(execution))

    return [
        Route("/v1/cues", create, methods=["POST"]),
        Route("/v1/cues", list_cues, methods=["GET"]),
        Route("/v1/cues/{cue_id}", get, methods=["GET"]),
        Route("/v1/cues/{cue_id}", update, methods=["PATCH"]),
        Route("/v1/cues/{cue_id}", delete, methods=["DELETE"]),
        Route("/v1/cues/{cue_id}/fire", fire, methods=["POST"]),
    ]
