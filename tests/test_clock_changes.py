"""Host sleep and clock jumps, seen by comparing wall and monotonic progress at each
wake-up: missed occurrences are recorded with the reason, catch-up applies, and relative
deadlines keep the time they had left when the clock goes back."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cueapi_lite import CueApiLite, ManualClock

from .conftest import FakeDeliverer, status, webhook_cue
from .helpers import ms

DAY_S = 86_400


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(ms("2026-06-01T08:00:30+00:00"))


async def hourly(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = webhook_cue(schedule={"type": "recurring", "cron": "0 * * * *"}, **fields)
    response = await api.post("/v1/cues", json=body)
    assert response.status_code == 201
    return dict(response.json())


async def history(api: httpx.AsyncClient, cue_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = (await api.get("/v1/executions", params={
            "cue_id": cue_id, "limit": 100, "offset": len(found)})).json()  # fmt: skip
        found += page["executions"]
        if not page["has_more"]:
            return sorted(found, key=lambda e: e["scheduled_for"])


@pytest.mark.parametrize(
    ("policy", "ran"), [("run_once_if_missed", 1), ("skip_missed", 0), ("replay_all_missed", 72)]
)
async def test_a_three_day_sleep_leaves_no_silent_holes(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer,
    policy: str, ran: int,
) -> None:  # fmt: skip
    cue = await hourly(api, catch_up=policy)
    clock.sleep_host(3 * DAY_S + 600)  # 08:00:30 -> 08:10:30 three days later
    await lite.settle()
    rows = await history(api, cue["id"])
    assert len(rows) == 72  # 09:00 on day 0 ... 08:00 on day 3: one row per occurrence
    assert len({r["scheduled_for"] for r in rows}) == 72
    missed = [r for r in rows if r["status"] == "missed"]
    run = [r for r in rows if r["status"] != "missed"]
    assert len(run) == ran
    reason = "catch_up_skipped" if policy == "skip_missed" else "host_asleep"
    assert all(r["missed_reason"] == reason for r in missed)
    assert all("host was asleep" in r["error_message"] for r in missed)
    assert all(r["triggered_by"] == "catch_up" and r["status"] == "success" for r in run)
    if policy == "run_once_if_missed":
        assert run[0]["scheduled_for"] == "2026-06-04T08:00:00+00:00"  # the most recent
    assert len(deliverer.requests) == ran
    detail = (await api.get(f"/v1/cues/{cue['id']}")).json()
    assert detail["next_run"] == "2026-06-04T09:00:00+00:00"


async def test_a_forward_clock_jump_is_recorded_as_such(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    cue = await hourly(api)
    clock.jump(3 * 3600 + 600)  # 08:00:30 -> 11:10:30: 09, 10 and 11 all passed
    await lite.settle()
    rows = await history(api, cue["id"])
    assert [r["missed_reason"] for r in rows] == ["clock_jump", "clock_jump", None]
    assert rows[-1]["triggered_by"] == "catch_up"


async def test_a_sleep_shorter_than_the_grace_is_no_miss(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    cue = await hourly(api)
    clock.advance(3600 - 30 - 10)
    await lite.settle()
    clock.sleep_host(40)  # woke up 30 s after 09:00
    await lite.settle()
    [row] = await history(api, cue["id"])
    assert (row["status"], row["triggered_by"]) == ("success", "schedule")


async def test_after_a_backward_jump_retries_keep_their_remaining_wait(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    deliverer.answer(status(503), status(200))
    cue = await hourly(api, retry={"max_attempts": 2, "backoff_minutes": [5]})
    clock.advance(3600 - 30)  # 09:00: attempt 1 fails, the retry is due at 09:05
    await lite.settle()
    clock.jump(-3600)  # someone sets the clock back an hour: it reads 08:00
    await lite.settle()
    clock.advance(5 * 60 - 1)
    await lite.settle()
    assert len(deliverer.requests) == 1
    clock.advance(1)  # five minutes of real time after the failure
    await lite.settle()
    assert len(deliverer.requests) == 2
    rows = await history(api, cue["id"])
    assert [(r["status"], r["attempts"]) for r in rows] == [("success", 2)]


async def test_after_a_backward_jump_occurrences_that_ran_do_not_run_again(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    cue = await hourly(api)
    for _ in range(2):
        clock.advance(3600)  # 09:00 and 10:00 run
        await lite.settle()
    clock.jump(-2 * 3600)
    await lite.settle()
    for _ in range(3):
        clock.advance(3600)
        await lite.settle()
    rows = await history(api, cue["id"])
    assert [r["scheduled_for"][11:16] for r in rows] == ["09:00", "10:00", "11:00"]
    assert len(deliverer.requests) == 3


async def test_a_claim_of_a_worker_silent_through_a_host_sleep_expires_on_wake(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    cue = (await api.post("/v1/cues", json={
        "name": "w", "schedule": {"type": "recurring", "cron": "0 0 1 1 *"}, "transport": "worker",
        "payload": {"task": "t"}})).json()  # fmt: skip
    execution_id = (await api.post(f"/v1/cues/{cue['id']}/fire")).json()["id"]
    await api.post("/v1/worker/heartbeat", json={"worker_id": "w1"})
    await api.post(f"/v1/executions/{execution_id}/claim", json={"worker_id": "w1"})
    clock.sleep_host(DAY_S)
    await lite.settle()
    stored = (await api.get(f"/v1/executions/{execution_id}")).json()
    assert (stored["status"], stored["error_message"]) == ("pending", "lease expired")
