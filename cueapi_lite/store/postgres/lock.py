"""One running server per PostgreSQL database (until clustering lets several share one):
a session advisory lock, held on a connection of its own for as long as the server runs.

PostgreSQL drops the lock when that connection ends, however the server ends. The
holder names itself in its connection's `application_name`, so a second server can say
whom it found (pid, host, start time) from `pg_stat_activity`.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

import psycopg

from ..lock import AlreadyRunning, ServerInfo
from .db import redacted

__all__ = ["PgServerLock"]

_KEY = 0x63756562  # "cueb": the server lock (migrations use another key)


class PgServerLock:
    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection[Any] | None = None

    def acquire(self, started_at: str) -> ServerInfo:
        info = ServerInfo(os.getpid(), socket.gethostname(), started_at)
        name = f"cueapi-lite {info.pid} {info.host} {info.started_at}"[:63]
        conn = psycopg.connect(self.url, autocommit=True, application_name=name)
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_KEY,)).fetchone()
        if row is not None and row[0]:
            self._conn = conn
            return info
        holder = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted",
            (_KEY,),
        ).fetchone()
        conn.close()
        raise AlreadyRunning(redacted(self.url), _parse(holder[0] if holder else ""))

    def release(self) -> None:
        if self._conn is not None:
            # Unlocked before the session ends: a server started right after this one
            # must not find the lock still held by a session the database is closing.
            with contextlib.suppress(psycopg.Error):
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (_KEY,))
            self._conn.close()
            self._conn = None


def _parse(application_name: str) -> ServerInfo | None:
    parts = application_name.split(" ", 3)
    if len(parts) != 4 or parts[0] != "cueapi-lite" or not parts[1].isdigit():
        return None
    return ServerInfo(int(parts[1]), parts[2], parts[3])
