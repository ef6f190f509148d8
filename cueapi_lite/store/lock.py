"""One running server per SQLite file: an `flock` on the sidecar `<db>.lock` file.

The server that holds the lock writes who it is (pid, host, start time) into the file;
a second server reads that to say whom it found. The operating system releases the lock
when its process ends in any way (`kill -9` included), so a stale file never blocks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import socket
from pathlib import Path

__all__ = ["AlreadyRunning", "ServerInfo", "ServerLock", "lock_path", "running_server"]


@dataclasses.dataclass(frozen=True, slots=True)
class ServerInfo:
    """Who holds a database file's lock."""

    pid: int
    host: str
    started_at: str  # ISO 8601, UTC

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started_at}"


class AlreadyRunning(RuntimeError):
    """Another server already runs on this database file (`info` says which, if known)."""

    def __init__(self, path: str, info: ServerInfo | None) -> None:
        who = info.describe() if info else "a process that did not say who it is"
        super().__init__(
            f"another cueapi-lite server is already running on {path} ({who});"
            " stop it first, or give this one its own --db"
        )
        self.path = path
        self.info = info


def lock_path(db_path: str) -> Path:
    return Path(f"{db_path}.lock")


def _read(handle: int) -> ServerInfo | None:
    os.lseek(handle, 0, os.SEEK_SET)
    raw = os.read(handle, 4096)
    try:
        data = json.loads(raw)
        return ServerInfo(int(data["pid"]), str(data["host"]), str(data["started_at"]))
    except (ValueError, KeyError, TypeError):
        return None  # empty (the holder is between open and write) or not ours


def running_server(db_path: str) -> ServerInfo | None:
    """The server running on `db_path`, or None when none is. Takes no lock of its own
    for longer than the test (tools such as backup call this before touching the file)."""
    path = lock_path(db_path)
    try:
        handle = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(handle) or ServerInfo(0, "unknown", "unknown")
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None
    finally:
        os.close(handle)


class ServerLock:
    """Held by a running server for its database file, from `acquire()` to `release()`."""

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self._handle: int | None = None

    def acquire(self, started_at: str) -> ServerInfo:
        """Take the lock and record this process (started at `started_at`, ISO 8601) in
        it; raises AlreadyRunning when another process holds it."""
        path = lock_path(self.db_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read(handle)
            os.close(handle)
            raise AlreadyRunning(self.db_path, info) from None
        info = ServerInfo(os.getpid(), socket.gethostname(), started_at)
        body = json.dumps(dataclasses.asdict(info)).encode()
        os.ftruncate(handle, 0)
        os.pwrite(handle, body, 0)
        self._handle = handle
        return info

    def release(self) -> None:
        """Give the lock up (the file stays; an unlocked file means nobody runs)."""
        if self._handle is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._handle, 0)
        os.close(self._handle)  # closing the descriptor drops the flock
        self._handle = None
