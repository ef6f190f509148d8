"""The pytest fixtures cueapi-lite registers for other projects' test suites."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cueapi import CueAPI, verify_webhook

from cueapi_lite.services.accounts import NewKey
from cueapi_lite.testing import LiveServer, WebhookReceiver

pytestmark = pytest.mark.e2e


def test_the_plugin_fixtures_give_a_live_server_a_key_and_a_receiver(
    cueapi_lite_server: LiveServer, cueapi_lite_key: NewKey, webhook_receiver: WebhookReceiver
) -> None:
    with CueAPI(cueapi_lite_key.api_key, base_url=cueapi_lite_server.base_url) as client:
        client.cues.create(name="plugin", at=datetime.now(UTC), callback=webhook_receiver.url)
        [hook] = webhook_receiver.wait_for(1)
    assert verify_webhook(
        hook.body, hook.headers["x-cueapi-signature"], cueapi_lite_key.user.webhook_secret,
        hook.headers["x-cueapi-timestamp"],
    )  # fmt: skip
