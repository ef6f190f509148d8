"""`kill -9` of a real `cueapi-lite serve` process loses no occurrence that was due and
re-sends a delivery that was cut off (at-least-once, same execution id)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from cueapi_lite.testing import WebhookReceiver

from .serve import ServeProcess

pytestmark = pytest.mark.e2e


def test_occurrences_due_while_killed_run_exactly_once_after_restart(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    with WebhookReceiver() as receiver:
        first = ServeProcess(db)
        headers = {"Authorization": f"Bearer {first.api_key}"}
        due = datetime.now(UTC) + timedelta(seconds=2)
        with httpx.Client(base_url=first.base_url, headers=headers) as api:
            ids = [
                api.post("/v1/cues", json={
                    "name": f"due-{n}", "schedule": {"type": "once", "at": due.isoformat()},
                    "callback": {"url": f"{receiver.url}/{n}"},
                }).json()["id"]
                for n in range(3)
            ]  # fmt: skip
        first.kill()
        # The server is dead while the cues fall due: wait for the wall clock to pass them.
        while datetime.now(UTC) < due + timedelta(milliseconds=200):
            time.sleep(0.05)
        second = ServeProcess(db)
        try:
            hooks = receiver.wait_for(3)
            with httpx.Client(base_url=second.base_url, headers=headers) as api:
                for cue_id in ids:
                    history = api.get("/v1/executions", params={"cue_id": cue_id}).json()
                    assert history["total"] == 1, history
                    # Due while the server was down: run once by the catch_up policy.
                    assert history["executions"][0]["triggered_by"] == "catch_up"
            assert sorted(h.path for h in hooks) == ["/0", "/1", "/2"]
            assert len(receiver.received) == 3
        finally:
            assert second.stop() == 0


def test_a_delivery_cut_off_by_kill_is_sent_again(tmp_path: Path) -> None:
    db = tmp_path / "inflight.db"
    # The first request hangs (the server is killed while waiting); later ones answer.
    with WebhookReceiver(delay=lambda hook: 60.0 if hook.path == "/slow" else 0.0) as slow, \
            WebhookReceiver() as fast:  # fmt: skip
        first = ServeProcess(db)
        headers = {"Authorization": f"Bearer {first.api_key}"}
        with httpx.Client(base_url=first.base_url, headers=headers) as api:
            cue = api.post("/v1/cues", json={
                "name": "in-flight", "schedule": {"type": "recurring", "cron": "0 0 1 1 *"},
                "callback": {"url": f"{slow.url}/slow"},
            }).json()  # fmt: skip
            execution = api.post(f"/v1/cues/{cue['id']}/fire").json()
        [hung] = slow.wait_for(1)
        first.kill()
        second = ServeProcess(db)
        try:
            with httpx.Client(base_url=second.base_url, headers=headers) as api:
                # Point the cue at a healthy endpoint; the interrupted attempt goes there.
                api.patch(f"/v1/cues/{cue['id']}", json={"callback": {"url": f"{fast.url}/ok"}})
            # The restart may re-send before or after the patch; either endpoint counts.
            deadline = time.monotonic() + 20
            while len(slow.received) + len(fast.received) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            resent = (fast.received or slow.received[1:])[0]
            assert resent.json()["execution_id"] == execution["id"] == hung.json()["execution_id"]
            assert resent.headers["x-cueapi-attempt"] == "1"
        finally:
            second.kill()
