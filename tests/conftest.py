"""Fixtures: an in-process CueApiLite on a real SQLite file, a manual clock and a scripted
webhook transport. Nothing here sleeps: tests advance the clock and `settle()`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.mailer import Mailer
from cueapi_lite.services.accounts import NewKey
from cueapi_lite.webhooks import DeliveryFailed, WebhookRequest, WebhookResponse

# A separate project with its own pytest.ini, run in its own process by
# tests/e2e/test_pytest_plugin.py.
collect_ignore = ["sample_project"]

Script = Callable[[WebhookRequest], "WebhookResponse | Exception"]


class FakeDeliverer:
    """Records every request; `script` decides each answer (default 200 `{}`)."""

    def __init__(self) -> None:
        self.requests: list[WebhookRequest] = []
        self.script: Script = lambda _request: WebhookResponse(200, b"{}")

    def answer(self, *responses: WebhookResponse | Exception) -> None:
        """Answer with these in order, then keep repeating the last one."""
        queue = list(responses)

        def script(_request: WebhookRequest) -> WebhookResponse | Exception:
            return queue.pop(0) if len(queue) > 1 else queue[0]

        self.script = script

    async def send(self, request: WebhookRequest) -> WebhookResponse:
        self.requests.append(request)
        result = self.script(request)
        if isinstance(result, Exception):
            raise result
        return result

    async def close(self) -> None:
        pass


def status(code: int, body: Any = None) -> WebhookResponse:
    import json

    return WebhookResponse(code, b"" if body is None else json.dumps(body).encode())


def timeout() -> DeliveryFailed:
    return DeliveryFailed("Timed out after 30s")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def deliverer() -> FakeDeliverer:
    return FakeDeliverer()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db=str(tmp_path / "cueapi-lite.db"))


@pytest.fixture
def mailer() -> Mailer | None:
    """No mailer by default (the settings decide); tests of email override this."""
    return None


@pytest.fixture
async def lite(
    settings: Settings, clock: ManualClock, deliverer: FakeDeliverer, mailer: Mailer | None
) -> AsyncIterator[CueApiLite]:
    app = CueApiLite(settings, clock=clock, deliverer=deliverer, mailer=mailer)
    await app.start()
    try:
        yield app
    finally:
        await app.aclose()


@pytest.fixture
async def user(lite: CueApiLite) -> NewKey:
    return await lite.accounts.mint_key("alice@example.com")


@pytest.fixture
async def api(lite: CueApiLite, user: NewKey) -> AsyncIterator[httpx.AsyncClient]:
    async with lite.client(user.api_key) as client:
        yield client


def webhook_cue(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "nightly",
        "schedule": {"type": "recurring", "cron": "0 9 * * *", "timezone": "UTC"},
        "callback": {"url": "http://127.0.0.1:9999/hook"},
        "payload": {"task": "report"},
    }
    body.update(fields)
    return body
