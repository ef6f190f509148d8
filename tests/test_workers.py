"""Worker transport: claimable work, atomic claims, leases and their expiry (CONTRACT §8),
driven by the manual clock."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.services.accounts import NewKey

from .conftest import FakeDeliverer, webhook_cue
from .helpers import iso_at

LEASE_S = 900
WORKER_TIMEOUT_S = 180


async def worker_cue(api: httpx.AsyncClient, name: str = "sync", **payload: Any) -> dict[str, Any]:
    response = await api.post(
        "/v1/cues",
        json={"name": name, "schedule": {"type": "recurring", "cron": "0 0 1 1 *"},
              "transport": "worker", "payload": {"task": "sync", **payload}},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return dict(response.json())


async def fire(api: httpx.AsyncClient, cue: dict[str, Any], **override: Any) -> str:
    body = {"payload_override": override} if override else {}
    response = await api.post(f"/v1/cues/{cue['id']}/fire", json=body)
    assert response.status_code == 200
    return str(response.json()["id"])


async def claim(api: httpx.AsyncClient, execution_id: str, worker: str = "w1") -> httpx.Response:
    return await api.post(f"/v1/executions/{execution_id}/claim", json={"worker_id": worker})


async def execution(api: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    return dict((await api.get(f"/v1/executions/{execution_id}")).json())


async def test_claimable_lists_due_worker_work_oldest_first_with_filters(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    cue = await worker_cue(api, agent="alpha")
    other = await worker_cue(api, name="other")
    hook = (await api.post("/v1/cues", json=webhook_cue())).json()
    first = await fire(api, cue)
    clock.advance(1)
    second = await fire(api, other, task="report")
    clock.advance(1)
    third = await fire(api, cue, task=["not", "a", "string"])
    await api.post(f"/v1/cues/{hook['id']}/fire")
    listed = (await api.get("/v1/executions/claimable")).json()["executions"]
    assert [e["execution_id"] for e in listed] == [first, second, third]
    assert listed[0] == {
        "execution_id": first, "cue_id": cue["id"], "cue_name": "sync", "task": "sync",
        "scheduled_for": listed[0]["scheduled_for"], "payload": {"task": "sync", "agent": "alpha"},
        "attempt": 1,
    }  # fmt: skip
    assert listed[2]["task"] is None  # only a string task is a task
    by_task = (await api.get("/v1/executions/claimable", params={"task": "report"})).json()
    assert [e["execution_id"] for e in by_task["executions"]] == [second]
    by_agent = (await api.get("/v1/executions/claimable", params={"agent": "alpha"})).json()
    assert [e["execution_id"] for e in by_agent["executions"]] == [first, third]


async def test_claimable_is_not_capped_small(api: httpx.AsyncClient) -> None:
    cue = await worker_cue(api)
    for _ in range(520):
        await fire(api, cue)
    listed = (await api.get("/v1/executions/claimable")).json()["executions"]
    assert len(listed) == 520


async def test_a_claim_takes_the_execution_once(api: httpx.AsyncClient, clock: ManualClock) -> None:
    cue = await worker_cue(api)
    execution_id = await fire(api, cue)
    response = await claim(api, execution_id)
    assert response.status_code == 200
    assert response.json() == {
        "claimed": True, "execution_id": execution_id, "lease_seconds": LEASE_S,
        "lease_expires_at": response.json()["lease_expires_at"],
    }  # fmt: skip
    stored = await execution(api, execution_id)
    assert stored["status"] == "delivering"
    assert stored["claimed_by_worker"] == "w1"
    assert stored["attempts"] == 1
    assert stored["claimed_at"] == stored["started_at"] == stored["last_attempt_at"]
    assert stored["lease_expires_at"] == response.json()["lease_expires_at"]
    again = await claim(api, execution_id, "w2")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "execution_not_claimable"
    assert (await api.get("/v1/executions/claimable")).json()["executions"] == []


async def test_fifty_concurrent_claimers_exactly_one_wins(api: httpx.AsyncClient) -> None:
    cue = await worker_cue(api)
    execution_id = await fire(api, cue)
    responses = await asyncio.gather(*(claim(api, execution_id, f"w{n}") for n in range(50)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 49
    winner = next(r for r, n in zip(responses, range(50), strict=True) if r.status_code == 200)
    stored = await execution(api, execution_id)
    assert stored["attempts"] == 1
    assert winner.json()["execution_id"] == execution_id


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [({}, 422, "validation_error"), ({"worker_id": ""}, 422, "validation_error"),
     ({"worker_id": "w" * 256}, 422, "validation_error")],
)  # fmt: skip
async def test_a_claim_needs_a_worker_id(
    api: httpx.AsyncClient, body: dict[str, Any], status: int, code: str
) -> None:
    execution_id = await fire(api, await worker_cue(api))
    response = await api.post(f"/v1/executions/{execution_id}/claim", json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)


async def test_webhook_and_unknown_executions_cannot_be_claimed(api: httpx.AsyncClient) -> None:
    hook = (await api.post("/v1/cues", json=webhook_cue())).json()
    hook_execution = (await api.post(f"/v1/cues/{hook['id']}/fire")).json()["id"]
    assert (await claim(api, hook_execution)).status_code == 409
    unknown = await claim(api, "00000000-0000-4000-8000-000000000000")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "execution_not_found"


async def test_claim_next_takes_the_oldest_and_says_409_when_there_is_none(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    cue = await worker_cue(api)
    older = await fire(api, cue)
    clock.advance(1)
    newer = await fire(api, cue, task="other")
    got = await api.post("/v1/executions/claim", json={"worker_id": "w1", "task": "other"})
    assert got.json()["execution_id"] == newer
    got = await api.post("/v1/executions/claim", json={"worker_id": "w1"})
    assert got.status_code == 200
    assert got.json()["execution_id"] == older
    none = await api.post("/v1/executions/claim", json={"worker_id": "w1"})
    assert none.status_code == 409
    assert none.json()["error"]["code"] == "no_claimable_executions"


async def test_execution_heartbeat_checks_in_order_and_extends_the_lease(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    execution_id = await fire(api, await worker_cue(api))
    url = f"/v1/executions/{execution_id}/heartbeat"
    assert (await api.post("/v1/executions/00000000-0000-4000-8000-000000000000/heartbeat",
                           json={})).status_code == 404  # fmt: skip
    pending = await api.post(url, json={})
    assert pending.status_code == 409
    assert pending.json()["error"]["code"] == "execution_not_claiming"
    await claim(api, execution_id, "w1")
    wrong = await api.post(url, content=b"", headers={"X-Worker-Id": "w2"})
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "not_execution_owner"
    clock.advance(600)
    right = await api.post(url, content=b"", headers={"X-Worker-Id": "w1"})
    assert right.status_code == 200
    expected_until = (await execution(api, execution_id))["lease_expires_at"]
    assert right.json() == {
        "execution_id": execution_id, "acknowledged": True, "lease_extended_until": expected_until
    }  # fmt: skip
    sdk_style = await api.post(url, json={})  # the SDK sends no worker id
    assert sdk_style.status_code == 200


async def test_an_expired_lease_of_a_silent_worker_returns_the_work(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    execution_id = await fire(api, await worker_cue(api))
    await claim(api, execution_id, "ghost")  # an ad-hoc id that never sends heartbeats
    clock.advance(LEASE_S - 1)
    await lite.settle()
    assert (await execution(api, execution_id))["status"] == "delivering"
    clock.advance(1)
    await lite.settle()
    stored = await execution(api, execution_id)
    assert stored["status"] == "pending"
    assert stored["claimed_by_worker"] is None
    assert stored["lease_expires_at"] is None
    assert stored["error_message"] == "lease expired"
    assert stored["attempts"] == 1
    listed = (await api.get("/v1/executions/claimable")).json()["executions"]
    assert [(e["execution_id"], e["attempt"]) for e in listed] == [(execution_id, 2)]


async def test_a_live_worker_keeps_its_claim_past_the_lease(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    """The official worker never sends per-execution heartbeats (H15)."""
    execution_id = await fire(api, await worker_cue(api))
    await api.post("/v1/worker/heartbeat", json={"worker_id": "busy", "handlers": ["sync"]})
    await claim(api, execution_id, "busy")
    for _ in range(40):  # 40 minutes of a long handler, heartbeats every minute
        clock.advance(60)
        await api.post("/v1/worker/heartbeat", json={"worker_id": "busy"})
        await lite.settle()
    assert (await execution(api, execution_id))["status"] == "delivering"
    clock.advance(WORKER_TIMEOUT_S - 1)  # the worker dies: silence
    await lite.settle()
    assert (await execution(api, execution_id))["status"] == "delivering"
    clock.advance(1)
    await lite.settle()
    assert (await execution(api, execution_id))["status"] == "pending"


async def test_a_silent_worker_within_its_lease_keeps_the_claim(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    execution_id = await fire(api, await worker_cue(api))
    await api.post("/v1/worker/heartbeat", json={"worker_id": "w1"})
    await claim(api, execution_id, "w1")
    clock.advance(LEASE_S - 10)  # silent for long, but the lease holds
    await lite.settle()
    assert (await execution(api, execution_id))["status"] == "delivering"


async def test_expiry_with_no_attempts_left_fails_the_execution_and_the_once_cue(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    response = await api.post(
        "/v1/cues",
        json={"name": "one-shot", "schedule": {"type": "once", "at": iso_at(clock.now_ms())},
              "transport": "worker", "payload": {"task": "sync"},
              "retry": {"max_attempts": 2, "backoff_minutes": [1]}},
    )  # fmt: skip
    cue = response.json()
    await lite.settle()
    [item] = (await api.get("/v1/executions/claimable")).json()["executions"]
    for _attempt in range(2):
        assert (await claim(api, item["execution_id"])).status_code == 200
        clock.advance(LEASE_S)
        await lite.settle()
    stored = await execution(api, item["execution_id"])
    assert stored["status"] == "failed"
    assert stored["attempts"] == 2
    detail = (await api.get(f"/v1/cues/{cue['id']}")).json()
    assert detail["status"] == "failed"
    assert detail["run_count"] == 1


async def test_an_outcome_ends_a_worker_execution_and_counts_the_run(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    cue = await worker_cue(api)
    good, bad = await fire(api, cue), await fire(api, cue)
    for execution_id in (good, bad):
        await claim(api, execution_id)
    ok = await api.post(
        f"/v1/executions/{good}/outcome",
        json={"success": True, "result": "synced 12", "external_id": "s-1"},
    )
    assert ok.status_code == 200
    failed = await api.post(f"/v1/executions/{bad}/outcome",
                            json={"success": False, "error": "disk full"})  # fmt: skip
    assert failed.json()["outcome_state"] == "reported_failure"
    assert (await execution(api, good))["status"] == "success"
    stored_bad = await execution(api, bad)
    assert (stored_bad["status"], stored_bad["error_message"]) == ("failed", "disk full")
    detail = (await api.get(f"/v1/cues/{cue['id']}")).json()
    assert detail["run_count"] == 2
    assert detail["last_run"] is not None
    clock.advance(LEASE_S + WORKER_TIMEOUT_S)
    await lite.settle()
    assert (await execution(api, good))["status"] == "success"  # no expiry after the end


async def test_a_late_outcome_after_expiry_is_still_accepted(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    execution_id = await fire(api, await worker_cue(api))
    await claim(api, execution_id, "slow")
    clock.advance(LEASE_S)
    await lite.settle()
    late = await api.post(f"/v1/executions/{execution_id}/outcome", json={"success": True})
    assert late.status_code == 200
    assert (await execution(api, execution_id))["status"] == "success"


async def test_an_outcome_from_another_worker_is_refused(api: httpx.AsyncClient) -> None:
    execution_id = await fire(api, await worker_cue(api))
    await claim(api, execution_id, "owner")
    response = await api.post(f"/v1/executions/{execution_id}/outcome", json={"success": True},
                              headers={"X-Worker-Id": "intruder"})  # fmt: skip
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_execution_owner"
    assert (await execution(api, execution_id))["outcome"] is None


async def test_creating_a_worker_cue_without_live_workers_warns(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    first = await worker_cue(api, name="first")
    assert first["warning"].startswith("No active workers found")
    assert (await api.get(f"/v1/cues/{first['id']}")).json()["warning"] is None
    await api.post("/v1/worker/heartbeat", json={"worker_id": "w1", "handlers": ["sync"]})
    assert (await worker_cue(api, name="second"))["warning"] is None
    clock.advance(WORKER_TIMEOUT_S)
    assert (await worker_cue(api, name="third"))["warning"] is not None
    hook = (await api.post("/v1/cues", json=webhook_cue())).json()
    assert hook["warning"] is None


async def test_a_worker_cue_without_payload_task_is_told_how_the_worker_routes(
    api: httpx.AsyncClient,
) -> None:
    await api.post("/v1/worker/heartbeat", json={"worker_id": "w1", "handlers": ["sync"]})
    body = {"name": "no-task", "schedule": {"type": "recurring", "cron": "0 0 1 1 *"},
            "transport": "worker", "payload": {"n": 1}}  # fmt: skip
    created = (await api.post("/v1/cues", json=body)).json()
    assert created["warning"].startswith("This worker cue has no payload.task")
    assert "worker.yaml" in created["warning"]
    blank = (await api.post("/v1/cues", json={**body, "name": "blank",
                                               "payload": {"task": " "}})).json()  # fmt: skip
    assert blank["warning"].startswith("This worker cue has no payload.task")
    assert (await worker_cue(api, name="with-task"))["warning"] is None
    hook = (await api.post("/v1/cues", json=webhook_cue(payload={}))).json()
    assert hook["warning"] is None


async def test_both_warnings_together_when_nothing_could_claim_the_work(
    api: httpx.AsyncClient,
) -> None:
    body = {"name": "lonely", "schedule": {"type": "recurring", "cron": "0 0 1 1 *"},
            "transport": "worker"}  # fmt: skip
    warning = (await api.post("/v1/cues", json=body)).json()["warning"]
    assert warning.startswith("This worker cue has no payload.task")
    assert "No active workers found" in warning


async def test_unclaimed_work_is_recorded_as_missed(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    execution_id = await fire(api, await worker_cue(api))
    clock.advance(900 - 1)
    await lite.settle()
    assert (await execution(api, execution_id))["status"] == "pending"
    clock.advance(1)
    await lite.settle()
    stored = await execution(api, execution_id)
    assert (stored["status"], stored["missed_reason"]) == ("missed", "unclaimed")
    assert (await api.get("/v1/executions/claimable")).json()["executions"] == []


async def test_workers_are_listed_with_their_liveness_and_can_be_forgotten(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    await api.post("/v1/worker/heartbeat", json={"worker_id": "old", "handlers": ["a"]})
    clock.advance(200)
    await api.post("/v1/worker/heartbeat", json={"worker_id": "new", "handlers": ["b", "c"]})
    clock.advance(10)
    listed = (await api.get("/v1/workers")).json()
    assert listed["total"] == 2
    new, old = listed["workers"]
    assert (new["worker_id"], new["handlers"], new["heartbeat_status"]) == (
        "new",
        ["b", "c"],
        "active",
    )
    assert new["seconds_since_heartbeat"] == 10
    assert (old["worker_id"], old["heartbeat_status"]) == ("old", "stale")
    clock.advance(1000)
    assert (await api.get("/v1/workers")).json()["workers"][0]["heartbeat_status"] == "dead"
    assert (await api.delete("/v1/workers/old")).status_code == 204
    gone = await api.delete("/v1/workers/old")
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "worker_not_found")
    bad = await api.post("/v1/worker/heartbeat", json={"worker_id": "x", "handlers": "a"})
    assert bad.status_code == 422


async def test_claims_and_workers_are_private_to_each_user(
    lite: CueApiLite, api: httpx.AsyncClient
) -> None:
    execution_id = await fire(api, await worker_cue(api))
    await api.post("/v1/worker/heartbeat", json={"worker_id": "mine"})
    other = await lite.accounts.mint_key("eve@example.com")
    async with lite.client(other.api_key) as eve:
        assert (await eve.get("/v1/executions/claimable")).json()["executions"] == []
        assert (await claim(eve, execution_id)).status_code == 404
        assert (
            await eve.post(f"/v1/executions/{execution_id}/heartbeat", json={})
        ).status_code == 404
        none = await eve.post("/v1/executions/claim", json={"worker_id": "e"})
        assert none.status_code == 409
        assert (await eve.get("/v1/workers")).json()["total"] == 0
        assert (await eve.delete("/v1/workers/mine")).status_code == 404


async def test_a_claim_survives_a_restart_and_still_expires(
    settings: Settings, clock: ManualClock, deliverer: FakeDeliverer, user: NewKey,
    lite: CueApiLite,
) -> None:  # fmt: skip
    async with lite.client(user.api_key) as api:
        execution_id = await fire(api, await worker_cue(api))
        await claim(api, execution_id, "w1")
    await lite.aclose()
    again = CueApiLite(settings, clock=clock, deliverer=deliverer)
    await again.start()
    try:
        clock.advance(LEASE_S)
        await again.settle()
        async with again.client(user.api_key) as api:
            assert (await execution(api, execution_id))["status"] == "pending"
    finally:
        await again.aclose()
