"""Input rules that used to leak: one payload limit wherever a payload enters, cron
expressions checked field by field with errors a person can act on, and only canonical
IANA zone names."""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.cron import CronError, check_expression

from .conftest import FakeDeliverer, webhook_cue

MIB = 1024 * 1024


async def test_a_fire_with_an_oversized_payload_override_is_refused_and_not_stored(
    api: httpx.AsyncClient,
) -> None:
    cue = (await api.post("/v1/cues", json=webhook_cue())).json()
    fired = await api.post(
        f"/v1/cues/{cue['id']}/fire", json={"payload_override": {"blob": "x" * (3 * MIB // 2)}}
    )
    assert fired.status_code == 400
    assert fired.json()["error"]["code"] == "invalid_payload_size"
    assert fired.json()["error"]["details"][0]["field"] == "payload_override"
    listed = (await api.get("/v1/executions", params={"cue_id": cue["id"]})).json()
    assert listed["executions"] == []


async def test_a_merge_that_grows_the_payload_past_the_limit_is_refused(
    api: httpx.AsyncClient,
) -> None:
    cue = (
        await api.post("/v1/cues", json=webhook_cue(payload={"a": "x" * (MIB * 6 // 10)}))
    ).json()
    override = {"payload_override": {"b": "y" * (MIB * 6 // 10)}}
    merged = await api.post(f"/v1/cues/{cue['id']}/fire", json=override)
    assert merged.status_code == 400
    assert merged.json()["error"]["code"] == "invalid_payload_size"
    replaced = await api.post(
        f"/v1/cues/{cue['id']}/fire", json={**override, "merge_strategy": "replace"}
    )
    assert replaced.status_code == 200


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 25 * * *", "hour 25 is out of range 0\u201323"),
        ("60 * * * *", "minute 60 is out of range 0\u201359"),
        ("0 0 0 * *", "day-of-month 0 is out of range 1\u201331"),
        ("0 0 * 13 *", "month 13 is out of range 1\u201312"),
        ("0 0 * * 8", "day-of-week 8 is out of range 0\u20137"),
        ("1-0 * * * *", "minute range 1-0 is reversed"),
        ("0 0 * dec-jan *", "month range dec-jan is reversed"),
        ("*/60 * * * *", "minute step 60 is out of range 1\u201359"),
        ("*/1000000 * * * *", "minute step 1000000 is out of range 1\u201359"),
        ("0 */0 * * *", "hour step 0 is out of range 1\u201323"),
        ("0 0 * * fry", "day-of-week 'fry' is not a number or a name (sun-sat)"),
        ("0 0 * foo *", "month 'foo' is not a number or a name (jan-dec)"),
        ("1,,2 * * * *", "minute has an empty list item"),
        ("0 0 1,32 * *", "day-of-month 32 is out of range 1\u201331"),
        ("0 0 L * *", "day-of-month 'L' is not a number"),
        ("0 9 * *", "expected 5 fields"),
    ],
)
async def test_an_invalid_cron_expression_says_which_field_and_why(
    api: httpx.AsyncClient, expression: str, message: str
) -> None:
    with pytest.raises(CronError) as refused:
        check_expression(expression)
    assert message in str(refused.value)
    schedule = {"type": "recurring", "cron": expression}
    created = await api.post("/v1/cues", json=webhook_cue(schedule=schedule))
    assert created.status_code == 400
    assert created.json()["error"]["code"] == "invalid_schedule"
    assert message in created.json()["error"]["message"]
    assert created.json()["error"]["details"][0]["field"] == "schedule.cron"
    cue = (await api.post("/v1/cues", json=webhook_cue(name="ok"))).json()
    patched = await api.patch(f"/v1/cues/{cue['id']}", json={"schedule": schedule})
    assert patched.status_code == 400
    assert message in patched.json()["error"]["message"]


@pytest.mark.parametrize(
    "expression", ["0 9 * * mon-fri", "*/15 * * * *", "5/20 1-5 * jan,jul 0,7", "@hourly"]
)
def test_valid_expressions_pass_the_field_check(expression: str) -> None:
    check_expression(expression)


@pytest.mark.parametrize(
    "zone", ["localtime", "posixrules", "Factory", "right/UTC", "posix/Europe/Berlin", "utc"]
)
async def test_only_canonical_iana_zone_names_are_accepted(
    api: httpx.AsyncClient, zone: str
) -> None:
    schedule = {"type": "recurring", "cron": "0 9 * * *", "timezone": zone}
    created = await api.post("/v1/cues", json=webhook_cue(schedule=schedule))
    assert created.status_code == 422
    assert created.json()["error"]["code"] == "invalid_timezone"
    cue = (await api.post("/v1/cues", json=webhook_cue(name="ok"))).json()
    patched = await api.patch(f"/v1/cues/{cue['id']}", json={"schedule": {"timezone": zone}})
    assert patched.status_code == 422


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/Los_Angeles", "US/Pacific", "UTC"])
async def test_iana_zone_names_and_their_links_are_accepted(
    api: httpx.AsyncClient, zone: str
) -> None:
    schedule = {"type": "recurring", "cron": "0 9 * * *", "timezone": zone}
    assert (await api.post("/v1/cues", json=webhook_cue(schedule=schedule))).status_code == 201


@pytest.mark.sqlite_file
async def test_a_stored_schedule_the_old_rules_accepted_still_fires_and_updates(
    settings: Settings, clock: ManualClock, deliverer: FakeDeliverer, lite: CueApiLite,
    api: httpx.AsyncClient,
) -> None:  # fmt: skip
    cue = (await api.post("/v1/cues", json=webhook_cue(name="old"))).json()
    await lite.aclose()
    with sqlite3.connect(settings.db) as db:
        db.execute(
            "UPDATE cues SET cron = '*/60 * * * *', timezone = 'posixrules' WHERE id = ?",
            (cue["id"],),
        )
    app = CueApiLite(settings, clock=clock, deliverer=deliverer)
    await app.start()
    try:
        key = await app.accounts.mint_key("alice@example.com")
        async with app.client(key.api_key) as client:
            assert (await client.get(f"/v1/cues/{cue['id']}")).status_code == 200
            renamed = await client.patch(f"/v1/cues/{cue['id']}", json={"name": "renamed"})
            assert renamed.status_code == 200
            assert renamed.json()["schedule"]["cron"] == "*/60 * * * *"
            clock.advance(24 * 3600)
            await app.settle()
            assert deliverer.requests
    finally:
        await app.aclose()
