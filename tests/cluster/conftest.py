"""Nodes of one cluster in this process: each a `CueApiLite` on one new PostgreSQL
database, sharing the test's manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from cueapi_lite import CueApiLite, ManualClock, Settings

from ..conftest import FakeDeliverer

NODES = 3


@pytest.fixture
def cluster_settings(pg_databases: Any) -> Settings:
    return Settings(db=pg_databases.new())


@pytest.fixture
async def nodes(cluster_settings: Settings, clock: ManualClock) -> AsyncIterator[list[CueApiLite]]:
    apps = [
        CueApiLite(cluster_settings, clock=clock, deliverer=FakeDeliverer()) for _ in range(NODES)
    ]
    try:
        for app in apps:
            await app.start()
        yield apps
    finally:
        for app in apps:
            await app.aclose()
