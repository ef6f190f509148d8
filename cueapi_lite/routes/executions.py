"""`/v1/executions` (E7-E9): list, get, report an outcome."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..models import Execution, execution_raw, started_json
from ..read_cache import ReadCache
from ..services.accounts import AccountService
from ..services.executions import ExecutionService
from ..store import ExecutionFilters
from .common import json_body, ok, page, query, reused, user_of

__all__ = ["execution_page_json", "execution_routes", "outcome_recorded_json"]


def execution_page_json(
    found: list[Execution],
    total: int,
    limit: int,
    offset: int,
    render: Callable[[Execution], Any] = execution_raw,
) -> dict[str, Any]:
    """E7's page; `render` makes each execution (pre-encoded by default, `execution_json`
    for a dict)."""
    return {
        "executions": [render(e) for e in found],
        "total": total,
        "limit": limit,
        "offset": offset,
        "has_more": offset + len(found) < total,
    }


def outcome_recorded_json(execution: Execution, state: str) -> dict[str, Any]:
    return {
        "execution_id": execution.id,
        "outcome_recorded": True,
        "outcome_state": state,
        "reason": None,
    }


def execution_routes(
    executions: ExecutionService, accounts: AccountService, reads: ReadCache
) -> list[Route]:
    async def list_executions(request: Request) -> Response:
        user = await user_of(request, accounts)

        async def render() -> Any:
            limit, offset = page(request)
            filters = ExecutionFilters(
                cue_id=query(request, "cue_id"),
                status=query(request, "status"),
                outcome_state=query(request, "outcome_state"),
                triggered_by=query(request, "triggered_by"),
            )
            found, total = await executions.page(user, filters, limit, offset)
            return execution_page_json(found, total, limit, offset)

        return await reused(request, reads, user.id, render)

    async def get(request: Request) -> Response:
        user = await user_of(request, accounts)

        async def render() -> Any:
            return execution_raw(await executions.get(user, request.path_params["execution_id"]))

        return await reused(request, reads, user.id, render)

    async def outcome(request: Request) -> Response:
        user = await user_of(request, accounts)
        body = await json_body(request)
        execution, state = await executions.report_outcome(
            user, request.path_params["execution_id"], body, request.headers.get("x-worker-id")
        )
        return ok(outcome_recorded_json(execution, state))

    async def verify(request: Request) -> Response:
        user = await user_of(request, accounts)
        body = await json_body(request)
        execution, valid, reason = await executions.verify(
            user, request.path_params["execution_id"], body
        )
        return ok(
            {
                "execution_id": execution.id,
                "outcome_state": execution.outcome_state,
                "valid": valid,
                "reason": reason,
            }
        )

    async def verification_pending(request: Request) -> Response:
        user = await user_of(request, accounts)
        await json_body(request)
        execution_id = request.path_params["execution_id"]
        await executions.mark_verification_pending(user, execution_id)
        return ok({"execution_id": execution_id, "outcome_state": "verification_pending"})

    async def evidence(request: Request) -> Response:
        user = await user_of(request, accounts)
        body = await json_body(request)
        execution_id = request.path_params["execution_id"]
        state = await executions.add_evidence(user, execution_id, body)
        return ok({"execution_id": execution_id, "outcome_state": state, "evidence_updated": True})

    async def replay(request: Request) -> Response:
        user = await user_of(request, accounts)
        await json_body(request)
        execution = await executions.replay(user, request.path_params["execution_id"])
        return ok(started_json(execution))

    return [
        Route("/v1/executions", list_executions, methods=["GET"]),
        Route("/v1/executions/{execution_id}", get, methods=["GET"]),
        Route("/v1/executions/{execution_id}/outcome", outcome, methods=["POST"]),
        Route("/v1/executions/{execution_id}/verify", verify, methods=["POST"]),
        Route(
            "/v1/executions/{execution_id}/verification-pending",
            verification_pending,
            methods=["POST"],
        ),
        Route("/v1/executions/{execution_id}/evidence", evidence, methods=["PATCH"]),
        Route("/v1/executions/{execution_id}/replay", replay, methods=["POST"]),
    ]
