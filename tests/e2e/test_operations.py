"""A real `cueapi-lite serve`: the banner names the first user, a failing webhook shows
in its log and in /metrics, and JSON logs are one object per line."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ..helpers import unused_port
from .serve import ServeProcess

pytestmark = pytest.mark.e2e


def attempts_by_result(text: str) -> dict[str, float]:
    for family in text_string_to_metric_families(text):
        if family.name == "cueapi_lite_delivery_attempts":
            return {s.labels["result"]: s.value for s in family.samples}
    return {}


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_failing_webhook_shows_in_the_log_and_in_metrics(tmp_path: Path, log_format: str) -> None:
    server = ServeProcess(tmp_path / "ops.db", "--log-format", log_format)
    try:
        assert "  email:           admin@local\n" in server.banner
        assert f"  database:        {tmp_path / 'ops.db'}\n" in server.banner
        headers = {"Authorization": f"Bearer {server.api_key}"}
        with httpx.Client(base_url=server.base_url, headers=headers) as api:
            cue = api.post("/v1/cues", json={
                "name": "down", "schedule": {"type": "recurring", "cron": "0 0 1 1 *"},
                "callback": {"url": f"http://127.0.0.1:{unused_port()}/hook"}})  # fmt: skip
            assert cue.status_code == 201, cue.text
            fired = api.post(f"/v1/cues/{cue.json()['id']}/fire", json={})
            line = server.wait_for_log(fired.json()["id"] + " (cue down) attempt 1 of 3")
            metrics = api.get("/metrics")
        assert metrics.status_code == 200
        assert attempts_by_result(metrics.text) == {"error": 1.0}
        if log_format == "json":
            record = json.loads(line)
            assert record["level"] == "WARNING"
            assert record["event"] == "delivery_attempt"
            assert record["attempt"] == 1
            assert record["max_attempts"] == 3
            assert record["host"] == "127.0.0.1"
            assert record["retry_at"]
        else:
            assert " WARNING cueapi_lite.delivery delivery failed: execution " in line
            assert "; retry 2 of 3 at " in line
    finally:
        assert server.stop() == 0
