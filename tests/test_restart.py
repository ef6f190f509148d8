"""Restarts: nothing that was due is lost, pending work resumes, missed occurrences are
recorded and handled by the cue's catch_up policy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.webhooks import WebhookRequest, WebhookResponse

from .conftest import FakeDeliverer, status, webhook_cue
from .helpers import ms

Restart = Callable[[], Awaitable[CueApiLite]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(ms("2026-06-01T08:00:30+00:00"))


@pytest.fixture
async def restart(
    settings: Settings, clock: ManualClock, deliverer: FakeDeliverer
) -> AsyncIterator[Restart]:
    """Start a new instance on the same database file (the old one must be closed)."""
    started: list[CueApiLite] = []

    async def start() -> CueApiLite:
        app = CueApiLite(settings, clock=clock, deliverer=deliverer)
        await app.start()
        started.append(app)
        return app

    yield start
    for app in started:
        await app.aclose()


async def all_executions(api: httpx.AsyncClient, cue_id: str) -> list[dict[str, Any]]:
    body = (await api.get("/v1/executions", params={"cue_id": cue_id, "limit": 100})).json()
    return sorted(body["executions"], key=lambda e: e["scheduled_for"])


async def create_hourly(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = webhook_cue(schedule={"type": "recurring", "cron": "0 * * * *"}, **fields)
    response = await api.post("/v1/cues", json=body)
    assert response.status_code == 201
    return dict(response.json())


@pytest.mark.parametrize(
    ("policy", "ran", "missed"),
    [
        ("run_once_if_missed", ["2026-06-01T11:00:00+00:00"], 2),
        ("skip_missed", [], 3),
        (
            "replay_all_missed",
            ["2026-06-01T09:00:00+00:00", "2026-06-01T10:00:00+00:00", "2026-06-01T11:00:00+00:00"],
            0,
        ),
    ],
)
async def test_occurrences_missed_while_down_follow_the_catch_up_policy(
    lite: CueApiLite, user: Any, restart: Restart, clock: ManualClock,
    deliverer: FakeDeliverer, policy: str, ran: list[str], missed: int,
) -> None:  # fmt: skip
    async with lite.client(user.api_key) as api:
        cue = await create_hourly(api, catch_up=policy)
    await lite.aclose()
    clock.advance(3 * 3600 + 600)  # down from 08:00:30 to 11:10:30: 09, 10, 11 were due
    app = await restart()
    await app.settle()
    async with app.client(user.api_key) as api:
        history = await all_executions(api, cue["id"])
        assert [e["scheduled_for"] for e in history] == [
            "2026-06-01T09:00:00+00:00", "2026-06-01T10:00:00+00:00", "2026-06-01T11:00:00+00:00"
        ]  # fmt: skip
        run = [e for e in history if e["status"] != "missed"]
        assert [e["scheduled_for"] for e in run] == ran
        assert all(e["triggered_by"] == "catch_up" and e["status"] == "success" for e in run)
        skipped = [e for e in history if e["status"] == "missed"]
        assert len(skipped) == missed
        reason = "catch_up_skipped" if policy == "skip_missed" else "server_down"
        assert all(e["missed_reason"] == reason for e in skipped)
        assert all("server was not running" in e["error_message"] for e in skipped)
        assert all(e["triggered_by"] == "schedule" and e["attempts"] == 0 for e in skipped)
        detail = (await api.get(f"/v1/cues/{cue['id']}")).json()
        assert detail["next_run"] == "2026-06-01T12:00:00+00:00"
        assert detail["fired_count"] == len(ran)
    assert len(deliverer.requests) == len(ran)


@pytest.mark.parametrize(
    ("policy", "status", "triggered_by", "missed_reason"),
    [
        ("run_once_if_missed", "success", "catch_up", None),
        ("replay_all_missed", "success", "catch_up", None),
        ("skip_missed", "missed", "schedule", "catch_up_skipped"),
    ],
)
async def test_an_occurrence_due_during_a_quick_restart_was_missed_whatever_the_grace(
    lite: CueApiLite, user: Any, restart: Restart, clock: ManualClock,
    deliverer: FakeDeliverer, policy: str, status: str, triggered_by: str,
    missed_reason: str | None,
) -> None:  # fmt: skip
    """Down for 5 s across 09:00 (well inside MISFIRE_GRACE_S): the server was not
    running when it fell due, so the cue's catch_up policy decides; skip_missed never
    delivers it."""
    async with lite.client(user.api_key) as api:
        cue = await create_hourly(api, catch_up=policy)
    clock.advance(3600 - 30 - 2)  # 08:59:58
    await lite.settle()
    await lite.aclose()
    clock.advance(7)  # restarted at 09:00:05
    app = await restart()
    await app.settle()
    async with app.client(user.api_key) as api:
        [execution] = await all_executions(api, cue["id"])
    assert execution["scheduled_for"] == "2026-06-01T09:00:00+00:00"
    assert (execution["status"], execution["triggered_by"]) == (status, triggered_by)
    assert execution["missed_reason"] == missed_reason
    if missed_reason:
        assert "server was not running" in execution["error_message"]
    assert len(deliverer.requests) == (0 if policy == "skip_missed" else 1)


async def test_lateness_while_running_within_the_grace_is_an_ordinary_fire(
    lite: CueApiLite, user: Any, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    async with lite.client(user.api_key) as api:
        cue = await create_hourly(api, catch_up="skip_missed")
        clock.advance(3600 - 30 + 45)  # the wake-up came 45 s late, the server running
        await lite.settle()
        [execution] = await all_executions(api, cue["id"])
    assert (execution["status"], execution["triggered_by"]) == ("success", "schedule")
    assert len(deliverer.requests) == 1


async def test_pending_deliveries_resume_after_a_restart(
    lite: CueApiLite, user: Any, restart: Restart, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    deliverer.answer(status(503))
    async with lite.client(user.api_key) as api:
        cue = await create_hourly(api, retry={"max_attempts": 3, "backoff_minutes": [10]})
    clock.advance(3600 - 30)
    await lite.settle()
    assert len(deliverer.requests) == 1
    await lite.aclose()
    deliverer.answer(status(200))
    clock.advance(5 * 60)
    app = await restart()
    await app.settle()
    assert len(deliverer.requests) == 1  # the retry is still 5 minutes away
    clock.advance(5 * 60)
    await app.settle()
    async with app.client(user.api_key) as api:
        [execution] = await all_executions(api, cue["id"])
    assert execution["status"] == "success"
    assert execution["attempts"] == 2
    assert len(deliverer.requests) == 2


class HangingDeliverer(FakeDeliverer):
    """Never answers: the process dies while the attempt is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = asyncio.Event()

    async def send(self, request: WebhookRequest) -> WebhookResponse:
        self.requests.append(request)
        self.sent.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_an_attempt_cut_off_by_a_crash_is_sent_again_with_the_same_number(
    settings: Settings, clock: ManualClock, deliverer: FakeDeliverer, restart: Restart
) -> None:
    hanging = HangingDeliverer()
    first = CueApiLite(settings, clock=clock, deliverer=hanging)
    await first.start()
    key = await first.accounts.mint_key("crash@example.com")
    async with first.client(key.api_key) as api:
        cue = await create_hourly(api)
        execution = (await api.post(f"/v1/cues/{cue['id']}/fire")).json()
    await hanging.sent.wait()
    await first.aclose()  # the attempt never finished: its row is still `delivering`
    app = await restart()
    await app.settle()
    async with app.client(key.api_key) as api:
        stored = (await api.get(f"/v1/executions/{execution['id']}")).json()
    assert stored["status"] == "success"
    assert stored["attempts"] == 1
    assert hanging.requests[0].headers["X-CueAPI-Attempt"] == "1"
    assert [r.headers["X-CueAPI-Attempt"] for r in deliverer.requests] == ["1"]
    assert deliverer.requests[0].headers["X-CueAPI-Execution-Id"] == execution["id"]


