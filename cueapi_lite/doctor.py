"""`cueapi-lite doctor`: checks that say, one line each, what is wrong and how to fix it.

Each check is a small function returning `Check` lines; `run` gathers them for one
database and settings. Nothing here changes the database (it is opened read-only) and no
request is sent to a callback: reachability is a DNS lookup and a TCP connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import socket
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from .clock import Clock
from .config import Settings
from .store import is_postgres
from .store.lock import running_server
from .store.sqlite.inspect import (
    active_callback_urls,
    applied_migrations,
    open_read_only,
    quick_check,
)
from .store.sqlite.migrations import MIGRATIONS

__all__ = ["Check", "render", "run"]

WAL_LIMIT_BYTES = 256 * 1024 * 1024
CLOCK_SAMPLE_S = 0.2
CLOCK_TOLERANCE_MS = 100
CONNECT_TIMEOUT_S = 3.0


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None

    def line(self) -> str:
        mark = "✓" if self.ok else "✗"
        text = f"{mark} {self.name}: {self.detail}"
        return text if self.ok or not self.fix else f"{text}\n    fix: {self.fix}"


def render(checks: list[Check]) -> str:
    return "\n".join(check.line() for check in checks)


def _database(db: str) -> tuple[list[Check], list[str] | None]:
    """Integrity, schema version and WAL size; the active callback URLs when readable."""
    if not Path(db).is_file():
        return [
            Check(
                "database",
                False,
                f"no database at {db}",
                "start the server once (cueapi-lite serve --db FILE) or pass --db",
            )
        ], None
    checks = []
    try:
        conn = open_read_only(db)
        try:
            result = quick_check(conn)
            names = applied_migrations(conn)
            urls = active_callback_urls(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return [
            Check(
                "database integrity",
                False,
                f"{db}: {exc}",
                "restore the newest backup: cueapi-lite restore BACKUP --db FILE",
            )
        ], None
    checks.append(
        Check(
            "database integrity",
            result == "ok",
            f"quick_check {result} ({db})",
            "restore the newest backup: cueapi-lite restore BACKUP --db FILE",
        )
    )
    known = [name for name, _sql in MIGRATIONS]
    unknown = sorted(set(names) - set(known))
    missing = [name for name in known if name not in names]
    if unknown:
        checks.append(
            Check(
                "schema version",
                False,
                f"written by a newer cueapi-lite ({', '.join(unknown)})",
                "upgrade cueapi-lite: pip install -U cueapi-lite",
            )
        )
    elif missing:
        checks.append(
            Check(
                "schema version",
                False,
                f"{len(missing)} migration(s) not applied",
                "start the server once: it applies them",
            )
        )
    else:
        checks.append(Check("schema version", True, f"{known[-1]} ({len(known)} migrations)"))
    wal = Path(f"{db}-wal")
    size = wal.stat().st_size if wal.exists() else 0
    checks.append(
        Check(
            "write-ahead log",
            size < WAL_LIMIT_BYTES,
            f"{size / 1e6:.1f} MB",
            "a long-running reader blocks checkpoints; restart the server",
        )
    )
    return checks, urls


def _time_zones() -> Check:
    try:
        version = f"tzdata {importlib.import_module('tzdata').IANA_VERSION}"
    except (ImportError, AttributeError):  # pragma: no cover - a dependency
        version = "system zoneinfo"
    try:
        ZoneInfo("America/New_York")
    except Exception as exc:
        return Check("time-zone database", False, f"{version}: {exc}", "pip install -U tzdata")
    return Check("time-zone database", True, version)


async def _clock(clock: Clock) -> Check:
    wall, mono = clock.now_ms(), clock.monotonic_ms()
    await asyncio.sleep(CLOCK_SAMPLE_S)
    drift = (clock.now_ms() - wall) - (clock.monotonic_ms() - mono)
    ok = abs(drift) <= CLOCK_TOLERANCE_MS
    return Check(
        "system clock",
        ok,
        f"wall clock moved {drift:+d} ms against the monotonic clock in {CLOCK_SAMPLE_S:g} s",
        "the clock is being stepped: check NTP (timedatectl status)",
    )


async def _connect(host: str, port: int) -> str | None:
    """None when a TCP connection opens, else why not."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"DNS lookup failed ({exc.strerror})"
    if not infos:
        return "DNS lookup found no address"
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), CONNECT_TIMEOUT_S
        )
    except TimeoutError:
        return f"no TCP answer within {CONNECT_TIMEOUT_S:g} s"
    except OSError as exc:
        return f"TCP connect failed ({exc.strerror or exc})"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


