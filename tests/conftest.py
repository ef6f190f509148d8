"""Fixtures: an in-process CueApiLite on a real SQLite file, a manual clock and a scripted
webhook transport. Nothing here sleeps: tests advance the clock and `settle()`."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.mailer import Mailer
from cueapi_lite.services.accounts import NewKey
from cueapi_lite.webhooks import DeliveryFailed, WebhookRequest, WebhookResponse
from tests.pgcluster import HOW_TO_ENABLE, Cluster, Databases, find_bin_dir

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


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[Databases]:
    """A PostgreSQL cluster for the session (from the system's binaries). Without
    them the PostgreSQL variants skip, saying how to enable them, except in CI."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI. {HOW_TO_ENABLE}")
        pytest.skip(HOW_TO_ENABLE)
    cluster = Cluster(bin_dir).start()
    try:
        yield Databases(cluster)
    finally:
        cluster.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def deliverer() -> FakeDeliverer:
    return FakeDeliverer()


# `CUEAPI_LITE_TEST_BACKEND=postgresql` runs the suite against PostgreSQL instead.
BACKEND = os.environ.get("CUEAPI_LITE_TEST_BACKEND", "sqlite")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if BACKEND == "sqlite":
        return
    skip = pytest.mark.skip(reason="opens the SQLite file itself")
    for item in items:
        if item.get_closest_marker("sqlite_file"):
            item.add_marker(skip)


@pytest.fixture
def db_setting(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A `db` setting naming a new, empty database of the backend under test."""
    if BACKEND == "postgresql":
        return str(request.getfixturevalue("pg_databases").new())
    return str(tmp_path / "cueapi-lite.db")


@pytest.fixture
def settings(db_setting: str) -> Settings:
    if BACKEND == "postgresql":
        # A node renews its lease in real time, and each renewal is a write that moves
        # the dashboard's live version; the cluster tests cover leases with short ones.
        return Settings(db=db_setting, node_lease_s=3600)
    return Settings(db=db_setting)


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
