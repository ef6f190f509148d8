"""One running instance per SQLite file (the lock on `<db>.lock`); many on PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.store.lock import AlreadyRunning, ServerLock, lock_path, running_server


@pytest.mark.sqlite_file
async def test_a_second_instance_on_the_same_file_does_not_start(
    settings: Settings, clock: ManualClock
) -> None:
    first = CueApiLite(settings, clock=clock)
    await first.start()
    second = CueApiLite(settings, clock=clock)
    try:
        with pytest.raises(AlreadyRunning, match=rf"pid {os.getpid()} on .*started 20"):
            await second.start()
        assert not second.started
    finally:
        await first.aclose()
    await second.start()  # the first one let go
    await second.aclose()


def test_running_server_reports_the_holder_and_nothing_once_released(tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    assert running_server(db) is None  # no lock file yet
    lock = ServerLock(db)
    info = lock.acquire("2026-01-02T03:04:05+00:00")
    assert running_server(db) == info
    assert info.pid == os.getpid()
    lock.release()
    assert lock_path(db).exists()
    assert running_server(db) is None


def test_a_lock_file_written_by_something_else_still_counts_as_held(tmp_path: Path) -> None:
    db = str(tmp_path / "y.db")
    lock = ServerLock(db)
    lock.acquire("2026-01-02T03:04:05+00:00")
    lock_path(db).write_text("not json")
    try:
        with pytest.raises(AlreadyRunning, match="did not say who it is"):
            ServerLock(db).acquire("2026-01-02T03:04:06+00:00")
        held = running_server(db)
        assert held is not None
        assert held.pid == 0
    finally:
        lock.release()


async def test_servers_on_one_postgresql_database_all_start_as_nodes(
    pg_databases: Any, clock: ManualClock
) -> None:
    settings = Settings(db=pg_databases.new())
    first = CueApiLite(settings, clock=clock)
    second = CueApiLite(settings, clock=clock)
    await first.start()
    await second.start()
    try:
        assert first.store.nodes is not None
        nodes = await first.store.nodes.nodes()
        assert {n.id for n in nodes} == {first.store.nodes.node_id, second.store.nodes.node_id}
        assert all(n.alive and n.pid == os.getpid() for n in nodes)
    finally:
        await second.aclose()
    # A node that stops removes itself: the others adopt its work at once.
    assert [n.id for n in await first.store.nodes.nodes()] == [first.store.nodes.node_id]
    await first.aclose()
