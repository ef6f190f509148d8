"""The executions API (E7-E9): listing, reading and write-once outcome reports."""

from __future__ import annotations

import os
import uuid
from typing import Any

import httpx
import pytest

from cueapi_lite import CueApiLite, ManualClock
from cueapi_lite.models import new_cue_id, new_execution_id

from .conftest import webhook_cue


async def fired(api: httpx.AsyncClient, lite: CueApiLite, **fields: Any) -> dict[str, Any]:
    """A cue fired once by hand and delivered; returns the execution."""
    cue = (await api.post("/v1/cues", json=webhook_cue(**fields))).json()
    execution = (await api.post(f"/v1/cues/{cue['id']}/fire")).json()
    await lite.settle()
    return dict((await api.get(f"/v1/executions/{execution['id']}")).json())


async def test_execution_has_every_documented_field(
    api: httpx.AsyncClient, lite: CueApiLite
) -> None:
    execution = await fired(api, lite)
    for field in (
        "id", "cue_id", "scheduled_for", "status", "triggered_by", "attempts", "http_status",
        "error_message", "response_body", "next_retry", "started_at", "delivered_at",
        "last_attempt_at", "claimed_by_worker", "claimed_at", "last_heartbeat_at",
        "lease_expires_at", "payload", "outcome", "outcome_state", "outcome_success",
        "replayed_from", "created_at", "updated_at",
    ):  # fmt: skip
        assert field in execution, field
    assert execution["scheduled_for"].endswith("+00:00")


async def test_outcome_is_write_once(api: httpx.AsyncClient, lite: CueApiLite) -> None:
    execution = await fired(api, lite)
    url = f"/v1/executions/{execution['id']}/outcome"
    first = await api.post(url, json={"success": True, "result": "done", "summary": "ok"})
    assert first.status_code == 200
    assert first.json() == {
        "execution_id": execution["id"], "outcome_recorded": True,
        "outcome_state": "reported_success", "reason": None,
    }  # fmt: skip
    second = await api.post(url, json={"success": False, "error": "changed my mind"})
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "outcome_already_recorded"
    stored = (await api.get(f"/v1/executions/{execution['id']}")).json()
    assert stored["outcome"]["success"] is True
    assert stored["outcome"]["result"] == "done"
    assert stored["outcome"]["recorded_at"] is not None


async def test_every_evidence_field_is_stored(api: httpx.AsyncClient, lite: CueApiLite) -> None:
    execution = await fired(api, lite)
    evidence = {
        "success": True, "result": "r", "external_id": "ext-1",
        "result_url": "https://example.com/r/1", "result_ref": "ref", "result_type": "email",
        "summary": "s", "metadata": {"k": [1, 2]}, "artifacts": [{"name": "a.txt"}],
    }  # fmt: skip
    response = await api.post(f"/v1/executions/{execution['id']}/outcome", json=evidence)
    assert response.status_code == 200
    outcome = (await api.get(f"/v1/executions/{execution['id']}")).json()["outcome"]
    for key, value in evidence.items():
        assert outcome[key] == value, key


@pytest.mark.parametrize(
    "body",
    [
        {"success": "true"},
        {},
        {"success": True, "result": "r" * 8001},
        {"success": False, "error": "e" * 8001},
        {"success": True, "external_id": "x" * 501},
        {"success": True, "summary": "s" * 501},
        {"success": True, "result_type": "t" * 101},
        {"success": True, "result_url": "not a url"},
        {"success": True, "metadata": "text"},
        {"success": True, "metadata": {"blob": "m" * 11_000}},
        {"success": True, "artifacts": [{}] * 101},
        {"success": True, "artifacts": {"not": "a list"}},
    ],
)
async def test_bad_outcomes_get_a_clear_422_and_record_nothing(
    api: httpx.AsyncClient, lite: CueApiLite, body: dict[str, Any]
) -> None:
    execution = await fired(api, lite)
    response = await api.post(f"/v1/executions/{execution['id']}/outcome", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert (await api.get(f"/v1/executions/{execution['id']}")).json()["outcome"] is None


async def test_limits_are_inclusive(api: httpx.AsyncClient, lite: CueApiLite) -> None:
    execution = await fired(api, lite)
    body = {"success": True, "result": "r" * 8000, "external_id": "x" * 500, "summary": "s" * 500}
    response = await api.post(f"/v1/executions/{execution['id']}/outcome", json=body)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("mode", "report", "state"),
    [
        ("none", {"success": True}, "reported_success"),
        ("none", {"success": False}, "reported_failure"),
        ("manual", {"success": True}, "verification_pending"),
        ("require_external_id", {"success": True}, "verification_failed"),
        ("require_external_id", {"success": True, "external_id": "e"}, "verified_success"),
        (
            "require_result_url",
            {"success": True, "result_url": "https://x.io/1"},
            "verified_success",
        ),
        ("require_artifacts", {"success": True, "artifacts": []}, "verification_failed"),
        ("require_artifacts", {"success": True, "artifacts": ["a"]}, "verified_success"),
        ("require_artifacts", {"success": False}, "reported_failure"),
    ],
)
async def test_verification_mode_decides_the_outcome_state(
    api: httpx.AsyncClient, lite: CueApiLite, mode: str, report: dict[str, Any], state: str
) -> None:
    execution = await fired(api, lite, verification={"mode": mode})
    response = await api.post(f"/v1/executions/{execution['id']}/outcome", json=report)
    assert response.json()["outcome_state"] == state
    stored = (await api.get(f"/v1/executions/{execution['id']}")).json()
    assert stored["outcome_state"] == state
    assert stored["outcome_success"] is report["success"]


