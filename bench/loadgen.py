"""HTTP load for the API benchmarks: `wrk` when installed, else an in-process generator.

Both keep `connections` HTTP/1.1 keep-alive connections busy with one GET for `seconds`
and return requests per second (only complete 2xx answers count for the in-process one;
wrk's figure counts every answer, so a benchmark checks the status itself first).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from urllib.parse import urlsplit

__all__ = ["generator", "paced", "requests_per_second"]


def generator() -> str:
    return "wrk" if shutil.which("wrk") else "in-process"


def requests_per_second(
    url: str, key: str | None, seconds: float = 5.0, connections: int = 16, threads: int = 2
) -> float:
    if shutil.which("wrk"):
        return _wrk(url, key, seconds, connections, threads)
    return asyncio.run(_in_process(url, key, seconds, connections))


def _wrk(url: str, key: str | None, seconds: float, connections: int, threads: int) -> float:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", url]
    if key:
        command[1:1] = ["-H", f"Authorization: Bearer {key}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} answers were not 2xx:\n{output}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not found:
        raise RuntimeError(output)
    return float(found.group(1))


def _request(url: str, key: str | None) -> bytes:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
    if key:
        request += f"Authorization: Bearer {key}\r\n"
    return (request + "\r\n").encode()


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
    await reader.readexactly(int(length.group(1)) if length else 0)
    return int(head[9:12])


async def _in_process(url: str, key: str | None, seconds: float, connections: int) -> float:
    parts = urlsplit(url)
    raw = _request(url, key)
    done = 0
    stop_at = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while time.perf_counter() < stop_at:
                status = await _get(reader, writer, raw)
                if not 200 <= status < 300:
                    raise RuntimeError(f"{url}: answered {status}")
                done += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return done / (time.perf_counter() - started)


async def paced(
    url: str, key: str | None, rate: float, stop: asyncio.Event, connections: int = 8
) -> float:
    """GET `url` at `rate` requests per second (as far as the server keeps up) until
    `stop` is set; returns the rate achieved. Runs on the caller's event loop."""
    parts = urlsplit(url)
    raw = _request(url, key)
    done = 0
    interval = connections / rate
    started = time.perf_counter()

    async def connection(n: int) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        next_at = started + n * interval / connections
        try:
            while not stop.is_set():
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                next_at += interval
                if await _get(reader, writer, raw) < 300:
                    done += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection(n) for n in range(connections)))
    return done / (time.perf_counter() - started)
