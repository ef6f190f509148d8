"""The `cueapi-lite` command: serve, keys, device, explain, mcp; the operations commands
(doctor, backup, restore, export, import, service) live in `cli_ops`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import uvicorn

from . import __version__
from .app import CueApiLite
from .cli_ops import DB_OPTION
from .config import Settings
from .cron import (
    CronError,
    TimezoneError,
    check_expression,
    check_zone_name,
    preview,
    schedule_for,
)
from .logs import FORMATS, configure
from .models import parse_instant
from .services.accounts import AccountService, NewKey
from .store import StoreUnavailable, is_postgres, store_for
from .store.lock import AlreadyRunning

__all__ = ["main"]

T = TypeVar("T")


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed (uvicorn[standard] brings it)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


class _Commands(click.Group):
    """The commands; a database that cannot be used is a one-line error, whichever
    command opened it."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StoreUnavailable as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cueapi-lite")
def main() -> None:
    """cueapi-lite: cron with accountability for AI agents, on one SQLite file."""


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@main.command()
@click.option(
    "--host",
    envvar="CUEAPI_LITE_HOST",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (env CUEAPI_LITE_HOST).",
)
@click.option(
    "--port",
    envvar="CUEAPI_LITE_PORT",
    default=8000,
    type=int,
    show_default=True,
    help="Port to listen on; 0 picks a free one (env CUEAPI_LITE_PORT).",
)
@click.option(
    "--db",
    envvar="CUEAPI_LITE_DB",
    default=None,
    help="SQLite database file, created on first start, or a postgresql:// URL shared by"
    " many servers (env CUEAPI_LITE_DB; default: a file in the user data directory,"
    " printed at start).",
)
@click.option(
    "--log-format",
    envvar="CUEAPI_LITE_LOG_FORMAT",
    type=click.Choice(FORMATS),
    default=None,
    help="Log lines on stderr as text (default) or one JSON object per line"
    " (env CUEAPI_LITE_LOG_FORMAT).",
)
def serve(host: str, port: int, db: str | None, log_format: str | None) -> None:
    """Run the API server, the scheduler and webhook delivery in one process.

    On the first start it creates the database and a first user, and prints that user's
    email, API key and webhook secret once.
    """
    try:
        settings = Settings.from_env(host=host, port=port, db=db, log_format=log_format)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    configure(settings.log_level, settings.log_format)
    # The MCP SDK announces each start and stop of its request handler at INFO.
    logging.getLogger("mcp").setLevel(max(logging.WARNING, logging.getLogger().level))
    sock = _bind(settings.host, settings.port)
    settings = settings.replace(port=sock.getsockname()[1])

    async def run() -> None:
        lite = CueApiLite(settings)
        try:
            await lite.start()
        except AlreadyRunning as exc:
            raise click.ClickException(str(exc)) from None
        try:
            first = await lite.bootstrap()
            config = uvicorn.Config(
                lite.asgi,
                lifespan="off",
                log_level=settings.log_level,
                log_config=None,  # logging is configured above, in the chosen format
                access_log=settings.access_log,
                http="httptools",
                server_header=False,
            )
            server = _Server(
                config,
                on_started=lambda: _banner(settings, first),
            )
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, server.request_exit)
            await server.serve(sockets=[sock])
        finally:
            await lite.aclose()

    with sock:  # closed also when the start fails (a database that cannot be used)
        _run(run())


