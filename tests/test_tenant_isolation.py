"""Tenant isolation, checked by walking the app's own routes: user B gets 404 for every
route that takes one of user A's ids, changes nothing of A's, and never sees A's items in
any list or in claimable work. A route added later is covered without editing this file,
or fails here until its id is known to `a_world`."""

from __future__ import annotations

import dataclasses
import re

import httpx
import pytest
from starlette.routing import Route

from cueapi_lite import CueApiLite
from cueapi_lite.services.accounts import NewKey

from .conftest import FakeDeliverer, status, webhook_cue

# Path parameters that are not ids of a user's objects.
NOT_TENANT_IDS = {"token"}
# Enough for any route's body validation to pass, so the ownership check is what answers.
ANY_BODY = {
    "worker_id": "worker-b",
    "handlers": ["job"],
    "success": True,
    "label": "b was here",
    "name": "b-was-here",
    "status": "paused",
    "valid": True,
    "summary": "b",
}
HEADERS = {"X-Confirm-Destructive": "true"}


@dataclasses.dataclass
class World:
    """User A's objects, by the path parameter that names each kind."""

    ids: dict[str, list[str]]
    secrets: list[str]  # strings that must never appear in anything B reads


async def a_world(lite: CueApiLite, a: httpx.AsyncClient, deliverer: FakeDeliverer) -> World:
    paths = {route.path for route in lite.asgi.routes if isinstance(route, Route)}
    hook = (await a.post("/v1/cues", json=webhook_cue(
        name="a-private-webhook-cue", retry={"max_attempts": 1},
        alerts={"consecutive_failures": 1}))).json()  # fmt: skip
    worker = (await a.post("/v1/cues", json={
        "name": "a-private-worker-cue", "transport": "worker",
        "schedule": {"type": "recurring", "cron": "0 9 * * *"}, "payload": {"task": "job"},
    })).json()  # fmt: skip
    deliverer.answer(status(500))  # a failed delivery (raises an alert where alerts exist)
    hook_run = (await a.post(f"/v1/cues/{hook['id']}/fire")).json()
    worker_run = (await a.post(f"/v1/cues/{worker['id']}/fire")).json()
    await lite.settle()
    key = (await a.post("/v1/auth/keys", json={"label": "a-private-key"})).json()
    ticket = (await a.post("/v1/support", json={
        "subject": "A private ticket", "message": "Something only A may read, at length.",
        "severity": "low", "type": "bug"})).json()  # fmt: skip
    ids = {
        "cue_id": [hook["id"], worker["id"]],
        "execution_id": [hook_run["id"], worker_run["id"]],
        "key_id": [key["id"]],
        "ticket_id": [str(ticket["ticket_id"])],
    }
    if "/v1/worker/heartbeat" in paths:
        await a.post("/v1/worker/heartbeat", json={"worker_id": "worker-a", "handlers": ["job"]})
        ids["worker_id"] = ["worker-a"]
    if "/v1/alerts" in paths:
        alerts = (await a.get("/v1/alerts")).json()["alerts"]
        ids["alert_id"] = [alert["id"] for alert in alerts[:1]]
    secrets = [
        *ids["cue_id"], *ids["execution_id"], key["id"], key["api_key"][:11],
        "a-private-webhook-cue", "a-private-worker-cue", "a-private-key", "A private ticket",
        "alice@example.com",
    ]  # fmt: skip
    secrets += ids.get("alert_id", []) + ids.get("worker_id", [])
    return World(ids, secrets)


def id_routes(lite: CueApiLite) -> list[tuple[str, str, list[str]]]:
    found = []
    for route in lite.asgi.routes:
        if not isinstance(route, Route) or not route.path.startswith("/v1/"):
            continue
        params = [p for p in route.param_convertors if p not in NOT_TENANT_IDS]
        for method in sorted((route.methods or set()) - {"HEAD"}):
            if params:
                found.append((method, route.path, params))
    return found


@pytest.fixture
async def b(lite: CueApiLite) -> httpx.AsyncClient:
    key: NewKey = await lite.accounts.mint_key("bob@example.com")
    return lite.client(key.api_key)


async def test_b_gets_404_for_every_route_that_takes_an_id_of_a(
    lite: CueApiLite, api: httpx.AsyncClient, b: httpx.AsyncClient, deliverer: FakeDeliverer
) -> None:
    world = await a_world(lite, api, deliverer)
    routes = id_routes(lite)
    unknown = sorted({p for _m, _path, params in routes for p in params} - set(world.ids))
    assert not unknown, f"tenant-isolation test has no object of A for: {unknown}"
    tried = []
    async with b:
        for method, path, params in routes:
            assert all(world.ids[p] for p in params), (path, "A has no such object")
            for n in range(max(len(world.ids[p]) for p in params)):
                url = path
                for p in params:
                    values = world.ids[p]
                    url = url.replace("{" + p + "}", values[min(n, len(values) - 1)])
                body = None if method in ("GET", "DELETE") else ANY_BODY
                response = await b.request(method, url, json=body, headers=HEADERS)
                assert response.status_code == 404, (method, url, response.text)
                assert response.json()["error"]["status"] == 404
                tried.append((method, path))
    assert ("DELETE", "/v1/cues/{cue_id}") in tried
    assert ("GET", "/v1/support/{ticket_id}") in tried

    # A's objects are untouched.
    for cue_id in world.ids["cue_id"]:
        cue = (await api.get(f"/v1/cues/{cue_id}")).json()
        assert cue["status"] == "active"
        assert cue["name"].startswith("a-private-")
    for execution_id in world.ids["execution_id"]:
        assert (await api.get(f"/v1/executions/{execution_id}")).json()["outcome"] is None
    keys = (await api.get("/v1/auth/keys")).json()["keys"]
    assert {k["label"]: k["status"] for k in keys}["a-private-key"] == "active"


async def test_b_never_sees_a_in_any_list(
    lite: CueApiLite, api: httpx.AsyncClient, b: httpx.AsyncClient, deliverer: FakeDeliverer
) -> None:
    world = await a_world(lite, api, deliverer)
    ticket_id = world.ids["ticket_id"][0]
    paths = sorted(
        route.path
        for route in lite.asgi.routes
        if isinstance(route, Route) and route.path.startswith("/v1/")
        and "GET" in (route.methods or set()) and not route.param_convertors
        and route.path != "/v1/auth/verify"
    )  # fmt: skip
    assert {"/v1/cues", "/v1/executions", "/v1/auth/keys", "/v1/support"} <= set(paths)
    async with b:
        for path in paths:
            response = await b.get(path)
            assert response.status_code == 200, (path, response.text)
            for secret in world.secrets:
                assert secret not in response.text, (path, secret)
            assert not re.search(rf'"ticket_id":\s*{ticket_id}\b', response.text), path
        # Claiming "the next" execution never hands B one of A's.
        paths_all = {r.path for r in lite.asgi.routes if isinstance(r, Route)}
        if "/v1/executions/claim" in paths_all:
            claim = await b.post("/v1/executions/claim", json={"worker_id": "worker-b"})
            assert claim.status_code == 409, claim.text
    worker_run = (await api.get(f"/v1/executions/{world.ids['execution_id'][1]}")).json()
    assert worker_run["status"] == "pending"
