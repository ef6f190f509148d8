"""Shared set-up for the benchmarks: a receiver process, a server instance, percentiles."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from cueapi_lite import CueApiLite, Settings
from cueapi_lite.services.accounts import NewKey

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def add_receiver_option(parser: argparse.ArgumentParser) -> None:
    """`--receiver lean|aiohttp`: which webhook receiver a benchmark runs (receiver.py)."""
    parser.add_argument(
        "--receiver", choices=["lean", "aiohttp"], default="lean",
        help="the webhook receiver (see receiver.py)",
    )  # fmt: skip


@contextlib.contextmanager
def receiver_process(secret: str | None = None, aiohttp: bool = False) -> Iterator[str]:
    """A webhook receiver in its own process; yields its URL. With `secret` it verifies
    every signature and records arrivals; `aiohttp` runs the heavier receiver the
    benchmarks used before (see receiver.py)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(HERE / "receiver.py"), str(port), *([secret] if secret else []),
         *(["--aiohttp"] if aiohttp else [])],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@contextlib.asynccontextmanager
async def server(**settings: Any) -> AsyncIterator[tuple[CueApiLite, NewKey]]:
    with tempfile.TemporaryDirectory() as folder:
        lite = CueApiLite(Settings(db=str(Path(folder) / "bench.db"), **settings))
        await lite.start()
        try:
            yield lite, await lite.accounts.mint_key("bench@example.com")
        finally:
            await lite.aclose()


async def create_many(lite: CueApiLite, key: NewKey, bodies: list[dict[str, Any]]) -> None:
    """Create cues through the cue service, 500 at a time (group commit)."""
    for start in range(0, len(bodies), 500):
        await asyncio.gather(*(lite.cues.create(key.user, b) for b in bodies[start : start + 500]))


def machine() -> str:
    """CPU model, cores, Python and the machine's speed now: printed by every benchmark
    with its figures."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{model}, {os.cpu_count()} cores, Python {platform.python_version()};"
        f" speed now {speed():.1f} (reference loop, millions of steps/s)"
    )


STEPS = 500_000  # the reference loop's steps


def speed() -> float:
    """Millions of steps a second of a fixed pure-Python loop, the median of nine runs
    (about half a second). A shared virtual machine's speed changes from second to second
    and from day to day (seen: 8 to 13 within a minute); a figure is read against the
    speed printed beside it. It is this interpreter's speed: compare runs of one Python."""
    took = []
    for _ in range(9):
        started = time.perf_counter()
        total = 0
        for step in range(STEPS):
            total += step * step % 7
        took.append(time.perf_counter() - started)
    return STEPS / statistics.median(took) / 1e6


class ServerProcess:
    """A `cueapi-lite serve` process on a free port with its own database.

    `pythonpath` runs the server from another checkout of the package (to measure two
    versions side by side); the per-key rate limit is off unless `env` sets it.
    """

    def __init__(self, db: Path, pythonpath: str | None = None, **env: str) -> None:
        environment = dict(os.environ, CUEAPI_LITE_RATE_LIMIT_PER_MINUTE="0", **env)
        if pythonpath:
            environment["PYTHONPATH"] = pythonpath
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cueapi_lite", "serve", "--port", "0", "--db", str(db)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment,
            cwd=db.parent,  # `-m` puts the working directory first on the path
        )  # fmt: skip
        assert self.process.stdout is not None
        banner = ""
        while not banner.endswith("to stop.\n"):
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"server did not start:\n{banner}")
            banner += line
        base = re.search(r"listening on (\S+)", banner)
        key = re.search(r"API key:\s+(\S+)", banner)
        secret = re.search(r"webhook secret:\s+(\S+)", banner)
        assert base, banner
        assert key, banner
        assert secret, banner
        self.base, self.key, self.secret = base.group(1), key.group(1), secret.group(1)
        self.pid = self.process.pid
        # Keep reading its output (the log): a full pipe would block the server.
        self._drain = threading.Thread(target=self._discard_output, daemon=True)
        self._drain.start()

    def _discard_output(self) -> None:
        assert self.process.stdout is not None
        for _line in self.process.stdout:
            pass

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


@contextlib.contextmanager
def server_process(pythonpath: str | None = None, **env: str) -> Iterator[ServerProcess]:
    with tempfile.TemporaryDirectory() as folder:
        process = ServerProcess(Path(folder) / "bench.db", pythonpath, **env)
        try:
            yield process
        finally:
            process.stop()


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    cut = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": cut[49], "p99": cut[98], "max": ordered[-1]}


def run(coroutine: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)
