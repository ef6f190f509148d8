"""Reads on nodes sharing one PostgreSQL database: a change made through one node is
seen by the next request to another (no node keeps answers or credentials it cannot
know are current)."""

from __future__ import annotations

from cueapi_lite import CueApiLite

from ..conftest import webhook_cue


async def test_a_key_revoked_on_one_node_is_refused_by_the_next_request_to_another(
    nodes: list[CueApiLite],
) -> None:
    first, second, *_ = nodes
    owner = await first.accounts.mint_key("alice@example.com")
    async with first.client(owner.api_key) as api:
        created = await api.post("/v1/auth/keys", json={"label": "ci"})
        assert created.status_code == 201, created.text
        other_key, other_id = created.json()["api_key"], created.json()["id"]
        async with second.client(other_key) as elsewhere:
            assert (await elsewhere.get("/v1/auth/me")).status_code == 200
            assert (await api.delete(f"/v1/auth/keys/{other_id}")).status_code == 200
            assert (await elsewhere.get("/v1/auth/me")).status_code == 401


async def test_a_cue_changed_on_one_node_reads_changed_on_another(
    nodes: list[CueApiLite],
) -> None:
    first, second, *_ = nodes
    key = await first.accounts.mint_key("alice@example.com")
    async with first.client(key.api_key) as one, second.client(key.api_key) as other:
        cue = (await one.post("/v1/cues", json=webhook_cue(name="before"))).json()
        assert (await other.get(f"/v1/cues/{cue['id']}")).json()["name"] == "before"
        assert (await other.get("/v1/cues")).json()["cues"][0]["name"] == "before"
        await one.patch(f"/v1/cues/{cue['id']}", json={"name": "after"})
        assert (await other.get(f"/v1/cues/{cue['id']}")).json()["name"] == "after"
        assert (await other.get("/v1/cues")).json()["cues"][0]["name"] == "after"
        assert (await other.get("/v1/auth/me")).json()["active_cues"] == 1
