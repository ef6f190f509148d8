"""Prometheus /metrics: the families the issue lists, counted from what happened, route
templates (not raw paths) for HTTP, and who may scrape."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cueapi_lite import CueApiLite, ManualClock, Settings

from .conftest import FakeDeliverer, status, webhook_cue

TOKEN = "scrape-token-0123456789"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def scrape(lite: CueApiLite) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with lite.client() as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return samples(response.text)


async def test_a_failing_webhook_shows_in_the_log_and_in_metrics(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO)
    cue = (await api.post("/v1/cues", json=webhook_cue())).json()
    deliverer.answer(status(502))
    await api.post(f"/v1/cues/{cue['id']}/fire", json={})
    await lite.settle()
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("Webhook endpoint returned 502" in line for line in warning)
    found = await scrape(lite)
    assert found[("cueapi_lite_delivery_attempts_total", (("result", "http_error"),))] == 1
    assert found[("cueapi_lite_delivery_retries_scheduled_total", ())] == 1
    assert found[("cueapi_lite_retries_pending", ())] == 1
    assert (
        found[("cueapi_lite_executions", (("outcome_state", "none"), ("status", "retrying")))] == 1
    )
    assert found[("cueapi_lite_delivery_duration_seconds_count", ())] == 1
    assert found[("cueapi_lite_scheduler_heap_entries", ())] >= 1
    assert found[("cueapi_lite_database_bytes", (("file", "db"),))] > 0


async def test_fires_outcomes_and_lateness_are_counted(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    body = webhook_cue(schedule={"type": "recurring", "cron": "* * * * *"})
    await api.post("/v1/cues", json=body)
    deliverer.answer(status(200, {"success": True}))
    for _ in range(3):
        clock.advance(60)
        await lite.settle()
    found = await scrape(lite)
    assert found[("cueapi_lite_fires_total", (("triggered_by", "schedule"),))] == 3
    assert found[("cueapi_lite_fire_lateness_seconds_count", ())] == 3
    assert found[("cueapi_lite_delivery_attempts_total", (("result", "delivered"),))] == 3
    assert found[("cueapi_lite_outcomes_total", (("outcome_state", "reported_success"),))] == 3
    executions = ("cueapi_lite_executions",
                  (("outcome_state", "reported_success"), ("status", "success")))  # fmt: skip
    assert found[executions] == 3
    assert found[("cueapi_lite_writer_commit_seconds_count", ())] > 0


async def test_http_requests_are_counted_by_route_template_not_path(
    api: httpx.AsyncClient, lite: CueApiLite
) -> None:
    for n in range(2):
        await api.get(f"/v1/cues/cue_missing{n}")
    await api.get("/no/such/path")
    await api.request("BREW", "/v1/cues")
    found = await scrape(lite)
    key = ("method", "GET"), ("route", "/v1/cues/{cue_id}"), ("status", "404")
    assert found[("cueapi_lite_http_requests_total", key)] == 2
    unmatched = ("method", "GET"), ("route", "unmatched"), ("status", "404")
    assert found[("cueapi_lite_http_requests_total", unmatched)] == 1
    latency = ("cueapi_lite_http_request_duration_seconds_count", (("route", "/v1/cues/{cue_id}"),))
    assert found[latency] == 2
    assert not any("cue_missing" in str(labels) for _name, labels in found)
    brew = ("method", "other"), ("route", "/v1/cues"), ("status", "405")
    assert found[("cueapi_lite_http_requests_total", brew)] == 1


async def test_claims_lease_expiries_and_alerts_are_counted(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    cue = await api.post("/v1/cues", json={
        "name": "sync", "schedule": {"type": "recurring", "cron": "0 0 1 1 *"},
        "transport": "worker", "payload": {"task": "sync"}, "retry": {"max_attempts": 1},
        "alerts": {"consecutive_failures": 1}})  # fmt: skip
    fired = await api.post(f"/v1/cues/{cue.json()['id']}/fire", json={})
    await api.post(f"/v1/executions/{fired.json()['id']}/claim", json={"worker_id": "ghost"})
    clock.advance(900)
    await lite.settle()
    found = await scrape(lite)
    assert found[("cueapi_lite_claims_total", ())] == 1
    assert found[("cueapi_lite_lease_expiries_total", (("status", "failed"),))] == 1
    alert = (("alert_type", "consecutive_failure"),)
    assert found[("cueapi_lite_alerts_raised_total", alert)] == 1
    assert found[("cueapi_lite_alerts", alert)] == 1
    skipped = ("channel", "email"), ("result", "skipped")
    assert found[("cueapi_lite_alert_notifications_total", skipped)] == 2  # both alerts
    assert found[("cueapi_lite_alert_outbox_pending", ())] == 0


async def test_metrics_refuse_clients_beyond_loopback_without_a_token(lite: CueApiLite) -> None:
    transport = httpx.ASGITransport(app=lite.asgi, client=("203.0.113.7", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
        response = await client.get("/metrics")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "metrics_forbidden"


async def test_with_a_token_every_client_must_send_it(
    tmp_path: Path, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    lite = CueApiLite(Settings(db=str(tmp_path / "m.db"), metrics_token=TOKEN), clock=clock,
                      deliverer=deliverer)  # fmt: skip
    await lite.start()
    try:
        for client_address in ("127.0.0.1", "203.0.113.7"):
            transport = httpx.ASGITransport(app=lite.asgi, client=(client_address, 5000))
            async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
                assert (await client.get("/metrics")).status_code == 401
                wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
                assert wrong.status_code == 401
                right = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
                assert right.status_code == 200
                assert "cueapi_lite_fires_total" in right.text
    finally:
        await lite.aclose()


async def test_metrics_can_be_turned_off(tmp_path: Path, clock: ManualClock) -> None:
    lite = CueApiLite(Settings(db=str(tmp_path / "m.db"), metrics=False), clock=clock)
    await lite.start()
    try:
        async with lite.client() as client:
            assert (await client.get("/metrics")).status_code == 404
    finally:
        await lite.aclose()


def test_a_short_metrics_token_is_refused() -> None:
    with pytest.raises(ValueError, match="metrics_token"):
        Settings(metrics_token="short")
