"""The time-travel helpers embedders use: `advance` moves a manual clock through every
deadline on the way, so a day passes as it would on a live server (no sockets here)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cueapi_lite import CueApiLite, Settings
from cueapi_lite.testing import InProcessServer, advance, manual_clock


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[InProcessServer]:
    async with InProcessServer(str(tmp_path / "t.db"), start="2027-01-04T00:00:00Z") as s:
        yield s


async def test_an_hour_of_quarter_hours_fires_four_times_on_schedule(
    server: InProcessServer,
) -> None:
    key = await server.mint_key("t@example.com")
    async with server.client(key.api_key) as api:
        await api.post("/v1/cues", json={"name": "q", "cron": "*/15 * * * *",
                                         "callback": "http://agent.test/q"})  # fmt: skip
        await server.advance(hours=1)
        listed = (await api.get("/v1/executions")).json()["executions"]
    hooks = server.webhooks.assert_received(4)
    assert [h.scheduled_for for h in hooks] == [
        "2027-01-04T00:15:00+00:00", "2027-01-04T00:30:00+00:00",
        "2027-01-04T00:45:00+00:00", "2027-01-04T01:00:00+00:00",
    ]  # fmt: skip
    assert {(e["status"], e["triggered_by"]) for e in listed} == {("success", "schedule")}
    assert server.now().isoformat() == "2027-01-04T01:00:00+00:00"


async def test_deadlines_on_the_way_run_at_their_time(server: InProcessServer) -> None:
    key = await server.mint_key("t@example.com")
    server.webhooks.answer(503, {"error": "down"})
    async with server.client(key.api_key) as api:
        cue = (await api.post("/v1/cues", json={
            "name": "r", "at": "2027-01-04T00:00:00Z", "callback": "http://agent.test/r",
            "retry": {"max_attempts": 3, "backoff_minutes": [1, 5]},
        })).json()  # fmt: skip
        await server.advance(minutes=3)
        assert len(server.webhooks.assert_received(2)) == 2  # at 0 and after 1 minute
        server.webhooks.answer_outcome(success=True, result="late but done")
        await server.advance(minutes=10)
        [execution] = (await api.get("/v1/executions", params={"cue_id": cue["id"]})).json()[
            "executions"
        ]
    assert [h.json()["attempt"] for h in server.webhooks.assert_received(3)] == [1, 2, 3]
    assert (execution["status"], execution["attempts"]) == ("success", 3)
    assert execution["outcome"]["result"] == "late but done"


async def test_signatures_are_checked_with_the_minted_keys_secret(
    server: InProcessServer,
) -> None:
    key = await server.mint_key("t@example.com")
    async with server.client(key.api_key) as api:
        for name in ("signed", "checked-with-another-secret"):
            await api.post("/v1/cues", json={"name": name, "at": server.now().isoformat(),
                                             "callback": "http://agent.test/s"})  # fmt: skip
            await server.advance()
            server.webhooks.secret = "whsec_" + "0" * 64
    assert [h.signature_valid for h in server.webhooks.received] == [True, False]
    with pytest.raises(AssertionError, match="bad signature"):
        server.webhooks.assert_received(2)


async def test_advance_needs_a_manual_clock_and_moves_only_forward(tmp_path: Path) -> None:
    lite = CueApiLite(Settings(db=str(tmp_path / "s.db")))
    with pytest.raises(TypeError, match="ManualClock"):
        await advance(lite, 1)
    with pytest.raises(ValueError, match="offset"):
        manual_clock("2027-01-04T00:00:00")
    async with InProcessServer(str(tmp_path / "m.db")) as server:
        with pytest.raises(ValueError, match="forward"):
            await server.advance(minutes=-1)
