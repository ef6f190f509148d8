"""Settings: one frozen dataclass, filled from keyword arguments or the environment.

Every setting has an environment variable `CUEAPI_LITE_<NAME>`; the CLI's flags win over
the environment. Nothing else in the package reads `os.environ`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["Settings", "default_db_path"]

MIB = 1024 * 1024


def default_db_path(platform: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The database file when none is given: in the user's data directory, so every
    command finds the server's file from any working directory. Linux and other Unix:
    `$XDG_DATA_HOME/cueapi-lite/` (default `~/.local/share/cueapi-lite/`); macOS:
    `~/Library/Application Support/cueapi-lite/`; Windows: `%LOCALAPPDATA%/cueapi-lite/`."""
    platform = platform or sys.platform
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME") or Path.home())
    if platform == "darwin":
        base = home / "Library" / "Application Support"
    elif platform.startswith("win"):
        base = Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local")
    else:
        xdg = env.get("XDG_DATA_HOME")
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".local" / "share"
    return str(base / "cueapi-lite" / "cueapi-lite.db")


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """How one cueapi-lite process runs. Defaults suit a laptop."""

    host: str = "127.0.0.1"
    port: int = 8000
    # The SQLite file; by default in the user's data directory (`default_db_path`).
    db: str = dataclasses.field(default_factory=default_db_path)
    # URL that people and clients use to reach this server (device-login pages, output);
    # derived from host and port when unset.
    public_url: str | None = None
    # SQLite `synchronous`: NORMAL survives a process crash (WAL); FULL also survives a
    # power cut at the cost of an fsync per commit.
    synchronous: str = "NORMAL"
    # Webhook attempts in flight at once.
    delivery_concurrency: int = 64
    # `local` allows loopback and private callback addresses, `public` only public https.
    callback_policy: str = "local"
    # A scheduled fire at most this late is an ordinary fire; older occurrences were
    # missed (server down, host asleep) and go through the cue's catch_up policy.
    misfire_grace_s: int = 60
    # At most about this many missed occurrences of one cue are written to history at
    # once (the newest ones); the oldest row written names the span left out.
    max_missed_per_cue: int = 10_000
    # Worker transport (CONTRACT §8.6): a claim's lease; a worker counts as gone after
    # this long without a worker heartbeat; pending worker work nobody claims within
    # `unclaimed_expiry_s` is recorded as missed (0 keeps it pending for ever).
    lease_s: int = 900
    worker_timeout_s: int = 180
    unclaimed_expiry_s: int = 900
    # PostgreSQL clusters: a node renews its lease every third of this; a node silent
    # for this long is taken to be gone and a survivor takes over its deliveries.
    node_lease_s: int = 10
    # Email, for alerts and the magic links of device logins: the SMTP server to send
    # through (unset: alert email is recorded as skipped, a magic link goes to the log).
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "cueapi-lite@localhost"
    smtp_username: str | None = None
    smtp_password: str | None = dataclasses.field(default=None, repr=False)
    smtp_starttls: bool = False
    max_body_bytes: int = 2 * MIB
    max_payload_bytes: int = 1 * MIB
    # Logs go to stderr: `log_level` (debug, info, warning, error), `log_format` (text
    # or json, one object per line) and uvicorn's access log (off: it halves throughput).
    log_level: str = "info"
    log_format: str = "text"
    access_log: bool = False
    # Prometheus /metrics: served to loopback clients; with a token set, to any client
    # that sends it as a bearer token (and only to those).
    metrics: bool = True
    metrics_token: str | None = dataclasses.field(default=None, repr=False)
    # Finished executions, alerts and expired login codes older than this many days are
    # pruned (hourly, in small batches); 0 keeps everything.
    history_retention_days: int = 90
    # --- accounts, logins and limits -------------------------------------------------
    # `auto`: POST /v1/auth/register is open when the server listens on loopback only
    # (anyone who can reach it is on this machine); `on` / `off` decide it explicitly.
    registration: str = "auto"
    # Single-user machines: every device-code login is approved at once for this email.
    auto_approve: bool = False
    auto_approve_email: str = "admin@local"
    # A secret that lets the /auth/device page approve a login for any email.
    admin_token: str | None = dataclasses.field(default=None, repr=False)
    # Requests per sliding 60 s window per API key or session, and per client address on
    # routes without auth (0 turns a limit off). The worker alone makes ~90/min (H21).
    rate_limit_per_minute: int = 6000
    ip_rate_limit_per_minute: int = 600
    # Per-user plan limits; 0 means no limit (the API then shows 1,000,000,000).
    cue_limit: int = 0
    monthly_execution_limit: int = 0
    plan: str = "self-hosted"
    session_ttl_s: int = 3600
    # How long a dashboard login (its session cookie) lasts.
    dashboard_session_s: int = 7 * 86400
    # The API document's rule for support tickets (account > 1 h old, >= 1 cue).
    support_eligibility: bool = False

    def __post_init__(self) -> None:
        if self.synchronous.upper() not in {"NORMAL", "FULL"}:
            raise ValueError("synchronous must be NORMAL or FULL")
        if self.callback_policy not in {"local", "public"}:
            raise ValueError("callback_policy must be 'local' or 'public'")
        if not 1 <= self.delivery_concurrency <= 10_000:
            raise ValueError("delivery_concurrency must be between 1 and 10000")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be between 0 and 65535")
        if self.registration not in {"auto", "on", "off"}:
            raise ValueError("registration must be 'auto', 'on' or 'off'")
        for name in ("rate_limit_per_minute", "ip_rate_limit_per_minute", "cue_limit",
                     "monthly_execution_limit"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (no limit) or more")
        if not 60 <= self.session_ttl_s <= 30 * 86400:
            raise ValueError("session_ttl_s must be between 60 and 2592000")
        if not 60 <= self.dashboard_session_s <= 30 * 86400:
            raise ValueError("dashboard_session_s must be between 60 and 2592000")
        if "@" not in self.auto_approve_email:
            raise ValueError("auto_approve_email must be an email address")
        if self.admin_token is not None and len(self.admin_token) < 16:
            raise ValueError("admin_token must be at least 16 characters (it approves logins)")
        if self.log_format not in {"text", "json"}:
            raise ValueError("log_format must be 'text' or 'json'")
        if self.log_level.lower() not in {"debug", "info", "warning", "error", "critical"}:
            raise ValueError("log_level must be debug, info, warning, error or critical")
        if self.metrics_token is not None and len(self.metrics_token) < 16:
            raise ValueError("metrics_token must be at least 16 characters")
        if self.history_retention_days < 0:
            raise ValueError("history_retention_days must be 0 (keep everything) or more")
        # The limit's 24 h of grace run from this month's N-th execution, read from the
        # stored rows: pruning them within the month would make the grace start again.
        if self.monthly_execution_limit and 0 < self.history_retention_days < 31:
            raise ValueError(
                "history_retention_days must be 0 or at least 31 while"
                " monthly_execution_limit is set (the limit is timed from this month's"
                " executions)"
            )
        if not 1 <= self.node_lease_s <= 3600:
            raise ValueError("node_lease_s must be between 1 and 3600")
        if not self.plan or len(self.plan) > 50:
            raise ValueError("plan must be a name of 1 to 50 characters")

    @property
    def registration_open(self) -> bool:
        """Whether POST /v1/auth/register (and approving a new email) may create users."""
        if self.registration == "auto":
            try:
                return ipaddress.ip_address(self.host).is_loopback
            except ValueError:
                return self.host == "localhost"
        return self.registration == "on"

    @property
    def base_url(self) -> str:
        """The server's own origin, e.g. http://127.0.0.1:8000 (no trailing slash)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.host
        if host in {"0.0.0.0", "::", ""}:
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from `CUEAPI_LITE_*` variables; `overrides` that are not None win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = env.get(f"CUEAPI_LITE_{field.name.upper()}")
            if raw is None or raw == "":
                continue
            values[field.name] = _coerce(field.type, raw, field.name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _coerce(kind: Any, raw: str, name: str) -> Any:
    text = str(kind).replace(" | None", "")
    if text == "bool":
        if raw.lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.lower() in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"CUEAPI_LITE_{name.upper()} must be true or false")
    if text == "int":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"CUEAPI_LITE_{name.upper()} must be an integer") from None
    return raw
