"""A second `cueapi-lite serve` on the same SQLite file refuses to start and names the
first; the lock goes with the first process, even when it is killed with `kill -9`."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cueapi_lite.store.lock import running_server

from .serve import ServeProcess

pytestmark = pytest.mark.e2e


def _second_serve(db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cueapi_lite", "serve", "--port", "0", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_second_server_on_the_same_file_refuses_and_names_the_first(tmp_path: Path) -> None:
    db = tmp_path / "one.db"
    with ServeProcess(db) as first:
        info = running_server(str(db))
        assert info is not None
        assert (info.pid, info.host) == (first.process.pid, socket.gethostname())
        second = _second_serve(db)
        assert second.returncode != 0
        assert "already running" in second.stderr
        assert f"pid {first.process.pid} on {socket.gethostname()}" in second.stderr
        assert f"started {info.started_at}" in second.stderr
        assert "Ready." not in second.stdout
        assert first.process.poll() is None  # the first one is untouched
        first.stop()
    assert running_server(str(db)) is None


def test_after_kill_9_the_next_server_starts(tmp_path: Path) -> None:
    db = tmp_path / "killed.db"
    first = ServeProcess(db)
    first.kill()
    assert running_server(str(db)) is None  # the OS dropped the lock with the process
    with ServeProcess(db) as second:
        info = running_server(str(db))
        assert info is not None
        assert info.pid == second.process.pid
        assert second.stop() == 0
