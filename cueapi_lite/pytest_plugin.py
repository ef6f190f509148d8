"""pytest fixtures for projects that test against cueapi-lite (entry point `pytest11`).

* `cueapi_lite_server`: a live server on an ephemeral port with a fresh database.
* `cueapi_lite_key`: an API key (and webhook secret) on that server.
* `webhook_receiver`: a real local HTTP endpoint recording every webhook.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .services.accounts import NewKey
from .testing import LiveServer, WebhookReceiver


@pytest.fixture
def cueapi_lite_server(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(str(tmp_path / "cueapi-lite.db")) as server:
        yield server


@pytest.fixture
def cueapi_lite_key(cueapi_lite_server: LiveServer) -> NewKey:
    return cueapi_lite_server.mint_key("tests@example.com")


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver
