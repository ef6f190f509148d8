"""The cues API (E1-E6) as the official clients call it, including its quirks."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from cueapi_lite import CueApiLite, ManualClock, models
from cueapi_lite.models import iso, new_cue_id

from .conftest import webhook_cue
from .helpers import ms


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(ms("2026-06-01T08:00:00+00:00"))


async def create(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await api.post("/v1/cues", json=webhook_cue(**fields))
    assert response.status_code == 201, response.text
    return dict(response.json())


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


async def test_create_returns_the_complete_cue_with_defaults(api: httpx.AsyncClient) -> None:
    cue = await create(api)
    assert cue["id"].startswith("cue_")
    assert len(cue["id"]) == 16
    assert cue["status"] == "active"
    assert cue["transport"] == "webhook"
    assert cue["next_run"] == "2026-06-01T09:00:00+00:00"
    assert cue["retry"] == {"max_attempts": 3, "backoff_minutes": [1, 5, 15]}
    assert cue["on_failure"] == {"email": True, "webhook": None, "pause": False}
    assert cue["delivery"] == {"timeout_seconds": 30, "outcome_deadline_seconds": 300}
    assert cue["alerts"] == {"consecutive_failures": 3, "missed_window_multiplier": 2}
    assert cue["catch_up"] == "run_once_if_missed"
    assert cue["verification"] == {"mode": "none"}
    assert cue["callback"] == {"url": "http://127.0.0.1:9999/hook", "method": "POST", "headers": {}}
    assert cue["run_count"] == 0
    assert cue["fired_count"] == 0


async def test_cron_is_evaluated_in_the_cue_time_zone(api: httpx.AsyncClient) -> None:
    cue = await create(
        api, schedule={"type": "recurring", "cron": "0 9 * * *", "timezone": "America/New_York"}
    )
    assert cue["next_run"] == "2026-06-01T13:00:00+00:00"  # 09:00 EDT, rendered in UTC


async def test_flat_body_of_mcp_clients_is_accepted(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/cues",
        json={
            "name": "flat",
            "cron": "*/10 * * * *",
            "timezone": "Europe/Paris",
            "callback": "http://127.0.0.1:9999/flat",
            "callback_method": "put",
            "payload": {"a": 1},
        },
    )
    assert response.status_code == 201, response.text
    cue = response.json()
    assert cue["schedule"] == {
        "type": "recurring", "cron": "*/10 * * * *", "at": None, "timezone": "Europe/Paris"
    }  # fmt: skip
    assert cue["callback"]["url"] == "http://127.0.0.1:9999/flat"
    assert cue["callback"]["method"] == "PUT"


async def test_once_cue_accepts_naive_offset_and_z_times(api: httpx.AsyncClient) -> None:
    naive = await create(
        api, name="naive",
        schedule={"type": "once", "at": "2026-06-01 20:00:00", "timezone": "Asia/Tokyo"},
    )  # fmt: skip
    assert naive["schedule"]["at"] == "2026-06-01T11:00:00+00:00"
    offset = await create(
        api, name="offset", schedule={"type": "once", "at": "2026-06-01T10:00:00.5+02:00"}
    )
    assert offset["schedule"]["at"] == "2026-06-01T08:00:00.500000+00:00"
    zulu = await create(api, name="zulu", schedule={"type": "once", "at": "2026-06-02T00:00:00Z"})
    assert zulu["next_run"] == "2026-06-02T00:00:00+00:00"


async def test_once_cue_at_now_is_accepted_but_older_is_refused(api: httpx.AsyncClient) -> None:
    recent = await create(api, name="now", schedule={"type": "once", "at": "2026-06-01T07:59:10Z"})
    assert recent["status"] == "active"
    response = await api.post(
        "/v1/cues",
        json=webhook_cue(name="old", schedule={"type": "once", "at": "2026-06-01T07:58:00Z"}),
    )
    assert response.status_code == 400
    assert error_code(response) == "invalid_schedule"


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"schedule": {"type": "recurring", "cron": "99 * * * *"}}, 400, "invalid_schedule"),
        ({"schedule": {"type": "recurring"}}, 400, "invalid_schedule"),
        ({"schedule": {"type": "once"}}, 400, "invalid_schedule"),
        ({"schedule": {"type": "once", "at": "tomorrow"}}, 400, "invalid_schedule"),
        ({"schedule": {"type": "weekly", "cron": "* * * * *"}}, 400, "invalid_schedule"),
        (
            {"schedule": {"type": "recurring", "cron": "* * * * *", "timezone": "Nowhere/City"}},
            422,
            "invalid_timezone",
        ),
        ({"callback": {"url": "ftp://example.com/x"}}, 400, "invalid_callback_url"),
        ({"callback": {"url": "http://169.254.169.254/latest"}}, 400, "invalid_callback_url"),
        ({"callback": {"url": "http://[::ffff:169.254.169.254]/"}}, 400, "invalid_callback_url"),
        ({"callback": {"url": "http://user:pw@127.0.0.1/x"}}, 400, "invalid_callback_url"),
        ({"callback": {"url": "http://metadata.google.internal/"}}, 400, "invalid_callback_url"),
        ({"callback": {"url": "http://0.0.0.0:80/"}}, 400, "invalid_callback_url"),
        ({"callback": {"method": "POST"}}, 422, "validation_error"),
        ({"callback": {"url": "http://127.0.0.1/x", "method": "DELETE"}}, 422, "validation_error"),
        (
            {"callback": {"url": "http://127.0.0.1/x", "headers": {"X-CueAPI-Signature": "x"}}},
            422,
            "validation_error",
        ),
        ({"callback": {"url": "http://127.0.0.1/x", "headers": {"A": 1}}}, 422, "validation_error"),
        ({"payload": {"blob": "x" * (1024 * 1024 + 1)}}, 400, "invalid_payload_size"),
        ({"payload": [1, 2]}, 422, "validation_error"),
        ({"name": ""}, 422, "validation_error"),
        ({"name": "n" * 256}, 422, "validation_error"),
        ({"transport": "carrier-pigeon"}, 422, "validation_error"),
        ({"retry": {"max_attempts": 11}}, 422, "validation_error"),
        ({"retry": {"backoff_minutes": [1.5]}}, 422, "validation_error"),
        ({"retry": {"max_attempts": True}}, 422, "validation_error"),
        ({"delivery": {"timeout_seconds": 0}}, 422, "validation_error"),
        ({"alerts": {"consecutive_failures": 101}}, 422, "validation_error"),
        ({"catch_up": "sometimes"}, 422, "validation_error"),
        ({"verification": {"mode": "vibes"}}, 422, "validation_error"),
        ({"on_failure": {"pause": "yes"}}, 422, "validation_error"),
        ({"description": "d" * 2001}, 422, "validation_error"),
    ],
)
async def test_bad_input_gets_the_documented_error(
    api: httpx.AsyncClient, fields: dict[str, Any], status: int, code: str
) -> None:
    response = await api.post("/v1/cues", json=webhook_cue(**fields))
    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert response.json()["detail"]["error"]["message"]
    listed = (await api.get("/v1/cues")).json()
    assert listed["total"] == 0  # nothing half-created


async def test_missing_name_is_a_validation_error(api: httpx.AsyncClient) -> None:
    body = webhook_cue()
    del body["name"]
    response = await api.post("/v1/cues", json=body)
    assert response.status_code == 422
    assert "name" in response.json()["error"]["message"]


async def test_duplicate_name_conflicts(api: httpx.AsyncClient) -> None:
    await create(api)
    response = await api.post("/v1/cues", json=webhook_cue())
    assert response.status_code == 409
    assert error_code(response) == "duplicate_cue_name"


async def test_worker_cue_needs_no_callback_and_renders_an_empty_one(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post(
        "/v1/cues",
        json={"name": "w", "schedule": {"type": "recurring", "cron": "* * * * *"},
              "transport": "worker", "payload": {"task": "sync"}},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.json()["callback"] == {"url": None, "method": "POST", "headers": {}}


async def test_list_pages_newest_first_and_filters_by_status(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    ids = []
    for n in range(5):
        ids.append((await create(api, name=f"cue-{n}"))["id"])
        clock.advance(1)
    await api.patch(f"/v1/cues/{ids[1]}", json={"status": "paused"})
    page = (await api.get("/v1/cues", params={"limit": 2, "offset": 1})).json()
    assert [c["id"] for c in page["cues"]] == [ids[3], ids[2]]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 1)
    paused = (await api.get("/v1/cues", params={"status": "paused"})).json()
    assert [c["id"] for c in paused["cues"]] == [ids[1]]
    assert (await api.get("/v1/cues", params={"status": "bogus"})).json()["total"] == 0
    clamped = (await api.get("/v1/cues", params={"limit": 1000})).json()
    assert clamped["limit"] == 100
    bad = await api.get("/v1/cues", params={"limit": "ten"})
    assert bad.status_code == 422


async def test_patch_keeps_what_was_not_sent(api: httpx.AsyncClient) -> None:
    cue = await create(
        api,
        schedule={"type": "recurring", "cron": "0 9 * * *", "timezone": "Europe/Berlin"},
        callback={"url": "http://127.0.0.1:9999/a", "method": "PUT", "headers": {"X-Team": "a"}},
        retry={"max_attempts": 5, "backoff_minutes": [2]},
        description="keep me",
    )
    # The SDK's update(cron=...) sends a schedule without timezone, callback as {url}.
    response = await api.patch(
        f"/v1/cues/{cue['id']}",
        json={"schedule": {"type": "recurring", "cron": "0 10 * * *"},
              "callback": {"url": "http://127.0.0.1:9999/b"}},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["schedule"]["timezone"] == "Europe/Berlin"
    assert updated["schedule"]["cron"] == "0 10 * * *"
    # 10:00 in Berlin (CEST) is 08:00Z, which is exactly now: the next one is tomorrow.
    assert updated["next_run"] == "2026-06-02T08:00:00+00:00"
    assert updated["callback"] == {
        "url": "http://127.0.0.1:9999/b", "method": "PUT", "headers": {"X-Team": "a"}
    }  # fmt: skip
    assert updated["retry"] == {"max_attempts": 5, "backoff_minutes": [2]}
    assert updated["description"] == "keep me"
    assert updated["name"] == cue["name"]


async def test_empty_patch_is_a_no_op(api: httpx.AsyncClient) -> None:
    cue = await create(api)
    response = await api.patch(f"/v1/cues/{cue['id']}", json={})
    assert response.status_code == 200
    assert {k: v for k, v in response.json().items() if k != "updated_at"} == {
        k: v for k, v in cue.items() if k != "updated_at"
    }


async def test_timezone_alone_changes_only_the_zone(api: httpx.AsyncClient) -> None:
    cue = await create(api)
    response = await api.patch(
        f"/v1/cues/{cue['id']}", json={"schedule": {"timezone": "Asia/Tokyo"}}
    )
    assert response.json()["schedule"] == {
        "type": "recurring", "cron": "0 9 * * *", "at": None, "timezone": "Asia/Tokyo"
    }  # fmt: skip
    assert response.json()["next_run"] == "2026-06-02T00:00:00+00:00"


async def test_switching_schedule_type_clears_the_other_field(api: httpx.AsyncClient) -> None:
    cue = await create(api)
    response = await api.patch(
        f"/v1/cues/{cue['id']}", json={"schedule": {"type": "once", "at": "2026-06-03T00:00:00Z"}}
    )
    assert response.json()["schedule"] == {
        "type": "once", "cron": None, "at": "2026-06-03T00:00:00+00:00", "timezone": "UTC"
    }  # fmt: skip


async def test_pause_clears_next_run_and_resume_recomputes_it_from_now(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    cue = await create(api)
    paused = (await api.patch(f"/v1/cues/{cue['id']}", json={"status": "paused"})).json()
    assert paused["status"] == "paused"
    assert paused["next_run"] is None
    clock.advance(2 * 3600)  # past 09:00: resuming must not fire the skipped occurrence
    resumed = (await api.patch(f"/v1/cues/{cue['id']}", json={"status": "active"})).json()
    assert resumed["next_run"] == "2026-06-02T09:00:00+00:00"
    bad = await api.patch(f"/v1/cues/{cue['id']}", json={"status": "completed"})
    assert bad.status_code == 422


async def test_resuming_a_once_cue_whose_time_passed_needs_a_new_at(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    cue = await create(api, schedule={"type": "once", "at": "2026-06-01T08:30:00Z"})
    await api.patch(f"/v1/cues/{cue['id']}", json={"status": "paused"})
    clock.advance(3600)
    refused = await api.patch(f"/v1/cues/{cue['id']}", json={"status": "active"})
    assert refused.status_code == 400
    assert error_code(refused) == "invalid_schedule"
    assert (await api.get(f"/v1/cues/{cue['id']}")).json()["status"] == "paused"
    accepted = await api.patch(
        f"/v1/cues/{cue['id']}",
        json={"status": "active", "schedule": {"type": "once", "at": "2026-06-01T10:00:00Z"}},
    )
    assert accepted.status_code == 200
    assert accepted.json()["next_run"] == "2026-06-01T10:00:00+00:00"


async def test_rename_to_a_taken_name_conflicts_and_changes_nothing(api: httpx.AsyncClient) -> None:
    first = await create(api, name="first")
    await create(api, name="second")
    response = await api.patch(
        f"/v1/cues/{first['id']}", json={"name": "second", "description": "x"}
    )
    assert response.status_code == 409
    assert (await api.get(f"/v1/cues/{first['id']}")).json()["description"] is None


async def test_delete_answers_204_and_the_cue_and_its_executions_are_gone(
    api: httpx.AsyncClient,
) -> None:
    cue = await create(api)
    fired = (await api.post(f"/v1/cues/{cue['id']}/fire")).json()
    response = await api.delete(f"/v1/cues/{cue['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert (await api.get(f"/v1/cues/{cue['id']}")).status_code == 404
    assert (await api.get(f"/v1/executions/{fired['id']}")).status_code == 404
    again = await api.delete(f"/v1/cues/{cue['id']}")
    assert again.status_code == 404
    assert error_code(again) == "cue_not_found"


async def test_fire_merges_or_replaces_the_payload(
    api: httpx.AsyncClient, lite: CueApiLite
) -> None:
    cue = await create(api, payload={"task": "report", "lang": "en"})
    merged = await api.post(
        f"/v1/cues/{cue['id']}/fire", json={"payload_override": {"lang": "de", "x": 1}}
    )
    assert merged.status_code == 200
    data = merged.json()
    assert data["id"] == data["execution_id"]
    assert data["triggered_by"] == "manual_fire"
    assert data["status"] == "pending"
    assert data["payload"] == {"task": "report", "lang": "de", "x": 1}
    replaced = await api.post(
        f"/v1/cues/{cue['id']}/fire",
        json={"payload_override": {"only": True}, "merge_strategy": "replace"},
    )
    assert replaced.json()["payload"] == {"only": True}
    bad = await api.post(f"/v1/cues/{cue['id']}/fire", json={"payload_override": [1]})
    assert bad.status_code == 422
    await lite.settle()
    detail = (await api.get(f"/v1/cues/{cue['id']}")).json()
    assert detail["fired_count"] == 2
    assert detail["execution_total"] == 2


async def test_fire_works_on_a_paused_cue(api: httpx.AsyncClient, lite: CueApiLite) -> None:
    cue = await create(api)
    await api.patch(f"/v1/cues/{cue['id']}", json={"status": "paused"})
    fired = await api.post(f"/v1/cues/{cue['id']}/fire", content=b"")
    assert fired.status_code == 200
    await lite.settle()
    execution = (await api.get(f"/v1/executions/{fired.json()['id']}")).json()
    assert execution["status"] == "success"


async def test_get_shows_recent_executions_newest_first(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    cue = await create(api)
    for _ in range(12):
        await api.post(f"/v1/cues/{cue['id']}/fire")
        clock.advance(1)
    await lite.settle()
    detail = (await api.get(f"/v1/cues/{cue['id']}")).json()
    assert detail["execution_total"] == 12
    assert (detail["execution_limit"], detail["execution_offset"]) == (10, 0)
    times = [e["scheduled_for"] for e in detail["executions"]]
    assert len(times) == 10
    assert times == sorted(times, reverse=True)
    assert times[0] == iso(ms("2026-06-01T08:00:11+00:00"))


async def test_another_users_cue_is_not_found_everywhere(
    lite: CueApiLite, api: httpx.AsyncClient
) -> None:
    cue = await create(api)
    other = await lite.accounts.mint_key("bob@example.com")
    async with lite.client(other.api_key) as bob:
        for method, path in [
            ("GET", f"/v1/cues/{cue['id']}"),
            ("PATCH", f"/v1/cues/{cue['id']}"),
            ("DELETE", f"/v1/cues/{cue['id']}"),
            ("POST", f"/v1/cues/{cue['id']}/fire"),
        ]:
            response = await bob.request(method, path, json={} if method != "GET" else None)
            assert response.status_code == 404, (method, path)
            assert error_code(response) == "cue_not_found"
        assert (await bob.get("/v1/cues")).json()["total"] == 0
        # The same name is free for another user.
        assert (await bob.post("/v1/cues", json=webhook_cue())).status_code == 201
    assert (await api.get(f"/v1/cues/{cue['id']}")).status_code == 200


async def test_requests_without_a_valid_key_are_refused(lite: CueApiLite) -> None:
    async with lite.client() as anonymous:
        missing = await anonymous.get("/v1/cues")
        assert missing.status_code == 401
        assert error_code(missing) == "invalid_api_key"
        wrong = await anonymous.get(
            "/v1/cues", headers={"Authorization": "Bearer cue_sk_" + "0" * 32}
        )
        assert wrong.status_code == 401
        basic = await anonymous.get("/v1/cues", headers={"Authorization": "Basic abc"})
        assert basic.status_code == 401


def test_cue_ids_are_well_formed_and_sort_in_the_order_they_were_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many ids in one millisecond, then the wall clock set back a minute: every id is
    `cue_` + 12 of [a-z0-9], none repeats, and each sorts after the one made before it."""
    made = [new_cue_id() for _ in range(3000)]
    now_ns = time.time_ns()
    monkeypatch.setattr(models.time, "time_ns", lambda: now_ns)
    made += [new_cue_id() for _ in range(3000)]
    monkeypatch.setattr(models.time, "time_ns", lambda: now_ns - 60 * 10**9)
    made += [new_cue_id() for _ in range(3000)]
    assert all(re.fullmatch(r"cue_[a-z0-9]{12}", cue_id) for cue_id in made)
    assert made == sorted(made)
    assert len(set(made)) == len(made)


async def test_cues_made_over_the_api_get_ids_in_the_order_they_were_made(
    api: httpx.AsyncClient,
) -> None:
    ids = []
    for n in range(5):
        created = await api.post("/v1/cues", json=webhook_cue(name=f"c{n}"))
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    assert ids == sorted(ids)
    listed = (await api.get("/v1/cues")).json()["cues"]
    assert [c["id"] for c in listed] == ids[::-1]
