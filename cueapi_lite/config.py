"""Settings: one frozen dataclass, filled from keyword arguments or the environment.

Every setting has an environment variable `CUEAPI_LITE_<NAME>`; the CLI's flags win over
the environment. Nothing else in the package reads `os.environ`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["Settings"]

MIB = 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """How one cueapi-lite process runs. Defaults suit a laptop."""

    host: str = "127.0.0.1"
    port: int = 8000
    db: str = "./cueapi-lite.db"
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
    # At most this many missed occurrences of one cue are written to history at once;
    # the rest of a longer outage is summarised on the newest missed row.
    max_missed_per_cue: int = 1000
    # Worker transport (CONTRACT §8.6): a claim's lease; a worker counts as gone after
    # this long without a worker heartbeat; pending worker work nobody claims within
    # `unclaimed_expiry_s` is recorded as missed (0 keeps it pending for ever).
    lease_s: int = 900
    worker_timeout_s: int = 180
    unclaimed_expiry_s: int = 900
    # Email for alerts: the SMTP server to send through (unset: email alerts are recorded
    # in the outbox as skipped).
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "cueapi-lite@localhost"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    max_body_bytes: int = 2 * MIB
    max_payload_bytes: int = 1 * MIB
    log_level: str = "info"
    access_log: bool = False

    def __post_init__(self) -> None:
        if self.synchronous.upper() not in {"NORMAL", "FULL"}:
            raise ValueError("synchronous must be NORMAL or FULL")
        if self.callback_policy not in {"local", "public"}:
            raise ValueError("callback_policy must be 'local' or 'public'")
        if not 1 <= self.delivery_concurrency <= 10_000:
            raise ValueError("delivery_concurrency must be between 1 and 10000")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be between 0 and 65535")

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
