"""The store contract suite runs against every backend (`backend` is parametrized)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cueapi_lite.store import Store, store_for

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_setting(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A `db` setting naming an empty database of the backend."""
    if backend == "postgresql":
        return str(request.getfixturevalue("pg_databases").new())
    return str(tmp_path / "contract.db")


@pytest.fixture
async def store(db_setting: str) -> AsyncIterator[Store]:
    opened = store_for(db_setting)
    opened.open()
    try:
        yield opened
    finally:
        opened.close()