async def test_list_filters_and_pages(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    one = (await api.post("/v1/cues", json=webhook_cue(name="one"))).json()
    two = (await api.post("/v1/cues", json=webhook_cue(name="two"))).json()
    ids = []
    for cue in (one, two, one):
        ids.append((await api.post(f"/v1/cues/{cue['id']}/fire")).json()["id"])
        clock.advance(1)
    await lite.settle()
    await api.post(f"/v1/executions/{ids[0]}/outcome", json={"success": False})
    everything = (await api.get("/v1/executions")).json()
    assert [e["id"] for e in everything["executions"]] == ids[::-1]
    assert (everything["total"], everything["has_more"]) == (3, False)
    by_cue = (await api.get("/v1/executions", params={"cue_id": one["id"]})).json()
    assert {e["id"] for e in by_cue["executions"]} == {ids[0], ids[2]}
    failed = (await api.get("/v1/executions", params={"outcome_state": "reported_failure"})).json()
    assert [e["id"] for e in failed["executions"]] == [ids[0]]
    manual = (await api.get("/v1/executions", params={"triggered_by": "manual_fire"})).json()
    assert manual["total"] == 3
    assert (await api.get("/v1/executions", params={"status": "retrying"})).json()["total"] == 0
    page = (await api.get("/v1/executions", params={"limit": 1, "offset": 1})).json()
    assert [e["id"] for e in page["executions"]] == [ids[1]]
    assert page["has_more"] is True


async def test_other_users_executions_are_invisible(
    api: httpx.AsyncClient, lite: CueApiLite
) -> None:
    execution = await fired(api, lite)
    other = await lite.accounts.mint_key("mallory@example.com")
    async with lite.client(other.api_key) as mallory:
        got = await mallory.get(f"/v1/executions/{execution['id']}")
        assert got.status_code == 404
        assert got.json()["error"]["code"] == "execution_not_found"
        report = await mallory.post(
            f"/v1/executions/{execution['id']}/outcome", json={"success": True}
        )
        assert report.status_code == 404
        assert (await mallory.get("/v1/executions")).json()["total"] == 0
        assert (await mallory.get("/v1/executions", params={"cue_id": execution["cue_id"]})).json()[
            "total"
        ] == 0
    assert (await api.get(f"/v1/executions/{execution['id']}")).json()["outcome"] is None


async def test_unknown_execution_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/executions/00000000-0000-4000-8000-000000000000/outcome",
                              json={"success": True})  # fmt: skip
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "execution_not_found"


def test_execution_ids_are_distinct_random_uuids() -> None:
    """Ids come from a pool of system randomness (read 256 at a time): every one is a
    well-formed version 4 UUID, and none repeats across many pool refills."""
    ids = [new_execution_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert (str(parsed), parsed.version, parsed.variant) == (text, 4, uuid.RFC_4122)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_makes_ids_of_its_own() -> None:
    """A child forked with part of the parent's pool of random bytes left must not make
    the execution ids the parent makes next, nor the parent's next cue id."""
    new_execution_id()  # the pool now holds unused bytes
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        os.close(read)
        made = [new_execution_id() for _ in range(300)] + [new_cue_id()]
        os.write(write, "\n".join(made).encode())
        os._exit(0)
    os.close(write)
    parent = {new_execution_id() for _ in range(300)} | {new_cue_id()}
    os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        from_child = set(pipe.read().split("\n"))
    assert len(from_child) == 301
    assert not parent & from_child
