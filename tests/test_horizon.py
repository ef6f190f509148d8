"""A heap that holds only near deadlines: fires beyond the horizon wait in the cues'
next-fire index and missed-window checks in the watched cues, and still run on time,
each once, through restarts and changes made while the server runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from cueapi_lite import CueApiLite, ManualClock, Settings, alerts
from cueapi_lite.scheduler import Kind
from cueapi_lite.testing import advance

from .conftest import FakeDeliverer, status, webhook_cue
from .helpers import iso_at, ms

START = ms("2026-06-01T08:00:00+00:00")
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
Restart = Callable[[], Awaitable[CueApiLite]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def restart(
    settings: Settings, clock: ManualClock, deliverer: FakeDeliverer
) -> AsyncIterator[Restart]:
    """Start a new instance on the same database whose heap reads ahead 3 fires at a time."""
    started: list[CueApiLite] = []

    async def start() -> CueApiLite:
        app = CueApiLite(settings, clock=clock, deliverer=deliverer)
        app.firing.horizon_entries = 3
        await app.start()
        started.append(app)
        return app

    yield start
    for app in started:
        await app.aclose()


def entries(app: CueApiLite, kind: Kind) -> int:
    return sum(1 for entry in app.scheduler._heap if entry[2] == kind.value)


async def once_at(api: httpx.AsyncClient, name: str, at_ms: int) -> str:
    body = webhook_cue(name=name, schedule={"type": "once", "at": iso_at(at_ms)})
    response = await api.post("/v1/cues", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def runs(api: httpx.AsyncClient) -> dict[str, list[str]]:
    """Each cue's executions (scheduled times) by cue id."""
    body = (await api.get("/v1/executions", params={"limit": 100})).json()
    found: dict[str, list[str]] = {}
    for execution in body["executions"]:
        found.setdefault(execution["cue_id"], []).append(execution["scheduled_for"])
    return {cue_id: sorted(times) for cue_id, times in found.items()}


async def test_fires_beyond_the_horizon_run_on_time_each_once(
    lite: CueApiLite, user: Any, restart: Restart, clock: ManualClock
) -> None:
    async with lite.client(user.api_key) as api:
        # Eight cues ten minutes apart, and four more that share one instant.
        due = {await once_at(api, f"c{n}", START + (n + 1) * 10 * MINUTE_MS): n for n in range(8)}
        shared = START + 45 * MINUTE_MS
        due.update({await once_at(api, f"s{n}", shared): -1 for n in range(4)})
    await lite.aclose()
    app = await restart()
    # Three fires on the heap and the entry that reads on, not twelve fires.
    assert entries(app, Kind.FIRE) == 3
    assert entries(app, Kind.FIRE_HORIZON) == 1
    await advance(app, 2 * 3600)
    async with app.client(user.api_key) as api:
        history = await runs(api)
    assert sorted(history) == sorted(due)
    for cue_id, n in due.items():
        at_ms = shared if n < 0 else START + (n + 1) * 10 * MINUTE_MS
        assert history[cue_id] == [iso_at(at_ms)]
    body = (await app.client(user.api_key).get("/v1/executions", params={"limit": 100})).json()
    assert {e["triggered_by"] for e in body["executions"]} == {"schedule"}
    assert entries(app, Kind.FIRE) == 0


async def test_more_fires_at_one_instant_than_the_heap_reads_are_read_when_near(
    lite: CueApiLite, user: Any, restart: Restart, clock: ManualClock
) -> None:
    burst = START + HOUR_MS
    async with lite.client(user.api_key) as api:
        made = [await once_at(api, f"c{n}", burst) for n in range(5)]
    await lite.aclose()
    app = await restart()
    assert entries(app, Kind.FIRE) == 0  # an hour away: nothing held yet
    await advance(app, 2 * 3600)
    async with app.client(user.api_key) as api:
        assert await runs(api) == {cue_id: [iso_at(burst)] for cue_id in made}


async def test_cues_created_or_moved_while_running_fire_at_their_new_time(
    lite: CueApiLite, user: Any, restart: Restart, clock: ManualClock
) -> None:
    async with lite.client(user.api_key) as api:
        far = [await once_at(api, f"c{n}", START + (n + 1) * HOUR_MS) for n in range(5)]
    await lite.aclose()
    app = await restart()
    horizon = app.scheduler.horizon(Kind.FIRE)
    assert horizon == START + 4 * HOUR_MS
    async with app.client(user.api_key) as api:
        # Beyond the horizon: not pushed, found when the heap gets there.
        late = await once_at(api, "late", START + 4 * HOUR_MS + 30 * MINUTE_MS)
        # From beyond the horizon to before it, and from before it to beyond it.
        moved_in = {"schedule": {"type": "once", "at": iso_at(START + 30 * MINUTE_MS)}}
        moved_out = {"schedule": {"type": "once", "at": iso_at(START + 5 * HOUR_MS + 1)}}
        assert (await api.patch(f"/v1/cues/{far[4]}", json=moved_in)).status_code == 200
        assert (await api.patch(f"/v1/cues/{far[0]}", json=moved_out)).status_code == 200
        paused = await api.patch(f"/v1/cues/{far[3]}", json={"status": "paused"})
        assert paused.status_code == 200
    await advance(app, 6 * 3600)
    async with app.client(user.api_key) as api:
        history = await runs(api)
    assert history == {
        far[4]: [iso_at(START + 30 * MINUTE_MS)],
        far[1]: [iso_at(START + 2 * HOUR_MS)],
        far[2]: [iso_at(START + 3 * HOUR_MS)],
        late: [iso_at(START + 4 * HOUR_MS + 30 * MINUTE_MS)],
        far[0]: [iso_at(START + 5 * HOUR_MS + 1)],
    }


