"""Usage (E40) and plan limits (CONTRACT §2.4): the cue limit, the monthly execution
limit with its 24 h of grace for scheduled fires, on the manual clock."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.limits import Budget, month_bounds

from .conftest import FakeDeliverer, webhook_cue
from .helpers import ms


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(ms("2026-06-01T00:30:00+00:00"))


@pytest.fixture
def limit_settings() -> dict[str, Any]:
    return {}


@pytest.fixture
def settings(db_setting: str, limit_settings: dict[str, Any]) -> Settings:
    return Settings(db=db_setting, **limit_settings)


def code_of(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


async def create(api: httpx.AsyncClient, name: str, **fields: Any) -> httpx.Response:
    return await api.post("/v1/cues", json=webhook_cue(name=name, **fields))


def test_month_bounds_are_utc_calendar_months() -> None:
    assert month_bounds(ms("2026-06-15T12:00:00+00:00")) == (
        ms("2026-06-01T00:00:00+00:00"), ms("2026-07-01T00:00:00+00:00"))  # fmt: skip
    assert month_bounds(ms("2026-12-31T23:59:59+00:00"))[1] == ms("2027-01-01T00:00:00+00:00")


def test_budget_grace_starts_when_the_limit_is_reached() -> None:
    budget = Budget(limit=2, used=1, reached_at_ms=None)
    assert budget.admit(1, 1000)
    assert budget.reached_at_ms == 1000
    assert budget.admit(1, 1000 + 86_400_000 - 1)  # within 24 h: still runs
    assert not budget.admit(1, 1000 + 86_400_000)
    assert budget.used == 3


# --- usage ----------------------------------------------------------------------------------


async def test_usage_has_integer_counts_and_the_billing_period(api: httpx.AsyncClient) -> None:
    first = (await create(api, "a")).json()
    await create(api, "b")
    await api.patch(f"/v1/cues/{first['id']}", json={"status": "paused"})
    await api.post(f"/v1/cues/{first['id']}/fire")
    data = (await api.get("/v1/usage")).json()
    assert data["plan"] == "self-hosted"
    assert data["billing_period"] == {
        "start": "2026-06-01T00:00:00+00:00",
        "end": "2026-07-01T00:00:00+00:00",
        "days_remaining": 30,
    }
    assert data["cues"] == {"active": 1, "used": 2, "limit": 1_000_000_000,
                            "remaining": 999_999_998}  # fmt: skip
    assert data["executions"] == {"used": 1, "limit": 1_000_000_000, "remaining": 999_999_999,
                                  "percent_used": 0}  # fmt: skip
    assert data["rate_limit"] == {"limit": 6000, "requests_per_minute": 6000, "current_usage": 5}


# --- the cue limit --------------------------------------------------------------------------


@pytest.mark.parametrize("limit_settings", [{"cue_limit": 2}])
async def test_the_cue_limit_counts_active_and_paused_cues(api: httpx.AsyncClient) -> None:
    a = (await create(api, "a")).json()
    assert (await create(api, "b")).status_code == 201
    refused = await create(api, "c")
    assert refused.status_code == 403
    assert code_of(refused) == "cue_limit_exceeded"
    assert "2 active or paused cues" in refused.json()["detail"]["error"]["message"]
    await api.patch(f"/v1/cues/{a['id']}", json={"status": "paused"})
    assert (await create(api, "c")).status_code == 403
    await api.delete(f"/v1/cues/{a['id']}")
    assert (await create(api, "c")).status_code == 201
    usage = (await api.get("/v1/usage")).json()["cues"]
    assert usage == {"active": 2, "used": 2, "limit": 2, "remaining": 0}
    assert (await api.get("/v1/auth/me")).json()["active_cue_limit"] == 2


@pytest.mark.parametrize("limit_settings", [{"cue_limit": 3}])
async def test_concurrent_creates_cannot_pass_the_cue_limit(
    api: httpx.AsyncClient, lite: CueApiLite
) -> None:
    responses = await asyncio.gather(*(create(api, f"c{n}") for n in range(8)))
    assert sorted(r.status_code for r in responses) == [201] * 3 + [403] * 5
    assert (await api.get("/v1/cues")).json()["total"] == 3


@pytest.mark.parametrize("limit_settings", [{"cue_limit": 1}])
async def test_the_cue_limit_is_per_user(lite: CueApiLite, api: httpx.AsyncClient) -> None:
    assert (await create(api, "mine")).status_code == 201
    bob = await lite.accounts.mint_key("bob@example.com")
    async with lite.client(bob.api_key) as other:
        assert (await create(other, "his")).status_code == 201


@pytest.mark.parametrize("limit_settings", [{"cue_limit": 1}])
async def test_reviving_a_completed_cue_counts_against_the_limit(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    once = {"type": "once", "at": "2026-06-01T00:31:00Z", "timezone": "UTC"}
    cue = (await create(api, "once", schedule=once)).json()
    clock.advance(60)
    await lite.settle()
    assert (await api.get(f"/v1/cues/{cue['id']}")).json()["status"] == "completed"
    assert (await create(api, "other")).status_code == 201
    revived = await api.patch(
        f"/v1/cues/{cue['id']}",
        json={"status": "active", "schedule": {"type": "once", "at": "2026-06-02T00:00:00Z"}},
    )
    assert revived.status_code == 403
    assert code_of(revived) == "cue_limit_exceeded"


# --- the monthly execution limit -----------------------------------------------------------


@pytest.mark.parametrize("limit_settings", [{"monthly_execution_limit": 2}])
async def test_manual_fires_stop_at_the_limit_until_next_month(
    api: httpx.AsyncClient, clock: ManualClock
) -> None:
    cue = (await create(api, "a")).json()
    for _ in range(2):
        assert (await api.post(f"/v1/cues/{cue['id']}/fire")).status_code == 200
    refused = await api.post(f"/v1/cues/{cue['id']}/fire")
    assert refused.status_code == 403
    assert code_of(refused) == "execution_limit_exceeded"
    assert "2026-07-01" in refused.json()["error"]["message"]
    me = (await api.get("/v1/auth/me")).json()
    assert (me["executions_this_month"], me["monthly_execution_limit"]) == (2, 2)
    assert (await api.get("/v1/usage")).json()["executions"]["percent_used"] == 100
    clock.advance((ms("2026-07-01T00:00:00+00:00") - clock.now_ms()) / 1000)
    assert (await api.post(f"/v1/cues/{cue['id']}/fire")).status_code == 200


@pytest.mark.parametrize("limit_settings", [{"monthly_execution_limit": 1}])
async def test_replays_stop_at_the_limit_too(api: httpx.AsyncClient, lite: CueApiLite) -> None:
    cue = (await create(api, "a")).json()
    fired = (await api.post(f"/v1/cues/{cue['id']}/fire")).json()
    await lite.settle()
    refused = await api.post(f"/v1/executions/{fired['id']}/replay")
    assert refused.status_code == 403
    assert code_of(refused) == "execution_limit_exceeded"


async def advance(lite: CueApiLite, clock: ManualClock, seconds: float) -> None:
    """Move to an exact fire instant (the heap may hold other deadlines before it)."""
    clock.advance(seconds)
    await lite.settle()


@pytest.mark.parametrize("limit_settings", [{"monthly_execution_limit": 2}])
async def test_scheduled_fires_get_24_hours_of_grace_then_are_missed(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    cue = (await create(api, "hourly", schedule={"type": "recurring", "cron": "0 * * * *"})).json()
    await advance(lite, clock, 1800)  # 01:00
    for _ in range(25):  # 02:00 ... 02:00 the next day
        await advance(lite, clock, 3600)
    page = (await api.get("/v1/executions", params={"cue_id": cue["id"], "limit": 100})).json()
    by_time = {e["scheduled_for"]: e for e in page["executions"]}
    # The limit was reached at 02:00 on June 1; runs go on until 24 h after that.
    assert by_time["2026-06-02T01:00:00+00:00"]["status"] == "success"
    last = by_time["2026-06-02T02:00:00+00:00"]
    assert last["status"] == "missed"
    assert last["missed_reason"] == "execution_limit"
    assert len(deliverer.requests) == 25
    assert (await api.get(f"/v1/cues/{cue['id']}")).json()["status"] == "active"
    usage = (await api.get("/v1/usage")).json()["executions"]
    assert usage["used"] == 25
    assert usage["remaining"] == 0


@pytest.mark.parametrize("limit_settings", [{"monthly_execution_limit": 1}])
async def test_a_once_cue_held_back_by_the_limit_fails(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    first = (await create(api, "a")).json()
    await api.post(f"/v1/cues/{first['id']}/fire")  # the limit is reached at 00:30 June 1
    once = {"type": "once", "at": "2026-06-02T12:00:00Z"}
    cue = (await create(api, "late", schedule=once)).json()
    clock.advance(36 * 3600)
    await lite.settle()
    [execution] = (await api.get("/v1/executions", params={"cue_id": cue["id"]})).json()[
        "executions"
    ]
    assert execution["missed_reason"] == "execution_limit"
    assert (await api.get(f"/v1/cues/{cue['id']}")).json()["status"] == "failed"


async def test_without_limits_the_fire_path_makes_no_limit_lookup(
    lite: CueApiLite, api: httpx.AsyncClient, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert lite.firing.budgets is None

    async def forbidden(*args: object) -> None:
        raise AssertionError("a limit lookup on the fire path")

    monkeypatch.setattr(lite.store.usage, "executions", forbidden)
    await create(api, "a", schedule={"type": "recurring", "cron": "* * * * *"})
    await advance(lite, clock, 60)
    assert (await api.get("/v1/executions")).json()["total"] == 1


@pytest.mark.parametrize("limit_settings", [{"monthly_execution_limit": 100}])
async def test_with_a_limit_one_lookup_per_fire_slice_for_all_users(
    lite: CueApiLite, api: httpx.AsyncClient, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    every_minute = {"type": "recurring", "cron": "* * * * *"}
    for n in range(3):
        await create(api, f"a{n}", schedule=every_minute)
    bob = await lite.accounts.mint_key("bob@example.com")
    async with lite.client(bob.api_key) as other:
        for n in range(3):
            await create(other, f"b{n}", schedule=every_minute)
    calls: list[list[str]] = []
    real = lite.store.usage.executions

    async def counted(user_ids: list[str], start: int, end: int) -> dict[str, int]:
        calls.append(user_ids)
        return await real(user_ids, start, end)

    monkeypatch.setattr(lite.store.usage, "executions", counted)
    await advance(lite, clock, 60)
    assert len(calls) == 1
    assert len(calls[0]) == 2