@pytest.mark.parametrize(
    ("policy", "status", "cue_status", "sent"),
    [("run_once_if_missed", "success", "completed", 1), ("skip_missed", "missed", "failed", 0)],
)
async def test_a_once_cue_due_while_down_runs_on_restart_unless_skipped(
    lite: CueApiLite, user: Any, restart: Restart, clock: ManualClock, deliverer: FakeDeliverer,
    policy: str, status: str, cue_status: str, sent: int,
) -> None:  # fmt: skip
    async with lite.client(user.api_key) as api:
        body = webhook_cue(schedule={"type": "once", "at": "2026-06-01T09:00:00Z"}, catch_up=policy)
        cue = (await api.post("/v1/cues", json=body)).json()
    await lite.aclose()
    clock.advance(6 * 3600)
    app = await restart()
    await app.settle()
    async with app.client(user.api_key) as api:
        [execution] = await all_executions(api, cue["id"])
        detail = (await api.get(f"/v1/cues/{cue['id']}")).json()
    assert execution["scheduled_for"] == "2026-06-01T09:00:00+00:00"
    assert execution["status"] == status
    if sent:
        assert execution["triggered_by"] == "catch_up"
    assert detail["status"] == cue_status  # a skipped once cue will never run: failed
    assert len(deliverer.requests) == sent


async def test_a_very_long_outage_keeps_the_newest_occurrences_and_names_the_rest(
    tmp_path: Any, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    settings = Settings(db=str(tmp_path / "long.db"), max_missed_per_cue=10)
    first = CueApiLite(settings, clock=clock, deliverer=deliverer)
    await first.start()
    key = await first.accounts.mint_key("long@example.com")
    async with first.client(key.api_key) as api:
        body = webhook_cue(schedule={"type": "recurring", "cron": "* * * * *"})
        cue = (await api.post("/v1/cues", json=body)).json()
    await first.aclose()
    clock.advance(3600 + 90)  # down for an hour: sixty per-minute occurrences
    app = CueApiLite(settings, clock=clock, deliverer=deliverer)
    await app.start()
    try:
        await app.settle()
        async with app.client(key.api_key) as api:
            rows = await all_executions(api, cue["id"])
        assert 1 < len(rows) <= 11
        # The newest occurrence (09:02, due just now) runs; the older rows kept are the
        # newest of the outage, missed.
        assert (rows[-1]["scheduled_for"], rows[-1]["status"]) == (
            "2026-06-01T09:02:00+00:00", "success",
        )  # fmt: skip
        assert rows[0]["status"] == "missed"
        assert rows[0]["scheduled_for"] > "2026-06-01T08:50"
        assert "not listed one by one" in rows[0]["error_message"]
        assert "2026-06-01T08:01:00+00:00" in rows[0]["error_message"]
    finally:
        await app.aclose()
