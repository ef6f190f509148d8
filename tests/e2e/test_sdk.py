"""The official `cueapi-sdk` 0.1.3 against a real server on a real socket, delivering to a
real local receiver whose webhooks pass the SDK's own `verify_webhook`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cueapi import (
    AuthenticationError,
    CueAPI,
    CueAPIError,
    CueNotFoundError,
    InvalidScheduleError,
    verify_webhook,
)

from cueapi_lite.testing import LiveServer, ReceivedWebhook, WebhookReceiver

from .conftest import wait_until

pytestmark = pytest.mark.e2e


def test_whole_cue_lifecycle_through_the_official_sdk(tmp_path: Path) -> None:
    def respond(hook: ReceivedWebhook) -> tuple[int, Any]:
        if hook.json()["payload"].get("report") == "body":
            return 200, {"success": True, "result": "from the response body"}
        return 200, {"received": True}

    with LiveServer(str(tmp_path / "e2e.db")) as server, WebhookReceiver(respond) as receiver:
        key = server.mint_key("sdk@example.com")
        secret = key.user.webhook_secret
        client = CueAPI(key.api_key, base_url=server.base_url + "/")

        # Create a recurring cue and read it back.
        cue = client.cues.create(
            name="morning-brief",
            cron="0 9 * * *",
            timezone="America/Los_Angeles",
            callback=receiver.url + "/hook",
            payload={"task": "daily_brief"},
            description="brief",
            retry={"max_attempts": 2, "backoff_minutes": [1]},
            on_failure={"email": False},
        )
        assert cue.id.startswith("cue_")
        assert cue.status == "active"
        assert cue.next_run is not None
        assert cue.next_run.utcoffset() == timedelta(0)
        assert cue.next_run.astimezone(datetime.now().astimezone().tzinfo).minute == 0
        assert cue.on_failure is not None
        assert cue.on_failure.email is False
        assert client.cues.get(cue.id).name == "morning-brief"

        listed = client.cues.list(limit=10)
        assert [c.id for c in listed.cues] == [cue.id]
        assert listed.total == 1

        # update(cron=...) sends no timezone: the zone is kept.
        updated = client.cues.update(cue.id, cron="30 8 * * *")
        assert updated.schedule.cron == "30 8 * * *"
        assert updated.schedule.timezone == "America/Los_Angeles"
        assert client.cues.update(cue.id, timezone="Europe/Paris").schedule.cron == "30 8 * * *"

        paused = client.cues.pause(cue.id)
        assert paused.status == "paused"
        assert paused.next_run is None
        assert client.cues.list(status="paused").total == 1
        resumed = client.cues.resume(cue.id)
        assert resumed.status == "active"
        assert resumed.next_run is not None

        # A one-time cue "at now" fires at once and is delivered, signed.
        once = client.cues.create(
            name="right-now",
            at=datetime.now(UTC),
            callback=receiver.url + "/once",
            payload={"report": "body", "name": "Zoë ✓"},
        )
        [hook] = receiver.wait_for(1)
        assert hook.path == "/once"
        assert verify_webhook(
            payload=hook.body,
            signature=hook.headers["x-cueapi-signature"],
            secret=secret,
            timestamp=hook.headers["x-cueapi-timestamp"],
        )
        assert verify_webhook(hook.json(), hook.headers["x-cueapi-signature"], secret,
                              hook.headers["x-cueapi-timestamp"])  # fmt: skip
        assert not verify_webhook(hook.body, hook.headers["x-cueapi-signature"], "whsec_wrong",
                                  hook.headers["x-cueapi-timestamp"])  # fmt: skip
        body = hook.json()
        assert body["cue_id"] == once.id
        assert body["payload"] == {"report": "body", "name": "Zoë ✓"}
        assert hook.headers["x-cueapi-execution-id"] == body["execution_id"]

        # The response body's outcome is recorded, and the once cue completes.
        execution = wait_until(
            lambda: (e := client.executions.get(body["execution_id"]))["outcome_state"] and e
        )
        assert execution["status"] == "success"
        assert execution["outcome_state"] == "reported_success"
        assert execution["outcome"]["result"] == "from the response body"
        assert wait_until(lambda: client.cues.get(once.id).status == "completed")
        assert client.cues.get(once.id).run_count == 1

        # A second one-time cue whose outcome is reported through the API.
        second = client.cues.create(
            name="report-later", at=datetime.now(UTC), callback=receiver.url + "/later"
        )
        receiver.wait_for(2)
        later_id = receiver.received[1].json()["execution_id"]
        wait_until(lambda: client.executions.get(later_id)["status"] == "success")
        reported = client.executions.report_outcome(
            later_id, success=True, result="done", external_id="ext-9",
            result_url="https://example.com/r/9", summary="all good",
        )  # fmt: skip
        assert reported["outcome_state"] == "reported_success"
        with pytest.raises(CueAPIError) as duplicate:
            client.executions.report_outcome(later_id, success=False)
        assert duplicate.value.status_code == 409
        assert duplicate.value.code == "outcome_already_recorded"

        history = client.executions.list(cue_id=second.id)
        assert [e["id"] for e in history["executions"]] == [later_id]
        assert history["executions"][0]["outcome"]["external_id"] == "ext-9"
        assert client.executions.list(outcome_state="reported_success")["total"] == 2

        # The SDK's typed errors for the contract's status codes.
        with pytest.raises(InvalidScheduleError):
            client.cues.create(name="bad", cron="not a cron", callback=receiver.url)
        with pytest.raises(InvalidScheduleError):
            client.cues.create(name="bad-zone", cron="* * * * *", timezone="Mars/Base",
                               callback=receiver.url)  # fmt: skip
        with pytest.raises(CueNotFoundError):
            client.cues.get("cue_000000000000")
        with pytest.raises(CueNotFoundError):
            client.executions.get("00000000-0000-4000-8000-000000000000")
        with (
            CueAPI("cue_sk_" + "0" * 32, base_url=server.base_url) as stranger,
            pytest.raises(AuthenticationError),
        ):
            stranger.cues.list()

        assert client.cues.delete(cue.id) is None
        with pytest.raises(CueNotFoundError):
            client.cues.get(cue.id)
        client.close()


def test_failed_deliveries_show_in_history(tmp_path: Path) -> None:
    with (
        LiveServer(str(tmp_path / "fail.db")) as server,
        WebhookReceiver(lambda _hook: (500, {"error": "down"})) as receiver,
    ):
        key = server.mint_key()
        client = CueAPI(key.api_key, base_url=server.base_url)
        cue = client.cues.create(
            name="flaky", at=datetime.now(UTC), callback=receiver.url,
            retry={"max_attempts": 1, "backoff_minutes": [1]},
        )  # fmt: skip
        receiver.wait_for(1)
        executions = wait_until(
            lambda: (r := client.executions.list(cue_id=cue.id, status="failed"))["total"] and r
        )
        [execution] = executions["executions"]
        assert execution["http_status"] == 500
        assert execution["error_message"] == "Webhook endpoint returned 500"
        assert wait_until(lambda: client.cues.get(cue.id).status == "failed")
        client.close()
