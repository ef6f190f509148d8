"""Shared set-up for the benchmarks: a receiver process, a server instance, percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import subprocess
import sys
import tempfile
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


@contextlib.contextmanager
def receiver_process() -> Iterator[str]:
    """A webhook receiver in its own process; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(HERE / "receiver.py"), str(port)], stdout=subprocess.PIPE, text=True
    )
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