class _Server(uvicorn.Server):
    """uvicorn, minus its signal capture: it re-raises SIGTERM after shutting down, which
    would kill the process before the scheduler and the database writer close cleanly."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:  # the socket accepts: now the banner can say "Ready"
            self._on_started()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_exit(self) -> None:
        # A second Ctrl+C stops waiting for open connections.
        self.force_exit = self.should_exit
        self.should_exit = True


def _where(db: str) -> str:
    """The database as the banner shows it (a URL without its password)."""
    if is_postgres(db):
        from .store.postgres.db import redacted

        return redacted(db)
    return str(Path(db).absolute())


def _banner(settings: Settings, first: NewKey | None) -> None:
    base = settings.base_url
    lines = [
        f"cueapi-lite {__version__} listening on {base}",
        f"  database:        {_where(settings.db)}",
        f"  SDK and worker:  base_url / api_base = {base}",
        f"  cueapi CLI:      CUEAPI_API_BASE={base}/v1",
    ]
    if first is not None:
        lines += [
            "",
            "First start: a user was created. These are shown only once:",
            f"  email:           {first.user.email}",
            f"  API key:         {first.api_key}",
            f"  webhook secret:  {first.user.webhook_secret}",
        ]
    else:
        lines += ["  new key:         cueapi-lite keys create --email EMAIL"]
    lines += [
        "  cueapi login:    approve at the URL it prints, or with"
        " cueapi-lite device approve CODE --email EMAIL",
        "Ready. Press Ctrl+C to stop.",
    ]
    click.echo("\n".join(lines))
    sys.stdout.flush()


@main.group()
def keys() -> None:
    """Manage API keys."""


def existing_db(db: str | None, *, create: bool = False, offer_create: bool = False) -> str:
    """The database file an admin command works on: the server's (default path or
    `--db`). A missing file is an error unless `create`: a typo or another working
    directory must not silently make a second, empty database."""
    try:
        path = Settings.from_env(db=db).db
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if not create and not is_postgres(path) and not Path(path).is_file():
        raise click.ClickException(
            f"no database at {path}. The server creates it on its first start"
            " (cueapi-lite serve); give the server's file with --db FILE"
            + (", or pass --create to start a new one" if offer_create else "")
        )
    return path


@keys.command("create")
@DB_OPTION
@click.option("--create", is_flag=True, help="Create the database file if it does not exist.")
@click.option("--email", required=True, help="The user's email; the user is created if new.")
@click.option("--label", default="cli", show_default=True, help="A name for the key.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def keys_create(db: str | None, create: bool, email: str, label: str, as_json: bool) -> None:
    """Mint a new API key for a user (creating the user if needed).

    Prints the key, shown only this once, and the user's webhook secret.
    """
    from .clock import SystemClock
    from .errors import ApiError

    db = existing_db(db, create=create, offer_create=True)

    async def mint() -> Any:
        store = store_for(db)
        await asyncio.to_thread(store.open)
        try:
            return await AccountService(store, SystemClock()).mint_key(email, label)
        finally:
            await asyncio.to_thread(store.close)

    try:
        new = _run(mint())
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    if as_json:
        click.echo(json.dumps({"email": new.user.email, "api_key": new.api_key,
                               "webhook_secret": new.user.webhook_secret}))  # fmt: skip
        return
    click.echo(f"email:           {new.user.email}" + (" (new user)" if new.created_user else ""))
    click.echo(f"API key:         {new.api_key}")
    click.echo(f"webhook secret:  {new.user.webhook_secret}")


@main.command()
@click.argument("cron")
@click.option("--tz", "timezone", default="UTC", show_default=True, help="IANA time zone.")
@click.option("--from", "start", default=None, help="ISO 8601 start (default: now).")
@click.option(
    "-n",
    "count",
    default=10,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="How many fire instants to show.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def explain(cron: str, timezone: str, start: str | None, count: int, as_json: bool) -> None:
    """Show when CRON fires next in a zone, flagging fires that DST moved."""
    try:
        schedule = schedule_for(check_expression(cron), check_zone_name(timezone))
        after_ms = (
            parse_instant(start, schedule.zone) - 1
            if start
            else int(datetime.now(UTC).timestamp() * 1000)
        )
    except (CronError, TimezoneError) as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError:
        raise click.ClickException(f"--from is not an ISO 8601 date-time: {start!r}") from None
    rows = preview(schedule, after_ms, count)
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        note = f"  <- {row['note']}" if row["note"] else ""
        click.echo(f"{row['local']}  ({row['utc']}){note}")


@main.command("mcp")
@click.option(
    "--url",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="The server's base URL (a trailing /v1 is ignored).",
)
@click.option("--key", envvar="CUEAPI_API_KEY", required=True, help="API key (env CUEAPI_API_KEY).")
def mcp_stdio(url: str, key: str) -> None:
    """Serve the MCP tools on stdin/stdout for desktop agents, acting on the server at
    URL as the owner of the key."""
    from .mcp.server import run_stdio

    base_url = url.rstrip("/").removesuffix("/v1")
    asyncio.run(run_stdio(base_url, key))


def _with_devices(db: str | None, work: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    """Run `work(DeviceService)` on the database file; the server may be running (WAL)."""
    from .clock import SystemClock
    from .errors import ApiError
    from .mailer import LogMailer
    from .services.devices import DeviceService

    db = existing_db(db)
    try:
        settings = Settings.from_env(db=db)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None

    async def run() -> T:
        store = store_for(db)
        await asyncio.to_thread(store.open)
        try:
            clock = SystemClock()
            accounts = AccountService(store, clock, settings)
            return await work(DeviceService(store, clock, settings, accounts, LogMailer()))
        finally:
            await asyncio.to_thread(store.close)

    try:
        return _run(run())
    except ApiError as exc:
        raise click.ClickException(exc.message) from None


@main.group()
def device() -> None:
    """Approve device-code logins (`cueapi login`, `cueapi-worker login`)."""


@device.command("approve")
@click.argument("code")
@click.option("--email", required=True, help="Log in as this user; created if new.")
@DB_OPTION
def device_approve(code: str, email: str, db: str | None) -> None:
    """Approve the waiting login with CODE for the user with EMAIL.

    Works on the server's database file while the server runs. The login finishes at its
    next poll and receives a newly minted key (label "device CODE").
    """

    async def approve(devices: Any) -> Any:
        return await devices.approve(code.strip(), email, "cli", create_user=True)

    user = _with_devices(db, approve)
    click.echo(f"Approved {code.strip()} for {user.email}; the login finishes at its next poll.")


@device.command("list")
@DB_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def device_list(db: str | None, as_json: bool) -> None:
    """Show the logins waiting for approval (and approved ones not yet picked up)."""
    from .models import iso

    async def waiting(devices: Any) -> Any:
        return await devices.waiting()

    rows = [
        {
            "code": d.code,
            "status": d.status,
            "email": d.email,
            "requested_from": d.requested_ip,
            "created_at": iso(d.created_at_ms),
            "expires_at": iso(d.expires_at_ms),
        }
        for d in _with_devices(db, waiting)
    ]
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("No logins are waiting.")
        return
    for row in rows:
        who = f" for {row['email']}" if row["email"] else ""
        click.echo(
            f"{row['code']}  {row['status']}{who}  from {row['requested_from'] or '?'}"
            f"  expires {row['expires_at']}"
        )


def _add_operations() -> None:
    from .cli_ops import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_add_operations()
