"""Reused answers of the API's reads: every change is visible in the very next request,
whoever made it, and one user's answer is never another's."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import httpx
import pytest

from cueapi_lite import CueApiLite, ManualClock
from cueapi_lite.read_cache import ReadCache

from .conftest import webhook_cue
from .helpers import ms


async def get(api: httpx.AsyncClient, path: str, status: int = 200) -> Any:
    response = await api.get(path)
    assert response.status_code == status, response.text
    return response.json()


async def test_cue_changes_show_in_the_next_read(api: httpx.AsyncClient, lite: CueApiLite) -> None:
    assert (await get(api, "/v1/cues?limit=5"))["total"] == 0
    cue = (await api.post("/v1/cues", json=webhook_cue(name="first"))).json()
    listed = await get(api, "/v1/cues?limit=5")
    assert [c["name"] for c in listed["cues"]] == ["first"]
    assert (await get(api, f"/v1/cues/{cue['id']}"))["execution_total"] == 0

    await api.patch(f"/v1/cues/{cue['id']}", json={"name": "renamed", "status": "paused"})
    assert [c["name"] for c in (await get(api, "/v1/cues?limit=5"))["cues"]] == ["renamed"]
    assert (await get(api, f"/v1/cues/{cue['id']}"))["status"] == "paused"
    assert (await get(api, "/v1/cues?limit=5&status=paused"))["total"] == 1

    fired = (await api.post(f"/v1/cues/{cue['id']}/fire")).json()
    shown = await get(api, f"/v1/cues/{cue['id']}")
    assert shown["execution_total"] == 1
    assert [e["id"] for e in shown["executions"]] == [fired["id"]]
    assert (await get(api, f"/v1/executions/{fired['id']}"))["status"] == "pending"
    assert [e["status"] for e in (await get(api, "/v1/executions"))["executions"]] == ["pending"]

    await lite.settle()  # delivered: the execution and the cue's counts move
    assert (await get(api, f"/v1/executions/{fired['id']}"))["status"] == "success"
    assert [e["status"] for e in (await get(api, "/v1/executions"))["executions"]] == ["success"]
    assert (await get(api, f"/v1/cues/{cue['id']}"))["run_count"] == 1

    report = {"success": True, "result": "done"}
    await api.post(f"/v1/executions/{fired['id']}/outcome", json=report)
    executions = await get(api, f"/v1/executions?cue_id={cue['id']}")
    assert executions["executions"][0]["outcome_state"] == "reported_success"

    assert (await api.delete(f"/v1/cues/{cue['id']}")).status_code == 204
    assert (await get(api, "/v1/cues?limit=5"))["total"] == 0
    await get(api, f"/v1/cues/{cue['id']}", 404)


async def test_account_counts_and_preferences_show_in_the_next_read(
    api: httpx.AsyncClient,
) -> None:
    me = await get(api, "/v1/auth/me")
    assert (me["active_cues"], me["executions_this_month"], me["email_alerts"]) == (0, 0, True)
    assert (await get(api, "/v1/usage"))["cues"]["active"] == 0

    cue = (await api.post("/v1/cues", json=webhook_cue())).json()
    assert (await get(api, "/v1/auth/me"))["active_cues"] == 1
    assert (await get(api, "/v1/usage"))["cues"]["active"] == 1

    await api.post(f"/v1/cues/{cue['id']}/fire")
    assert (await get(api, "/v1/auth/me"))["executions_this_month"] == 1
    assert (await get(api, "/v1/usage"))["executions"]["used"] == 1

    await api.patch("/v1/auth/me", json={"email_alerts": False})
    assert (await get(api, "/v1/auth/me"))["email_alerts"] is False


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(ms("2026-06-30T23:59:40+00:00"))


async def test_a_new_month_shows_without_any_change(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    cue = (await api.post("/v1/cues", json=webhook_cue())).json()
    await api.post(f"/v1/cues/{cue['id']}/fire")
    await lite.settle()
    assert (await get(api, "/v1/auth/me"))["executions_this_month"] == 1
    assert (await get(api, "/v1/usage"))["executions"]["used"] == 1

    clock.advance(30)  # July, and nothing was written since the last reads
    assert (await get(api, "/v1/auth/me"))["executions_this_month"] == 0
    usage = await get(api, "/v1/usage")
    assert usage["executions"]["used"] == 0
    assert usage["billing_period"]["start"] == "2026-07-01T00:00:00+00:00"


async def test_one_users_answer_is_never_anothers(api: httpx.AsyncClient, lite: CueApiLite) -> None:
    cue = (await api.post("/v1/cues", json=webhook_cue(name="alices"))).json()
    fired = (await api.post(f"/v1/cues/{cue['id']}/fire")).json()
    paths = ["/v1/cues", f"/v1/cues/{cue['id']}", "/v1/executions", f"/v1/executions/{fired['id']}"]
    for path in paths:
        await get(api, path)

    bob = await lite.accounts.mint_key("bob@example.com")
    async with lite.client(bob.api_key) as other:
        assert (await get(other, "/v1/cues"))["total"] == 0
        await get(other, f"/v1/cues/{cue['id']}", 404)
        assert (await get(other, "/v1/executions"))["total"] == 0
        await get(other, f"/v1/executions/{fired['id']}", 404)
        assert (await get(other, "/v1/auth/me"))["email"] == "bob@example.com"


async def test_a_query_error_is_answered_every_time(api: httpx.AsyncClient) -> None:
    for _ in range(2):
        await get(api, "/v1/cues?limit=abc", 422)
        await get(api, "/v1/executions?offset=-1", 422)
    assert (await get(api, "/v1/cues?limit=3"))["limit"] == 3


@pytest.mark.sqlite_file
async def test_a_change_by_another_process_shows_in_the_next_read(
    api: httpx.AsyncClient, lite: CueApiLite
) -> None:
    cue = (await api.post("/v1/cues", json=webhook_cue(name="before"))).json()
    assert (await get(api, f"/v1/cues/{cue['id']}"))["name"] == "before"
    assert (await get(api, "/v1/cues"))["cues"][0]["name"] == "before"

    with sqlite3.connect(lite.settings.db) as other:  # as an admin command would
        other.execute("UPDATE cues SET name = 'after', version = version + 1")
    assert (await get(api, f"/v1/cues/{cue['id']}"))["name"] == "after"
    assert (await get(api, "/v1/cues"))["cues"][0]["name"] == "after"


async def test_what_is_kept_is_bounded_and_never_filed_under_a_newer_version() -> None:
    version = 1
    reads: list[str] = []

    async def read(key: str, size: int = 10) -> bytes:
        reads.append(key)
        return b"x" * size

    cache = ReadCache(lambda: version, max_entries=3, max_bytes=800)
    for key in "abcd":
        await cache.get(key, lambda key=key: read(key))
    await cache.get("d", lambda: read("d"))
    await cache.get("a", lambda: read("a"))  # the oldest went when a fourth came
    assert reads == ["a", "b", "c", "d", "a"]

    await cache.get("big", lambda: read("big", 200))  # over an eighth of the budget
    await cache.get("big", lambda: read("big", 200))
    assert reads[-2:] == ["big", "big"]

    version = 2
    started, release = asyncio.Event(), asyncio.Event()

    async def slow() -> bytes:
        started.set()
        await release.wait()
        return b"old"

    pending = asyncio.ensure_future(cache.get("k", slow))
    await started.wait()
    version = 3  # a commit while `slow` read: a newer request fills the cache
    assert await cache.get("k", lambda: read("k")) == b"x" * 10
    release.set()
    assert await pending == b"old"
    assert await cache.get("k", lambda: read("k2")) == b"x" * 10
    assert reads[-1] == "k"  # `slow`'s result was not kept under version 3
