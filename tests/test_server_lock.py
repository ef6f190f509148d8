"""One running instance per database file (the lock on `<db>.lock`)."""

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


async def test_a_second_server_on_one_postgresql_database_does_not_start(
    pg_databases: Any, clock: ManualClock
) -> None:
    settings = Settings(db=pg_databases.new())
    first = CueApiLite(settings, clock=clock)
    await first.start()
    second = CueApiLite(settings, clock=clock)
    try:
        with pytest.raises(
            AlreadyRunning, match=rf"already running on postgresql://.*\(pid {os.getpid()} on "
        ):
            await second.start()
    finally:
        await first.aclose()
    await second.start()  # the first one's session ended, and its lock with it
    await second.aclose()
