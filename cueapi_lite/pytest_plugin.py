"""pytest fixtures for projects that test against cueapi-lite (entry point `pytest11`).

* `cueapi_lite_server`: a live server on a free port and a fresh database, on a manual
  clock that `cueapi_lite_server.advance(hours=24)` moves.
* `cueapi_lite_key`: an API key (and webhook secret) on that server.
* `webhook_receiver`: a real local endpoint that records deliveries and checks signatures.
* `cueapi_lite_inprocess`: the same server in the test's event loop, no sockets (needs
  pytest-asyncio).
* `cueapi_lite_start`, `cueapi_lite_settings`: override these to pin the clock's start
  or change settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from .services.accounts import NewKey
from .testing import InProcessServer, LiveServer, WebhookReceiver, manual_clock


@pytest.fixture
def cueapi_lite_start() -> str | datetime | None:
    """Where the servers' manual clock starts: an ISO 8601 instant with an offset, or an
    aware datetime. None (the default) means the current time. Override this fixture to
    pin a date, e.g. the day before a DST change."""
    return None


@pytest.fixture
def cueapi_lite_settings() -> dict[str, Any]:
    """Extra `cueapi_lite.Settings` for the server fixtures (e.g. `{"lease_s": 60}`).
    Override this fixture to change them."""
    return {}


@pytest.fixture
def cueapi_lite_server(
    tmp_path: Path, cueapi_lite_start: str | datetime | None, cueapi_lite_settings: dict[str, Any]
) -> Iterator[LiveServer]:
    """A real cueapi-lite on 127.0.0.1 (free port, fresh database) for synchronous
    clients such as the official SDK (`base_url`). Its clock is manual: time stands still
    until `cueapi_lite_server.advance(hours=24)`, which returns once everything due up to
    then has fired, been delivered to real receivers and settled."""
    db = str(tmp_path / "cueapi-lite.db")
    with LiveServer(db, clock=manual_clock(cueapi_lite_start), **cueapi_lite_settings) as server:
        yield server


@pytest.fixture
def cueapi_lite_key(cueapi_lite_server: LiveServer) -> NewKey:
    """A new API key on `cueapi_lite_server` (`.api_key`), for the user whose webhook
    secret is `.user.webhook_secret`."""
    return cueapi_lite_server.mint_key("tests@example.com")


@pytest.fixture
def webhook_receiver(cueapi_lite_key: NewKey) -> Iterator[WebhookReceiver]:
    """A real HTTP endpoint on 127.0.0.1 (`.url`) that records every delivery and checks
    its signature with the webhook secret of `cueapi_lite_key`. `wait_for(n)` and
    `assert_received(n)` return the deliveries (failing on a bad signature);
    `answer(status, body)` and `answer_outcome(success, result=...)` set the answer."""
    with WebhookReceiver(secret=cueapi_lite_key.user.webhook_secret) as receiver:
        yield receiver


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the in-process fixture needs pytest-asyncio
    pass
else:

    @pytest_asyncio.fixture
    async def cueapi_lite_inprocess(
        tmp_path: Path,
        cueapi_lite_start: str | datetime | None,
        cueapi_lite_settings: dict[str, Any],
    ) -> AsyncIterator[InProcessServer]:
        """cueapi-lite in the test's event loop on a manual clock, with no sockets:
        `client(key)` calls the API in-process, deliveries are recorded by `.webhooks`
        (signatures checked with the secret of the last `mint_key()`), and
        `await cueapi_lite_inprocess.advance(hours=24)` moves time and settles."""
        db = str(tmp_path / "cueapi-lite-inprocess.db")
        async with InProcessServer(db, start=cueapi_lite_start, **cueapi_lite_settings) as server:
            yield server
