"""Pages of cues and executions: `offset` means the same thing however the page is found
(resumed from the previous page's end, or by skipping), including after changes between
pages and among cues created in the same millisecond."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

import cueapi_lite
from cueapi_lite import CueApiLite

from .conftest import webhook_cue


async def create_cues(api: httpx.AsyncClient, count: int, prefix: str = "c") -> list[str]:
    ids = []
    for n in range(count):
        response = await api.post("/v1/cues", json=webhook_cue(name=f"{prefix}{n}"))
        assert response.status_code == 201
        ids.append(response.json()["id"])
    return ids


async def ids_of(api: httpx.AsyncClient, path: str, key: str, **params: Any) -> list[str]:
    body = (await api.get(path, params=params)).json()
    return [item["id"] for item in body[key]]


async def walk(api: httpx.AsyncClient, limit: int, **params: Any) -> list[str]:
    seen: list[str] = []
    offset = 0
    while True:
        page = await ids_of(api, "/v1/cues", "cues", limit=limit, offset=offset, **params)
        if not page:
            return seen
        seen += page
        offset += limit


async def test_paging_through_cues_made_in_one_millisecond_is_newest_first_and_complete(
    api: httpx.AsyncClient,
) -> None:
    """The manual clock stands still: every cue has the same created_at."""
    made = await create_cues(api, 23)
    assert await walk(api, limit=5) == made[::-1]
    assert await walk(api, limit=5) == made[::-1]  # again, resuming from cached page ends
    assert await ids_of(api, "/v1/cues", "cues", limit=4, offset=17) == made[::-1][17:21]


async def test_an_offset_after_changes_between_pages_counts_in_the_new_list(
    api: httpx.AsyncClient,
) -> None:
    made = await create_cues(api, 10)
    first = await ids_of(api, "/v1/cues", "cues", limit=4)
    assert first == made[::-1][:4]
    newer = await create_cues(api, 1, prefix="new")
    second = await ids_of(api, "/v1/cues", "cues", limit=4, offset=4)
    assert second == (newer + made[::-1])[4:8]
    await api.delete(f"/v1/cues/{made[5]}")
    remaining = [cue for cue in newer + made[::-1] if cue != made[5]]
    assert await ids_of(api, "/v1/cues", "cues", limit=4, offset=4) == remaining[4:8]
    assert await ids_of(api, "/v1/cues", "cues", limit=4, offset=8) == remaining[8:12]


async def test_status_pages_follow_status_changes(api: httpx.AsyncClient) -> None:
    made = await create_cues(api, 8)
    active = await ids_of(api, "/v1/cues", "cues", limit=3, offset=0, status="active")
    assert active == made[::-1][:3]
    assert (
        await ids_of(api, "/v1/cues", "cues", limit=3, offset=3, status="active")
        == (made[::-1][3:6])
    )
    await api.patch(f"/v1/cues/{made[6]}", json={"status": "paused"})
    still_active = [cue for cue in made[::-1] if cue != made[6]]
    assert (
        await ids_of(api, "/v1/cues", "cues", limit=3, offset=3, status="active")
        == (still_active[3:6])
    )
    paused = (await api.get("/v1/cues", params={"status": "paused"})).json()
    assert ([c["id"] for c in paused["cues"]], paused["total"]) == ([made[6]], 1)


async def test_offsets_past_the_end_are_empty_with_the_true_total(api: httpx.AsyncClient) -> None:
    await create_cues(api, 3)
    body = (await api.get("/v1/cues", params={"offset": 3})).json()
    assert (body["cues"], body["total"], body["offset"]) == ([], 3, 3)
    executions = (await api.get("/v1/executions", params={"offset": 50})).json()
    assert (executions["executions"], executions["total"], executions["has_more"]) == ([], 0, False)


async def test_execution_pages_slice_the_full_list(
    api: httpx.AsyncClient, lite: CueApiLite
) -> None:
    a, b = await create_cues(api, 2)
    for cue in (a, b, a, a, b, a, b):
        assert (await api.post(f"/v1/cues/{cue}/fire")).status_code == 200
    await lite.settle()
    everything = await ids_of(api, "/v1/executions", "executions", limit=100)
    assert len(everything) == 7
    for offset in range(0, 8, 3):
        page = (await api.get("/v1/executions", params={"limit": 3, "offset": offset})).json()
        assert [e["id"] for e in page["executions"]] == everything[offset : offset + 3]
        assert page["has_more"] == (offset + 3 < 7)
    of_a = await ids_of(api, "/v1/executions", "executions", limit=100, cue_id=a)
    assert of_a == [e for e in everything if e in set(of_a)]
    assert len(of_a) == 4
    assert (
        await ids_of(api, "/v1/executions", "executions", limit=2, offset=2, cue_id=a)
        == (of_a[2:4])
    )
    cue = (await api.get(f"/v1/cues/{a}")).json()
    assert [e["id"] for e in cue["executions"]] == of_a
    assert cue["execution_total"] == 4


async def test_another_users_cue_id_filters_to_nothing(
    api: httpx.AsyncClient, lite: CueApiLite
) -> None:
    (cue,) = await create_cues(api, 1)
    await api.post(f"/v1/cues/{cue}/fire")
    other = await lite.accounts.mint_key("bob@example.com")
    async with lite.client(other.api_key) as bob:
        body = (await bob.get("/v1/executions", params={"cue_id": cue})).json()
    assert (body["executions"], body["total"]) == ([], 0)


async def test_listed_cues_show_every_change_made_in_the_same_millisecond(
    api: httpx.AsyncClient, lite: CueApiLite
) -> None:
    """Records and their renderings are reused while a row is unchanged: any change,
    even two within one millisecond of the manual clock, must show."""
    (cue,) = await create_cues(api, 1)
    assert (await api.get("/v1/cues")).json()["cues"][0]["name"] == "c0"
    for name in ("renamed", "renamed again"):
        await api.patch(f"/v1/cues/{cue}", json={"name": name})
        listed = (await api.get("/v1/cues")).json()["cues"][0]
        assert listed["name"] == name
        assert (await api.get(f"/v1/cues/{cue}")).json()["name"] == name
    await api.post(f"/v1/cues/{cue}/fire")
    await lite.settle()
    listed = (await api.get("/v1/cues")).json()["cues"][0]
    assert (listed["fired_count"], listed["run_count"]) == (1, 1)
    await api.patch(f"/v1/cues/{cue}", json={"status": "paused"})
    listed = (await api.get("/v1/cues")).json()["cues"][0]
    assert (listed["status"], listed["next_run"]) == ("paused", None)


def test_every_statement_that_changes_a_cue_moves_its_version() -> None:
    """A stale version would serve an old rendering of a changed cue."""
    package = Path(cueapi_lite.__file__).parent / "store"
    statements = []
    for source in package.rglob("*.py"):
        if source.name == "migrations.py":
            continue
        text = source.read_text()
        for match in re.finditer(r"UPDATE cues SET(.*?)WHERE", text, re.DOTALL):
            statements.append((source.name, match.group(1)))
    assert len(statements) >= 7  # the search found the store's cue updates
    for name, assignments in statements:
        assert "version = version + 1" in assignments, (name, assignments)
