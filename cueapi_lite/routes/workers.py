"""Worker transport routes (E12, E15-E17, E34, E35): claimable work, claims, heartbeats.

Registered before `/v1/executions/{id}` so the literal paths `claimable` and `claim`
are not read as execution ids (CONTRACT §4.3).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..clock import Clock
from ..leases import LeaseService, heartbeat_status
from ..models import Execution, iso
from ..services.accounts import AccountService
from ..store import Claimable
from .common import json_body, no_content, ok, query, user_of

__all__ = ["claimable_json", "claimed_json", "heartbeat_json", "worker_routes"]


def claimed_json(execution: Execution, lease_s: int) -> dict[str, Any]:
    return {
        "claimed": True,
        "execution_id": execution.id,
        "lease_seconds": lease_s,
        "lease_expires_at": iso(execution.lease_expires_at_ms),
    }


def claimable_json(found: list[Claimable]) -> dict[str, Any]:
    items = []
    for item in found:
        task = item.payload.get("task")
        items.append(
            {
                "execution_id": item.execution_id,
                "cue_id": item.cue_id,
                "cue_name": item.cue_name,
                "task": task if isinstance(task, str) else None,
                "scheduled_for": iso(item.scheduled_for_ms),
                "payload": item.payload,
                "attempt": item.attempts + 1,
            }
        )
    return {"executions": items}


def heartbeat_json(execution: Execution) -> dict[str, Any]:
    return {
        "execution_id": execution.id,
        "acknowledged": True,
        "lease_extended_until": iso(execution.lease_expires_at_ms),
    }


def worker_routes(leases: LeaseService, accounts: AccountService, clock: Clock) -> list[Route]:
    lease_s = leases.lease_ms // 1000
    timeout_s = leases.worker_timeout_ms // 1000

    async def claimable(request: Request) -> Response:
        user = await user_of(request, accounts)
        found = await leases.claimable(user, query(request, "task"), query(request, "agent"))
        return ok(claimable_json(found))

    async def claim(request: Request) -> Response:
        user = await user_of(request, accounts)
        body = await json_body(request)
        execution = await leases.claim(user, request.path_params["execution_id"], body)
        return ok(claimed_json(execution, lease_s))

    async def claim_next(request: Request) -> Response:
        user = await user_of(request, accounts)
        execution = await leases.claim_next(user, await json_body(request))
        return ok(claimed_json(execution, lease_s))

    async def heartbeat(request: Request) -> Response:
        user = await user_of(request, accounts)
        await json_body(request)  # S sends {}, C an empty body: both mean nothing
        execution = await leases.heartbeat(
            user, request.path_params["execution_id"], request.headers.get("x-worker-id")
        )
        return ok(heartbeat_json(execution))

    async def worker_heartbeat(request: Request) -> Response:
        user = await user_of(request, accounts)
        worker_id = await leases.worker_heartbeat(user, await json_body(request))
        return ok(
            {"acknowledged": True, "worker_id": worker_id, "server_time": iso(clock.now_ms())}
        )

    async def list_workers(request: Request) -> Response:
        user = await user_of(request, accounts)
        now_ms = clock.now_ms()
        workers = []
        for worker in await leases.workers(user):
            since_s = max(0, (now_ms - worker.last_heartbeat_ms) // 1000)
            workers.append(
                {
                    "worker_id": worker.worker_id,
                    "handlers": worker.handlers,
                    "last_heartbeat": iso(worker.last_heartbeat_ms),
                    "seconds_since_heartbeat": since_s,
                    "heartbeat_status": heartbeat_status(since_s, timeout_s, lease_s),
                    "registered_since": iso(worker.registered_at_ms),
                }
            )
        return ok({"workers": workers, "total": len(workers)})

    async def forget_worker(request: Request) -> Response:
        user = await user_of(request, accounts)
        await leases.forget_worker(user, request.path_params["worker_id"])
        return no_content()

    return [
        Route("/v1/executions/claimable", claimable, methods=["GET"]),
        Route("/v1/executions/claim", claim_next, methods=["POST"]),
        Route("/v1/executions/{execution_id}/claim", claim, methods=["POST"]),
        Route("/v1/executions/{execution_id}/heartbeat", heartbeat, methods=["POST"]),
        Route("/v1/worker/heartbeat", worker_heartbeat, methods=["POST"]),
        Route("/v1/workers", list_workers, methods=["GET"]),
        Route("/v1/workers/{worker_id}", forget_worker, methods=["DELETE"]),
    ]
