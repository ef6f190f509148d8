"""Verification, late evidence and replay (E10, E11, E13, E14)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cueapi_lite import CueApiLite, ManualClock

from .conftest import FakeDeliverer, status, webhook_cue


async def delivered(api: httpx.AsyncClient, lite: CueApiLite, **fields: Any) -> dict[str, Any]:
    cue = (await api.post("/v1/cues", json=webhook_cue(**fields))).json()
    execution_id = (await api.post(f"/v1/cues/{cue['id']}/fire")).json()["id"]
    await lite.settle()
    return dict((await api.get(f"/v1/executions/{execution_id}")).json())


async def report(api: httpx.AsyncClient, execution_id: str, **body: Any) -> httpx.Response:
    return await api.post(f"/v1/executions/{execution_id}/outcome", json=body)


async def test_verify_with_an_empty_body_means_valid(
    api: httpx.AsyncClient, lite: CueApiLite
) -> None:
    execution = await delivered(api, lite, verification={"mode": "manual"})
    await report(api, execution["id"], success=True)
    response = await api.post(f"/v1/executions/{execution['id']}/verify", json={})
    assert response.status_code == 200
    assert response.json() == {
        "execution_id": execution["id"], "outcome_state": "verified_success", "valid": True,
        "reason": None,
    }  # fmt: skip
    again = await api.post(f"/v1/executions/{execution['id']}/verify", json={})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_state"


async def test_verify_invalid_keeps_the_reason_and_raises_an_alert(
    api: httpx.AsyncClient, lite: CueApiLite
) -> None:
    execution = await delivered(api, lite)
    await report(api, execution["id"], success=True)
    response = await api.post(
        f"/v1/executions/{execution['id']}/verify", json={"valid": False, "reason": "wrong file"}
    )
    assert response.json()["outcome_state"] == "verification_failed"
    stored = (await api.get(f"/v1/executions/{execution['id']}")).json()
    assert stored["outcome_state"] == "verification_failed"
    assert stored["verification_reason"] == "wrong file"
    assert stored["outcome_success"] is True
    alerts = (await api.get("/v1/alerts")).json()["alerts"]
    assert [(a["alert_type"], a["execution_id"]) for a in alerts] == [
        ("verification_failed", execution["id"])
    ]


async def test_verify_needs_a_reported_outcome(api: httpx.AsyncClient, lite: CueApiLite) -> None:
    execution = await delivered(api, lite)
    response = await api.post(f"/v1/executions/{execution['id']}/verify", json={})
    assert (response.status_code, response.json()["error"]["code"]) == (409, "invalid_state")
    bad = await api.post(f"/v1/executions/{execution['id']}/verify", json={"valid": "no"})
    assert bad.status_code == 422


async def test_verification_pending_needs_an_outcome(
    api: httpx.AsyncClient, lite: CueApiLite
) -> None:
    execution = await delivered(api, lite)
    url = f"/v1/executions/{execution['id']}/verification-pending"
    early = await api.post(url, json={})
    assert (early.status_code, early.json()["error"]["code"]) == (409, "no_outcome")
    await report(api, execution["id"], success=True)
    response = await api.post(url, json={})
    assert response.json() == {
        "execution_id": execution["id"], "outcome_state": "verification_pending"
    }  # fmt: skip
    verified = await api.post(f"/v1/executions/{execution['id']}/verify", json={})
    assert verified.json()["outcome_state"] == "verified_success"


async def test_evidence_merges_and_can_repair_a_failed_verification(
    api: httpx.AsyncClient, lite: CueApiLite
) -> None:
    execution = await delivered(api, lite, verification={"mode": "require_external_id"})
    url = f"/v1/executions/{execution['id']}/evidence"
    early = await api.patch(url, json={"summary": "x"})
    assert (early.status_code, early.json()["error"]["code"]) == (409, "no_outcome")
    first = await report(api, execution["id"], success=True, summary="one",
                         artifacts=["a"], metadata={"k": 1, "keep": True})  # fmt: skip
    assert first.json()["outcome_state"] == "verification_failed"
    response = await api.patch(
        url, json={"external_id": "ext-1", "summary": "two", "artifacts": ["b"],
                   "metadata": {"k": 2}},
    )  # fmt: skip
    assert response.status_code == 200
    assert response.json() == {
        "execution_id": execution["id"], "outcome_state": "verified_success",
        "evidence_updated": True,
    }  # fmt: skip
    outcome = (await api.get(f"/v1/executions/{execution['id']}")).json()["outcome"]
    assert outcome["external_id"] == "ext-1"
    assert outcome["summary"] == "two"
    assert outcome["artifacts"] == ["a", "b"]
    assert outcome["metadata"] == {"k": 2, "keep": True}
    assert outcome["success"] is True


@pytest.mark.parametrize(
    "body",
    [{}, {"summary": "s" * 501}, {"result_url": "ftp://x"}, {"artifacts": ["x"] * 100},
     {"metadata": {"big": "m" * 10_300}}],
)  # fmt: skip
async def test_bad_evidence_is_refused_and_changes_nothing(
    api: httpx.AsyncClient, lite: CueApiLite, body: dict[str, Any]
) -> None:
    execution = await delivered(api, lite)
    await report(api, execution["id"], success=True, artifacts=["first"], metadata={"a": "b"})
    response = await api.patch(f"/v1/executions/{execution['id']}/evidence", json=body)
    assert response.status_code == 422
    outcome = (await api.get(f"/v1/executions/{execution['id']}")).json()["outcome"]
    assert (outcome["artifacts"], outcome["metadata"]) == (["first"], {"a": "b"})


async def test_replay_runs_a_finished_execution_again_with_its_payload(
    api: httpx.AsyncClient, lite: CueApiLite, deliverer: FakeDeliverer
) -> None:
    cue = (await api.post("/v1/cues", json=webhook_cue(payload={"v": 1}))).json()
    fired = (await api.post(f"/v1/cues/{cue['id']}/fire",
                            json={"payload_override": {"v": 2}})).json()  # fmt: skip
    await lite.settle()
    response = await api.post(f"/v1/executions/{fired['id']}/replay")
    assert response.status_code == 200
    replay = response.json()
    assert replay["id"] == replay["execution_id"] != fired["id"]
    assert (replay["status"], replay["triggered_by"], replay["replayed_from"]) == (
        "pending", "replay", fired["id"],
    )  # fmt: skip
    await lite.settle()
    stored = (await api.get(f"/v1/executions/{replay['id']}")).json()
    assert stored["status"] == "success"
    assert stored["payload"] == {"v": 2}  # the original execution's payload
    assert len(deliverer.requests) == 2


async def test_replay_of_an_execution_in_flight_conflicts(
    api: httpx.AsyncClient, lite: CueApiLite, deliverer: FakeDeliverer, clock: ManualClock
) -> None:
    deliverer.answer(status(503))
    execution = await delivered(api, lite)
    assert execution["status"] == "retrying"
    response = await api.post(f"/v1/executions/{execution['id']}/replay")
    assert (response.status_code, response.json()["error"]["code"]) == (409, "execution_in_flight")
    worker = (await api.post("/v1/cues", json={
        "name": "w", "schedule": {"type": "recurring", "cron": "0 0 1 1 *"},
        "transport": "worker", "payload": {"task": "t"}})).json()  # fmt: skip
    pending = (await api.post(f"/v1/cues/{worker['id']}/fire")).json()["id"]
    assert (await api.post(f"/v1/executions/{pending}/replay")).status_code == 409
