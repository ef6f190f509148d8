"""Service definitions: a systemd unit (Linux) or a launchd plist (macOS) for `serve`.

Both name this interpreter and the database by absolute path (a service starts with
another working directory and a bare PATH), restart the server when it fails, and stop
it with SIGTERM, which it handles by closing cleanly. The platform is a parameter, so
either file can be rendered and tested anywhere.
"""

from __future__ import annotations

import dataclasses
import getpass
import plistlib
from pathlib import Path

__all__ = ["LABEL", "ServiceFile", "service_file"]

LABEL = "cueapi-lite"
LAUNCHD_LABEL = "io.cueapi.lite"


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceFile:
    path: Path
    text: str
    next_steps: list[str]
    logs: str


def _command(python: str, db: str, host: str | None, port: int | None) -> list[str]:
    argv = [python, "-m", "cueapi_lite", "serve", "--db", db]
    if host is not None:
        argv += ["--host", host]
    if port is not None:
        argv += ["--port", str(port)]
    return argv


def _systemd_quote(arg: str) -> str:
    if arg and all(c.isalnum() or c in "/._-:=@+," for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _systemd(argv: list[str], user: bool, home: Path, account: str) -> ServiceFile:
    lines = [
        "[Unit]",
        "Description=cueapi-lite: cron with accountability for AI agents",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={' '.join(_systemd_quote(a) for a in argv)}",
        *([] if user else [f"User={account}"]),
        # On failure only: a clean stop (SIGTERM, exit 0) stays stopped.
        "Restart=on-failure",
        "RestartSec=2",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=30",
        "",
        "[Install]",
        f"WantedBy={'default.target' if user else 'multi-user.target'}",
    ]
    scope = "--user " if user else ""
    where = home / ".config/systemd/user" if user else Path("/etc/systemd/system")
    return ServiceFile(
        path=where / f"{LABEL}.service",
        text="\n".join(lines) + "\n",
        next_steps=[f"systemctl {scope}daemon-reload", f"systemctl {scope}enable --now {LABEL}"],
        logs=f"journalctl {scope}-u {LABEL} -f",
    )


def _launchd(argv: list[str], user: bool, home: Path) -> ServiceFile:
    log_dir = home / "Library/Logs" if user else Path("/Library/Logs")
    log = str(log_dir / f"{LABEL}.log")
    plist = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": argv,
        "RunAtLoad": True,
        # Restart after a crash, not after a clean stop.
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 5,
        "StandardOutPath": log,
        "StandardErrorPath": log,
    }
    where = home / "Library/LaunchAgents" if user else Path("/Library/LaunchDaemons")
    path = where / f"{LAUNCHD_LABEL}.plist"
    domain = "gui/$(id -u)" if user else "system"
    return ServiceFile(
        path=path,
        text=plistlib.dumps(plist).decode(),
        next_steps=[f"launchctl bootstrap {domain} {path}"],
        logs=f"tail -f {log}",
    )


def service_file(
    platform: str,
    python: str,
    db: str,
    *,
    user: bool,
    home: Path | None = None,
    host: str | None = None,
    port: int | None = None,
) -> ServiceFile:
    """The service definition for `platform` (`sys.platform` values: `linux`, `darwin`)."""
    argv = _command(str(Path(python).absolute()), str(Path(db).expanduser().absolute()), host, port)
    home = home or Path.home()
    if platform == "darwin":
        return _launchd(argv, user, home)
    if platform.startswith("linux"):
        return _systemd(argv, user, home, getpass.getuser())
    raise ValueError(f"no service manager known for {platform!r} (systemd or launchd)")