async def _smtp(settings: Settings) -> Check | None:
    if not settings.smtp_host:
        return None
    target = f"{settings.smtp_host}:{settings.smtp_port}"
    error = await _connect(settings.smtp_host, settings.smtp_port)
    return Check(
        "SMTP server",
        error is None,
        f"{target} {error or 'accepts connections'}",
        "check CUEAPI_LITE_SMTP_HOST / CUEAPI_LITE_SMTP_PORT",
    )


async def _callbacks(urls: list[str]) -> list[Check]:
    targets: set[tuple[str, int]] = set()
    for url in urls:
        with contextlib.suppress(ValueError):
            parts = urlsplit(url)
            if parts.hostname:
                targets.add(
                    (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
                )
    ordered = sorted(targets)
    errors = await asyncio.gather(*(_connect(host, port) for host, port in ordered))
    checks = [
        Check(
            f"callback host {host}:{port}",
            error is None,
            error or "reachable",
            "start the receiver, or update the cues that call it",
        )
        for (host, port), error in zip(ordered, errors, strict=True)
    ]
    if not checks:
        checks.append(Check("callback hosts", True, "no active webhook cues"))
    return checks


def _server(settings: Settings) -> tuple[Check, bool]:
    info = running_server(settings.db)
    if info is None:
        return Check("server", True, "no server is running on this database"), False
    return Check("server", True, f"running on this database ({info.describe()})"), True


def _port(settings: Settings, server_running: bool) -> Check:
    where = f"{settings.host}:{settings.port}"
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((settings.host, settings.port))
        except OSError as exc:
            if server_running:
                return Check("port", True, f"{where} in use (by the running server, presumably)")
            return Check(
                "port",
                False,
                f"{where} is not free ({exc.strerror})",
                "stop what listens there, or serve with --port",
            )
    return Check("port", True, f"{where} is free")


def _postgres(url: str) -> list[Check]:
    """The schema version and the nodes sharing the database (read-only)."""
    from .models import iso
    from .store.postgres.db import redacted
    from .store.postgres.migrations import MIGRATIONS as PG_MIGRATIONS
    from .store.postgres.nodes import inspect

    where = redacted(url)
    try:
        names, nodes = inspect(url)
    except Exception as exc:  # psycopg's errors: unreachable, refused, no such database
        return [Check("database", False, f"{where}: {exc}".strip(), "check the URL and the server")]
    known = [name for name, _sql in PG_MIGRATIONS]
    if not names:
        schema = Check("schema version", False, f"{where} has no schema", "start a node once")
    elif set(names) - set(known):
        schema = Check(
            "schema version", False, "written by a newer cueapi-lite",
            "upgrade cueapi-lite: pip install -U cueapi-lite",
        )  # fmt: skip
    elif missing := [name for name in known if name not in names]:
        schema = Check(
            "schema version", False, f"{len(missing)} migration(s) not applied",
            "start a node once: it applies them",
        )  # fmt: skip
    else:
        schema = Check("schema version", True, f"{known[-1]} ({where})")
    live = [n for n in nodes if n.alive]
    described = "; ".join(
        f"{n.id} (pid {n.pid} on {n.host}, since {iso(n.started_at_ms)}"
        f"{'' if n.alive else ', lease ran out: its work will be taken over'})"
        for n in nodes
    )
    return [schema, Check("nodes", True, f"{len(live)} live: {described}" if nodes else "none")]


async def run(settings: Settings, clock: Clock) -> list[Check]:
    """Every check, in the order they print."""
    if is_postgres(settings.db):
        checks = _postgres(settings.db)
        checks.append(_time_zones())
        checks.append(await _clock(clock))
        return checks
    checks, urls = _database(settings.db)
    checks.append(_time_zones())
    checks.append(await _clock(clock))
    smtp = await _smtp(settings)
    if smtp is not None:
        checks.append(smtp)
    if urls is not None:
        checks.extend(await _callbacks(urls))
    server, running = _server(settings)
    checks.append(server)
    checks.append(_port(settings, running))
    return checks
