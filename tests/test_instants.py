"""Instants the API cannot write are refused before anything is stored, and a row that
holds one anyway (from an older version) still renders in every list and get."""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from cueapi_lite import CueApiLite, Settings

from .conftest import webhook_cue

BEYOND_9999 = [
    {"type": "once", "at": "9999-12-31T23:00:00-12:00", "timezone": "UTC"},
    {"type": "once", "at": "9999-12-31T23:00:00", "timezone": "Etc/GMT+12"},
    {"type": "once", "at": "0001-01-01T00:30:00+01:00", "timezone": "UTC"},
]


@pytest.mark.parametrize("schedule", BEYOND_9999)
async def test_a_once_cue_beyond_year_9999_in_utc_is_refused_and_not_stored(
    api: httpx.AsyncClient, schedule: dict[str, str]
) -> None:
    response = await api.post("/v1/cues", json=webhook_cue(schedule=schedule))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_schedule"
    assert response.json()["error"]["details"][0]["field"] == "schedule.at"
    listed = await api.get("/v1/cues")
    assert listed.status_code == 200
    assert listed.json()["cues"] == []


@pytest.mark.parametrize("schedule", BEYOND_9999[:2])
async def test_patching_a_cue_beyond_year_9999_is_refused_and_changes_nothing(
    api: httpx.AsyncClient, schedule: dict[str, str]
) -> None:
    cue = (await api.post("/v1/cues", json=webhook_cue())).json()
    response = await api.patch(f"/v1/cues/{cue['id']}", json={"schedule": schedule})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_schedule"
    after = await api.get(f"/v1/cues/{cue['id']}")
    assert after.status_code == 200
    assert after.json()["schedule"] == cue["schedule"]


async def test_the_last_instant_of_year_9999_is_accepted(api: httpx.AsyncClient) -> None:
    schedule = {"type": "once", "at": "9999-12-31T23:59:59+00:00", "timezone": "UTC"}
    response = await api.post("/v1/cues", json=webhook_cue(schedule=schedule))
    assert response.status_code == 201
    assert response.json()["next_run"] == "9999-12-31T23:59:59+00:00"


@pytest.mark.sqlite_file
async def test_a_stored_unrenderable_instant_does_not_break_lists_or_gets(
    api: httpx.AsyncClient, lite: CueApiLite, settings: Settings
) -> None:
    good = (await api.post("/v1/cues", json=webhook_cue(name="good"))).json()
    bad = (await api.post("/v1/cues", json=webhook_cue(name="bad"))).json()
    fired = (await api.post(f"/v1/cues/{bad['id']}/fire", json={})).json()
    await lite.settle()
    with sqlite3.connect(settings.db) as db:  # as an older version could have left it
        db.execute(
            "UPDATE cues SET schedule_type = 'once', cron = NULL, at_ms = ?,"
            " next_fire_at_ms = ? WHERE id = ?",
            (253402344000000, 10**18, bad["id"]),
        )
        db.execute(
            "UPDATE executions SET scheduled_for_ms = ?, created_at_ms = ? WHERE id = ?",
            (10**18, -(10**18), fired["id"]),
        )
    listed = await api.get("/v1/cues")
    assert listed.status_code == 200
    assert {c["name"] for c in listed.json()["cues"]} == {"good", "bad"}
    shown = (await api.get(f"/v1/cues/{bad['id']}")).json()
    assert shown["schedule"]["at"] == "9999-12-31T23:59:59.999000+00:00"
    assert (await api.get(f"/v1/cues/{good['id']}")).status_code == 200
    executions = await api.get("/v1/executions")
    assert executions.status_code == 200
    [execution] = executions.json()["executions"]
    assert execution["scheduled_for"] == "9999-12-31T23:59:59.999000+00:00"
    assert execution["created_at"] == "0001-01-01T00:00:00+00:00"
    assert (await api.get(f"/v1/executions/{fired['id']}")).status_code == 200
