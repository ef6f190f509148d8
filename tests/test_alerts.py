"""Alerts: consecutive failures, outcome deadlines, missed windows and verification
failures, sent by email through a real local SMTP server and as signed webhooks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cueapi import verify_webhook

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.services.accounts import NewKey

from .conftest import FakeDeliverer, status, webhook_cue
from .smtp import SmtpServer


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def settings(db_setting: str, smtp: SmtpServer) -> Settings:
    return Settings(
        db=db_setting, smtp_host="127.0.0.1", smtp_port=smtp.port,
        smtp_from="alerts@cueapi-lite.test",
    )  # fmt: skip


ALERT_HOOK = "http://127.0.0.1:9999/alerts"


async def alerts(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await api.get("/v1/alerts", params=params)
    assert response.status_code == 200
    return list(response.json()["alerts"])


def alert_requests(deliverer: FakeDeliverer) -> list[Any]:
    return [r for r in deliverer.requests if r.url == ALERT_HOOK]


async def make_cue(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await api.post("/v1/cues", json=webhook_cue(**fields))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def failing_cue(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "retry": {"max_attempts": 1, "backoff_minutes": [1]},
        "on_failure": {"email": True, "webhook": ALERT_HOOK},
    }
    body = webhook_cue(**{**defaults, **fields})
    response = await api.post("/v1/cues", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_three_failures_in_a_row_raise_one_alert_by_email_and_signed_webhook(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer,
    smtp: SmtpServer, user: NewKey,
) -> None:  # fmt: skip
    deliverer.script = lambda request: status(200) if request.url == ALERT_HOOK else status(500)
    cue = await failing_cue(api)
    fired = []
    for _ in range(4):
        fired.append((await api.post(f"/v1/cues/{cue['id']}/fire")).json()["id"])
        await lite.settle()
        clock.advance(1)
    [alert] = await alerts(api)
    assert alert["alert_type"] == "consecutive_failure"
    assert alert["severity"] == "critical"
    assert alert["execution_id"] == fired[2]  # the one that reached the threshold of 3
    assert alert["cue_id"] == cue["id"]
    assert alert["acknowledged"] is False

    [email] = smtp.wait_for(1)
    assert email["To"] == "alice@example.com"
    assert email["From"] == "alerts@cueapi-lite.test"
    assert email["Subject"] == f"[cueapi-lite] consecutive_failure: {cue['name']}"
    assert cue["id"] in email.get_payload()

    [hook] = alert_requests(deliverer)
    assert hook.body is not None
    body = json.loads(hook.body)
    assert body == {**alert, "event": "alert"}
    assert hook.headers["X-CueAPI-Event"] == "alert"
    assert verify_webhook(hook.body, hook.headers["X-CueAPI-Signature"], user.user.webhook_secret,
                          hook.headers["X-CueAPI-Timestamp"])  # fmt: skip


async def test_a_success_breaks_the_streak(
    api: httpx.AsyncClient, lite: CueApiLite, deliverer: FakeDeliverer, clock: ManualClock
) -> None:
    answers = iter([500, 500, 200, 500, 500])
    deliverer.script = lambda request: status(next(answers))
    cue = await failing_cue(api, on_failure={"email": False})
    for _ in range(5):
        await api.post(f"/v1/cues/{cue['id']}/fire")
        await lite.settle()
        clock.advance(1)
    assert await alerts(api) == []


async def test_reported_failures_count_as_failures(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    cue = await make_cue(api, alerts={"consecutive_failures": 2}, on_failure={"email": False})
    for _ in range(2):
        execution_id = (await api.post(f"/v1/cues/{cue['id']}/fire")).json()["id"]
        await lite.settle()
        clock.advance(1)
        await api.post(f"/v1/executions/{execution_id}/outcome", json={"success": False})
    [alert] = await alerts(api, alert_type="consecutive_failure")
    assert alert["execution_id"] == execution_id


async def test_no_outcome_by_the_deadline_is_unknown_with_an_alert(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, smtp: SmtpServer
) -> None:
    cue = await make_cue(api, delivery={"timeout_seconds": 10, "outcome_deadline_seconds": 120})
    execution_id = (await api.post(f"/v1/cues/{cue['id']}/fire")).json()["id"]
    await lite.settle()
    clock.advance(119)
    await lite.settle()
    assert (await api.get(f"/v1/executions/{execution_id}")).json()["outcome_state"] is None
    clock.advance(1)
    await lite.settle()
    stored = (await api.get(f"/v1/executions/{execution_id}")).json()
    assert (stored["outcome_state"], stored["outcome_success"], stored["outcome"]) == (
        "unknown", None, None,
    )  # fmt: skip
    [alert] = await alerts(api)
    assert (alert["alert_type"], alert["execution_id"]) == ("outcome_timeout", execution_id)
    assert smtp.wait_for(1)[0]["Subject"].startswith("[cueapi-lite] outcome_timeout")
    late = await api.post(f"/v1/executions/{execution_id}/outcome", json={"success": True})
    assert late.status_code == 200  # `unknown` is not an outcome: a late report replaces it
    assert (await api.get(f"/v1/executions/{execution_id}")).json()["outcome_state"] == (
        "reported_success"
    )


async def test_an_outcome_in_time_means_no_deadline_alert(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    cue = await make_cue(
        api,
    )
    execution_id = (await api.post(f"/v1/cues/{cue['id']}/fire")).json()["id"]
    await lite.settle()
    await api.post(f"/v1/executions/{execution_id}/outcome", json={"success": True})
    clock.advance(3600)
    await lite.settle()
    assert await alerts(api) == []


async def test_a_worker_outcome_deadline_runs_from_the_claim(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    cue = await make_cue(
        api,
        schedule={"type": "recurring", "cron": "0 0 1 1 *"},
        transport="worker",
        payload={"task": "t"},
        delivery={"outcome_deadline_seconds": 60},
    )
    execution_id = (await api.post(f"/v1/cues/{cue['id']}/fire")).json()["id"]
    clock.advance(600)  # waiting to be claimed does not count
    await lite.settle()
    await api.post(f"/v1/executions/{execution_id}/claim", json={"worker_id": "w1"})
    clock.advance(59)
    await lite.settle()
    assert (await api.get(f"/v1/executions/{execution_id}")).json()["outcome_state"] is None
    clock.advance(1)
    await lite.settle()
    assert (await api.get(f"/v1/executions/{execution_id}")).json()["outcome_state"] == "unknown"


async def test_a_recurring_cue_without_success_raises_missed_window(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    deliverer.answer(status(500))
    cue = await make_cue(
        api,
        schedule={"type": "recurring", "cron": "0 * * * *"},
        on_failure={"email": False},
        retry={"max_attempts": 1, "backoff_minutes": [1]},
        alerts={"consecutive_failures": 100, "missed_window_multiplier": 2},
    )
    created = clock.now_ms()
    clock.advance(2 * 3600 - 1)
    await lite.settle()
    assert await alerts(api, alert_type="missed_window") == []
    clock.advance(1)
    await lite.settle()
    [alert] = await alerts(api, alert_type="missed_window")
    assert alert["cue_id"] == cue["id"]
    assert alert["execution_id"] is None
    assert alert["created_at"] is not None
    assert clock.now_ms() - created == 2 * 3600 * 1000


async def test_successes_keep_the_missed_window_quiet(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    await api.post(
        "/v1/cues", json=webhook_cue(schedule={"type": "recurring", "cron": "0 * * * *"})
    )
    for _ in range(6):
        clock.advance(3600)
        await lite.settle()
    assert await alerts(api, alert_type="missed_window") == []


async def test_pause_on_failure_pauses_the_cue_when_an_alert_is_raised(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    cue = await make_cue(
        api, delivery={"outcome_deadline_seconds": 60}, on_failure={"email": False, "pause": True}
    )
    await api.post(f"/v1/cues/{cue['id']}/fire")
    await lite.settle()
    clock.advance(60)
    await lite.settle()
    detail = (await api.get(f"/v1/cues/{cue['id']}")).json()
    assert (detail["status"], detail["next_run"]) == ("paused", None)


async def test_alert_webhooks_are_retried_until_they_get_through(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    answers = iter([503, 200])
    deliverer.script = lambda r: status(next(answers)) if r.url == ALERT_HOOK else status(200)
    cue = await make_cue(
        api,
        delivery={"outcome_deadline_seconds": 30},
        on_failure={"email": False, "webhook": ALERT_HOOK},
    )
    await api.post(f"/v1/cues/{cue['id']}/fire")
    await lite.settle()
    clock.advance(30)
    await lite.settle()
    assert len(alert_requests(deliverer)) == 1
    clock.advance(59)
    await lite.settle()
    assert len(alert_requests(deliverer)) == 1
    clock.advance(1)
    await lite.settle()
    assert len(alert_requests(deliverer)) == 2
    clock.advance(3600)
    await lite.settle()
    assert len(alert_requests(deliverer)) == 2  # delivered: not sent again


async def test_alerts_are_listed_filtered_and_acknowledged(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    one = await make_cue(
        api, name="one", delivery={"outcome_deadline_seconds": 10}, on_failure={"email": False}
    )
    two = await make_cue(
        api, name="two", delivery={"outcome_deadline_seconds": 20}, on_failure={"email": False}
    )
    for cue in (one, two):
        await api.post(f"/v1/cues/{cue['id']}/fire")
    await lite.settle()
    clock.advance(10)
    await lite.settle()
    clock.advance(10)
    await lite.settle()
    listed = await alerts(api)
    assert [a["cue_id"] for a in listed] == [two["id"], one["id"]]  # newest first
    assert [a["cue_id"] for a in await alerts(api, cue_id=one["id"])] == [one["id"]]
    assert await alerts(api, alert_type="missed_window") == []
    since = listed[0]["created_at"]
    assert [a["cue_id"] for a in await alerts(api, since=since)] == [two["id"]]
    acked = await api.post(f"/v1/alerts/{listed[1]['id']}/acknowledge")
    assert acked.status_code == 200
    assert acked.json()["acknowledged"] is True
    first_time = acked.json()["acknowledged_at"]
    clock.advance(5)
    again = await api.post(f"/v1/alerts/{listed[1]['id']}/acknowledge")
    assert again.json()["acknowledged_at"] == first_time
    assert [a["cue_id"] for a in await alerts(api, acknowledged="true")] == [one["id"]]
    assert [a["cue_id"] for a in await alerts(api, acknowledged="false")] == [two["id"]]
    unknown = await api.post("/v1/alerts/00000000-0000-4000-8000-000000000000/acknowledge")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "alert_not_found")
    other = await lite.accounts.mint_key("other@example.com")
    async with lite.client(other.api_key) as stranger:
        assert (await stranger.get("/v1/alerts")).json()["total"] == 0
        stolen = await stranger.post(f"/v1/alerts/{listed[0]['id']}/acknowledge")
        assert stolen.status_code == 404


async def test_one_alert_per_cue_and_type_per_five_minutes(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    cue = await make_cue(
        api, delivery={"outcome_deadline_seconds": 10}, on_failure={"email": False}
    )
    for _ in range(3):
        await api.post(f"/v1/cues/{cue['id']}/fire")
        await lite.settle()
        clock.advance(10)
        await lite.settle()
    assert len(await alerts(api)) == 1
    clock.advance(300)
    await api.post(f"/v1/cues/{cue['id']}/fire")
    await lite.settle()
    clock.advance(10)
    await lite.settle()
    assert len(await alerts(api)) == 2


async def test_without_smtp_the_alert_is_kept_and_the_email_skipped(
    tmp_path: Path, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    app = CueApiLite(Settings(db=str(tmp_path / "nosmtp.db")), clock=clock, deliverer=deliverer)
    await app.start()
    try:
        key = await app.accounts.mint_key("nomail@example.com")
        async with app.client(key.api_key) as api:
            cue = await make_cue(api, delivery={"outcome_deadline_seconds": 10})
            await api.post(f"/v1/cues/{cue['id']}/fire")
            await app.settle()
            clock.advance(10)
            await app.settle()
            [alert] = await alerts(api)
        [row] = await app.store.alerts.outbox_of(alert["id"])
        assert (row["channel"], row["status"]) == ("email", "skipped")
        assert "SMTP" in row["last_error"]
    finally:
        await app.aclose()