async def test_fires_missed_while_down_beyond_the_first_read_are_caught_up(
    lite: CueApiLite, user: Any, restart: Restart, clock: ManualClock
) -> None:
    async with lite.client(user.api_key) as api:
        for n in range(7):
            body = webhook_cue(name=f"c{n}", schedule={"type": "recurring", "cron": f"{n} 9 * * *"})
            assert (await api.post("/v1/cues", json=body)).status_code == 201
    await lite.aclose()
    clock.advance(2 * 3600)  # down over 09:00-09:06: each cue missed one occurrence
    app = await restart()
    await app.settle()
    async with app.client(user.api_key) as api:
        body = (await api.get("/v1/executions", params={"limit": 100})).json()
    assert len(body["executions"]) == 7
    assert {e["triggered_by"] for e in body["executions"]} == {"catch_up"}


async def test_fires_read_after_a_clock_jump_are_missed_for_the_jump(
    lite: CueApiLite, user: Any, restart: Restart, clock: ManualClock
) -> None:
    async with lite.client(user.api_key) as api:
        made = []
        for minute in range(5, 35, 5):
            body = webhook_cue(
                name=f"c{minute}", schedule={"type": "recurring", "cron": f"{minute} * * * *"}
            )
            made.append((await api.post("/v1/cues", json=body)).json()["id"])
    await lite.aclose()
    app = await restart()
    clock.jump(3 * 3600 + 600)  # 08:00 -> 11:10: more overdue fires than the heap holds
    await app.settle()
    async with app.client(user.api_key) as api:
        body = (await api.get("/v1/executions", params={"limit": 100})).json()
    missed = [e for e in body["executions"] if e["status"] == "missed"]
    assert {e["cue_id"] for e in missed} == set(made)
    assert {e["missed_reason"] for e in missed} == {"clock_jump"}


@pytest.fixture
def sweep_in_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Missed-window checks as on a server with many cues: one kept beyond the
    horizon at most, two cues read per step of a sweep."""
    monkeypatch.setattr(alerts, "WINDOW_HORIZON_CUES", 1)
    monkeypatch.setattr(alerts, "SWEEP_SLICE", 2)


async def first_missed_window(api: httpx.AsyncClient, cue_ids: list[str]) -> dict[str, str]:
    """When each cue's first missed-window alert was raised."""
    first: dict[str, str] = {}
    for cue_id in cue_ids:
        params = {"alert_type": "missed_window", "cue_id": cue_id, "limit": 100}
        body = (await api.get("/v1/alerts", params=params)).json()
        assert len(body["alerts"]) < 100
        if body["alerts"]:
            first[cue_id] = min(alert["created_at"] for alert in body["alerts"])
    return first


@pytest.mark.usefixtures("sweep_in_slices")
async def test_missed_windows_beyond_the_horizon_are_raised_at_their_end(
    lite: CueApiLite, user: Any, restart: Restart, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    deliverer.answer(status(500))
    quiet = {"consecutive_failures": 100, "missed_window_multiplier": 2}
    windows: dict[str, int] = {}
    async with lite.client(user.api_key) as api:
        for n, (cron, interval_ms) in enumerate(
            [("0 * * * *", HOUR_MS), ("*/30 * * * *", 30 * MINUTE_MS), ("0 9 * * *", 24 * HOUR_MS),
             ("15 */2 * * *", 2 * HOUR_MS), ("0 8 * * *", 24 * HOUR_MS)]
        ):  # fmt: skip
            body = webhook_cue(
                name=f"c{n}", schedule={"type": "recurring", "cron": cron}, alerts=quiet,
                on_failure={"email": False}, retry={"max_attempts": 1, "backoff_minutes": [1]},
            )  # fmt: skip
            response = await api.post("/v1/cues", json=body)
            windows[response.json()["id"]] = START + 2 * interval_ms
    await lite.aclose()
    app = await restart()
    # The heap holds the checks that end within the horizon, not one per cue.
    assert entries(app, Kind.MISSED_WINDOW) < len(windows)
    await advance(app, 3 * 24 * 3600)
    async with app.client(user.api_key) as api:
        assert await first_missed_window(api, list(windows)) == {
            cue_id: iso_at(end_ms) for cue_id, end_ms in windows.items()
        }


@pytest.mark.usefixtures("sweep_in_slices")
async def test_windows_that_ended_while_down_are_raised_at_start(
    lite: CueApiLite, user: Any, restart: Restart, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    deliverer.answer(status(500))
    quiet = {"consecutive_failures": 100, "missed_window_multiplier": 1}
    async with lite.client(user.api_key) as api:
        made = []
        for n in range(5):
            body = webhook_cue(
                name=f"c{n}", schedule={"type": "recurring", "cron": "0 * * * *"}, alerts=quiet,
                on_failure={"email": False},
            )  # fmt: skip
            made.append((await api.post("/v1/cues", json=body)).json()["id"])
    await lite.aclose()
    clock.advance(5 * 3600)
    app = await restart()
    await app.settle()
    async with app.client(user.api_key) as api:
        assert await first_missed_window(api, made) == dict.fromkeys(
            made, iso_at(START + 5 * HOUR_MS)
        )
