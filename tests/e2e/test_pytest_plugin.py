"""The pytest fixtures cueapi-lite registers for other projects' test suites, and a
separate sample project that uses them from the installed package."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from cueapi import CueAPI, verify_webhook

from cueapi_lite.services.accounts import NewKey
from cueapi_lite.testing import LiveServer, WebhookReceiver

pytestmark = pytest.mark.e2e
SAMPLE_PROJECT = Path(__file__).resolve().parents[1] / "sample_project"


def test_the_plugin_fixtures_give_a_live_server_a_key_and_a_receiver(
    cueapi_lite_server: LiveServer, cueapi_lite_key: NewKey, webhook_receiver: WebhookReceiver
) -> None:
    with CueAPI(cueapi_lite_key.api_key, base_url=cueapi_lite_server.base_url) as client:
        # A minute ahead: a cue due at now() is due, and may be sent before the next line.
        a_minute_on = cueapi_lite_server.now() + timedelta(minutes=1)
        client.cues.create(name="plugin", at=a_minute_on, callback=webhook_receiver.url)
        assert webhook_receiver.received == []  # the clock stands still until advanced
        cueapi_lite_server.advance(minutes=1)
        [hook] = webhook_receiver.assert_received(1)
    assert hook.signature_valid is True
    assert verify_webhook(
        hook.body, hook.headers["x-cueapi-signature"], cueapi_lite_key.user.webhook_secret,
        hook.headers["x-cueapi-timestamp"],
    )  # fmt: skip


def test_advance_steps_through_every_retry_on_the_way(
    cueapi_lite_server: LiveServer, cueapi_lite_key: NewKey, webhook_receiver: WebhookReceiver
) -> None:
    answers = iter([(503, {}), (503, {}), (200, {"success": True, "result": "third time"})])
    webhook_receiver.respond = lambda _hook: next(answers)
    with CueAPI(cueapi_lite_key.api_key, base_url=cueapi_lite_server.base_url) as client:
        client.cues.create(name="flaky", at=cueapi_lite_server.now(), callback=webhook_receiver.url)
        cueapi_lite_server.advance(minutes=5)  # retries after 1 and 5 minutes: one so far
        assert [h.json()["attempt"] for h in webhook_receiver.assert_received(2)] == [1, 2]
        cueapi_lite_server.advance(minutes=5)
        hooks = webhook_receiver.assert_received(3)
        execution = client.executions.get(hooks[-1].execution_id)
    assert [h.json()["attempt"] for h in hooks] == [1, 2, 3]
    assert (execution["status"], execution["outcome"]["result"]) == ("success", "third time")


def test_a_delivery_signed_with_another_secret_fails_the_receivers_check(
    cueapi_lite_server: LiveServer, webhook_receiver: WebhookReceiver
) -> None:
    stranger = cueapi_lite_server.mint_key("stranger@example.com")  # another user's secret
    with CueAPI(stranger.api_key, base_url=cueapi_lite_server.base_url) as client:
        client.cues.create(name="other", at=cueapi_lite_server.now(), callback=webhook_receiver.url)
        cueapi_lite_server.advance()
    with pytest.raises(AssertionError, match="bad signature"):
        webhook_receiver.assert_received(1)
    assert webhook_receiver.received[0].signature_valid is False


def test_time_only_moves_forward(cueapi_lite_server: LiveServer) -> None:
    with pytest.raises(ValueError, match="forward"):
        cueapi_lite_server.advance(hours=-1)


def test_every_fixture_explains_itself_in_pytest_fixtures() -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "pytest", "--fixtures", "-p", "no:cacheprovider", "-q"],
        cwd=SAMPLE_PROJECT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stdout + listing.stderr
    section = listing.stdout.split("fixtures defined from cueapi_lite.pytest_plugin", 1)[1]
    section = section.split("\n", 1)[1].split("\n---", 1)[0]  # up to the next heading
    entries = {
        lines[0].split(" -- ")[0]: " ".join(lines[1:])
        for lines in (block.strip().splitlines() for block in section.split("\n\n"))
        if lines and " -- " in lines[0]
    }
    assert set(entries) >= {
        "cueapi_lite_server", "cueapi_lite_key", "webhook_receiver", "cueapi_lite_inprocess",
        "cueapi_lite_start", "cueapi_lite_settings",
    }  # fmt: skip
    for name, docstring in entries.items():
        assert len(docstring) > 40, name
        assert "no docstring" not in docstring, name


def test_a_separate_project_advances_a_day_and_sees_the_signed_webhook_and_outcome() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=SAMPLE_PROJECT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout


def test_the_readmes_dst_example_is_the_sample_projects_test() -> None:
    readme = (SAMPLE_PROJECT.parents[1] / "README.md").read_text()
    example = readme.split("```python\nimport pytest\n", 1)[1].split("```", 1)[0]
    assert "def test_a_daily_cue_fires_at_nine_local_time_across_the_dst_change" in example
    assert example in (SAMPLE_PROJECT / "test_daily_brief.py").read_text()
