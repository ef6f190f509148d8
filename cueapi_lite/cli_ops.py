"""Operations commands: doctor, backup, restore, export, import, service install, migrate.

Each command is a thin shell over a module that does the work (`doctor`, `backup`,
`transfer`, `service`); `cli.main` adds them to the `cueapi-lite` group.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from .config import Settings

__all__ = ["COMMANDS"]


def _db(db: str | None) -> str:
    from .cli import existing_db

    return existing_db(db)


# The database an admin command works on (`serve` declares its own: it creates one).
DB_OPTION = click.option(
    "--db",
    envvar="CUEAPI_LITE_DB",
    default=None,
    help="The server's database: a SQLite file or a postgresql:// URL (env CUEAPI_LITE_DB;"
    " default: a file in the user data directory).",
)


@click.command()
@DB_OPTION
@click.option("--host", envvar="CUEAPI_LITE_HOST", default="127.0.0.1", show_default=True,
              help="The address serve listens on (env CUEAPI_LITE_HOST).")  # fmt: skip
@click.option("--port", envvar="CUEAPI_LITE_PORT", default=8000, type=int, show_default=True,
              help="The port serve listens on (env CUEAPI_LITE_PORT).")  # fmt: skip
def doctor(db: str | None, host: str, port: int) -> None:
    """Check the database, clock, time zones, SMTP, callback hosts, server and port.

    Prints one line per check with ✓ or ✗ and, for a failure, how to fix it. Exits 0
    only when every check passes. Sends no request to any callback.
    """
    from . import doctor as checks
    from .clock import SystemClock

    try:
        settings = Settings.from_env(db=db, host=host, port=port)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    found = asyncio.run(checks.run(settings, SystemClock()))
    click.echo(checks.render(found))
    failed = sum(1 for check in found if not check.ok)
    click.echo(f"{len(found) - failed} of {len(found)} checks passed.")
    sys.exit(1 if failed else 0)


@click.command()
@click.argument("path", type=click.Path(dir_okay=False))
@DB_OPTION
def backup(path: str, db: str | None) -> None:
    """Write a consistent copy of the database to PATH, also while the server runs.

    Uses SQLite's online backup API; the copy is checked before it gets its name. A
    PostgreSQL database is backed up with its own pg_dump.
    """
    from .backup import BackupError
    from .backup import backup as copy

    source = _db(db)
    try:
        size = copy(source, path)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Backed up {source} to {path} ({size:,} bytes).")


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@DB_OPTION
def restore(path: str, db: str | None) -> None:
    """Put the backup at PATH back as the database (the server must be stopped).

    The file it replaces is kept as <db>.before-restore. A PostgreSQL database is
    restored with its own pg_restore.
    """
    from .backup import BackupError
    from .backup import restore as put_back
    from .store.lock import AlreadyRunning

    try:
        target = Settings.from_env(db=db).db
        kept = put_back(path, target)
    except (BackupError, AlreadyRunning, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Restored {path} to {target}." + (f" The old file is {kept}." if kept else ""))


@click.command("export")
@click.option("--email", required=True, help="Whose cues to export.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write to this file instead of stdout.")  # fmt: skip
@DB_OPTION
def export_cues(email: str, output: str | None, db: str | None) -> None:
    """Write a user's active and paused cues as JSON: a list of create bodies that any
    CueAPI server accepts (POST /v1/cues), for `cueapi-lite import`."""
    from .models import cue_json
    from .store import store_for
    from .transfer import create_body

    path = _db(db)

    async def read() -> list[dict[str, Any]]:
        store = store_for(path)
        await asyncio.to_thread(store.open)
        try:
            user = await store.users.by_email(email)
            if user is None:
                raise click.ClickException(f"no user with email {email} in {path}")
            bodies = []
            for status in ("active", "paused"):
                offset = 0
                while True:
                    cues, _total = await store.cues.page(user.id, status, 500, offset)
                    bodies += [create_body(cue_json(cue)) for cue in cues]
                    if len(cues) < 500:
                        break
                    offset += len(cues)
            return bodies
        finally:
            await asyncio.to_thread(store.close)

    bodies = asyncio.run(read())
    text = json.dumps(bodies, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write {output}: {exc.strerror}") from None
        click.echo(f"Exported {len(bodies)} cue(s) of {email} to {output}.", err=True)


@click.command("import")
@click.argument("path", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--from", "source", default=None,
              help="Pull the cues of the account behind --key on this CueAPI server.")  # fmt: skip
@click.option("--key", default=None, help="API key for --from.")
@click.option("--email", required=True, help="Import as this user (created if new).")
@DB_OPTION
def import_cues(
    path: str | None, source: str | None, key: str | None, email: str, db: str | None
) -> None:
    """Create cues from a file written by `export` (PATH), or from another CueAPI server
    (--from URL --key KEY). Names that exist already are skipped; the server must be
    stopped (its scheduler would not see the new cues until it restarts)."""
    from .json_input import JsonInputError, decode_json_body
    from .transfer import TransferError, remote_cues

    if (path is None) == (source is None):
        raise click.UsageError("give either PATH or --from URL (with --key)")
    if source is not None and not key:
        raise click.UsageError("--from needs --key")
    target = _db(db)
    try:
        if path is not None:
            try:  # the API's decoder: nothing a server could not store gets halfway in
                bodies = decode_json_body(Path(path).read_bytes())
            except JsonInputError as exc:
                where = f"{exc.field}: " if exc.field else ""
                raise click.ClickException(
                    f"{path} is not JSON a server accepts: {where}{exc.reason}"
                ) from None
            if not isinstance(bodies, list) or not all(isinstance(b, dict) for b in bodies):
                raise click.ClickException(f"{path} is not a JSON list of cue bodies")
        else:
            from .transfer import create_body

            bodies = [create_body(cue) for cue in remote_cues(str(source), str(key))]
    except (ValueError, TransferError) as exc:
        raise click.ClickException(str(exc)) from None
    created, skipped, failed = asyncio.run(_create_all(target, email, bodies))
    for line in failed:
        click.echo(f"✗ {line}", err=True)
    click.echo(
        f"Imported {created} cue(s) for {email}; {skipped} skipped (name exists),"
        f" {len(failed)} failed."
    )
    sys.exit(1 if failed else 0)


async def _create_all(
    db: str, email: str, bodies: list[dict[str, Any]]
) -> tuple[int, int, list[str]]:
    from .app import CueApiLite
    from .errors import ApiError
    from .store.lock import AlreadyRunning

    lite = CueApiLite(Settings.from_env(db=db))
    try:
        await lite.open_offline()
    except AlreadyRunning as exc:
        raise click.ClickException(str(exc)) from None
    created = skipped = 0
    failed: list[str] = []
    try:
        user, _new = await lite.accounts.user_for(email, create=True)
        for body in bodies:
            name = body.get("name", "?")
            try:
                cue = await lite.cues.create(user, {k: v for k, v in body.items() if k != "status"})
                if body.get("status") == "paused":
                    await lite.cues.update(user, cue.id, {"status": "paused"})
                created += 1
            except ApiError as exc:
                if exc.code == "duplicate_cue_name":
                    skipped += 1
                else:
                    failed.append(f"{name}: {exc.message}")
    finally:
        await lite.close_offline()
    return created, skipped, failed


@click.group()
def service() -> None:
    """Run the server as a system service (systemd on Linux, launchd on macOS)."""


@service.command("install")
@click.option("--user", "user_service", is_flag=True,
              help="A service of your user (no root needed), not of the system.")  # fmt: skip
@click.option("--print", "print_only", is_flag=True, help="Show the file; write nothing.")
@click.option("--to", "to", type=click.Path(dir_okay=False), default=None,
              help="Write the file here instead of the service manager's folder.")  # fmt: skip
@click.option("--platform", type=click.Choice(["linux", "darwin"]), default=None,
              help="Write the file for this system (default: this one).")  # fmt: skip
@DB_OPTION
@click.option("--host", default=None, help="Address to listen on (default: serve's).")
@click.option("--port", default=None, type=int, help="Port to listen on (default: serve's).")
def service_install(
    user_service: bool, print_only: bool, to: str | None, platform: str | None,
    db: str | None, host: str | None, port: int | None,
) -> None:  # fmt: skip
    """Write a systemd unit or launchd plist that runs `serve` with this interpreter and
    the database by absolute path, restarting it when it fails."""
    from .service import service_file

    try:
        settings = Settings.from_env(db=db)
        unit = service_file(
            platform or sys.platform, sys.executable, settings.db,
            user=user_service, host=host, port=port,
        )  # fmt: skip
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if print_only:
        click.echo(unit.text, nl=False)
        return
    path = Path(to) if to else unit.path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(unit.text, encoding="utf-8")
    except OSError as exc:
        hint = "" if user_service else " (a system service needs root; or use --user)"
        raise click.ClickException(f"cannot write {path}: {exc.strerror}{hint}") from None
    click.echo(f"Wrote {path}. Start it with:")
    for step in unit.next_steps:
        click.echo(f"  {step}")
    click.echo(f"Logs: {unit.logs}")


@click.command()
@click.option(
    "--from", "source", required=True,
    help="The database to copy: a SQLite file or a postgresql:// URL (no server on it).",
)  # fmt: skip
@click.option(
    "--to", "target", required=True,
    help="An empty PostgreSQL database's URL, or a new SQLite file.",
)  # fmt: skip
def migrate(source: str, target: str) -> None:
    """Copy a database (users, keys, cues, executions, alerts, everything) from SQLite
    into an empty PostgreSQL database, or from PostgreSQL into a new SQLite file, then
    check every table's row count."""
    from .store import is_postgres

    if is_postgres(source) == is_postgres(target):
        raise click.ClickException(
            "one of --from and --to must be a postgresql:// URL and the other a SQLite file"
        )
    from .store.copy import CopyError, copy_postgres_to_sqlite, copy_sqlite_to_postgres

    try:
        if is_postgres(target):
            if not Path(source).is_file():
                raise CopyError(f"no SQLite database at {source}")
            counts = copy_sqlite_to_postgres(source, target)
        else:
            counts = copy_postgres_to_sqlite(source, target)
    except CopyError as exc:
        raise click.ClickException(str(exc)) from None
    for copied in counts:
        click.echo(f"{copied.table:<18} {copied.source_rows:>10,} rows copied, counts match")
    where = "PostgreSQL URL" if is_postgres(target) else "SQLite file"
    click.echo(f"Done: point `cueapi-lite serve --db` at the {where}.")


COMMANDS: list[click.Command] = [
    doctor, backup, restore, export_cues, import_cues, service, migrate,
]  # fmt: skip
