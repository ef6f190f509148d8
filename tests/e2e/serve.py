"""Run `cueapi-lite serve` as a real process and read its first-start banner."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

BANNER_TIMEOUT_S = 20.0


class ServeProcess:
    def __init__(self, db: Path | str, *extra: str, **settings: str) -> None:
        # `settings`: CUEAPI_LITE_<NAME> variables for this process (e.g. node_lease_s="2").
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.update({f"CUEAPI_LITE_{name.upper()}": value for name, value in settings.items()})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cueapi_lite", "serve", "--port", "0", "--db", str(db), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.banner = self._read_banner()
        # The server logs every fire and delivery: keep reading, so a full pipe never
        # blocks it, and keep the lines for tests that look at the log.
        self.log: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        match = re.search(r"listening on (http://\S+)", self.banner)
        assert match, self.banner
        self.base_url = match.group(1)
        key = re.search(r"API key:\s+(cue_sk_[0-9a-f]{32})", self.banner)
        secret = re.search(r"webhook secret:\s+(whsec_[0-9a-f]{64})", self.banner)
        self.api_key = key.group(1) if key else None
        self.webhook_secret = secret.group(1) if secret else None

    def _read_banner(self) -> str:
        assert self.process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + BANNER_TIMEOUT_S
        stream: IO[str] = self.process.stdout
        while time.monotonic() < deadline:
            line = stream.readline()
            if not line:
                raise AssertionError("serve exited early:\n" + "".join(lines))
            lines.append(line)
            if line.startswith("Ready."):
                return "".join(lines)
        raise AssertionError("serve did not start:\n" + "".join(lines))

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)

    def wait_for_log(self, text: str, timeout_s: float = 20.0) -> str:
        """The first log line containing `text` (waits for the server to write it)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.log):
                if text in line:
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no log line with {text!r}:\n" + "".join(self.log))

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, like a power cut of the process."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._close()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        self._close()
        return code

    def _close(self) -> None:
        self._reader.join(10)  # the pipe ends with the process
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.kill()
