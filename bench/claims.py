"""Worker transport throughput against a real `cueapi-lite serve` process.

1. Round trip as a worker sees it: claim-next -> report outcome, one at a time
   (p50/p99 over `--round-trips` executions).
2. Claims per second with 8 concurrent pollers on 10,000 claimable executions, two ways:
   `claim-next` (the server picks, E17) and the daemon's way (list claimable, claim by id,
   skip the 409s of lost races).

    python bench/claims.py [--executions 10000] [--pollers 8] [--round-trips 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from common import machine, percentiles, run


def start_server(db: Path) -> tuple[subprocess.Popen[str], str, str]:
    # The per-key rate limit (6,000 a minute by default) is off: this measures claims.
    env = dict(os.environ, CUEAPI_LITE_RATE_LIMIT_PER_MINUTE="0")
    process = subprocess.Popen(
        [sys.executable, "-m", "cueapi_lite", "serve", "--port", "0", "--db", str(db)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    banner = ""
    while not banner.endswith("to stop.\n"):
        banner += process.stdout.readline()
    base = re.search(r"listening on (\S+)", banner)
    key = re.search(r"API key:\s+(\S+)", banner)
    assert base, banner
    assert key, banner
    return process, base.group(1), key.group(1)


async def fill(session: aiohttp.ClientSession, base: str, count: int, name: str) -> None:
    async with session.post(f"{base}/v1/cues", json={
        "name": name, "schedule": {"type": "recurring", "cron": "0 0 1 1 *"},
        "transport": "worker", "payload": {"task": "bench"},
    }) as response:  # fmt: skip
        cue = await response.json()
    semaphore = asyncio.Semaphore(32)

    async def fire() -> None:
        async with semaphore, session.post(f"{base}/v1/cues/{cue['id']}/fire") as response:
            assert response.status == 200

    await asyncio.gather(*(fire() for _ in range(count)))


async def round_trips(session: aiohttp.ClientSession, base: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        async with session.post(f"{base}/v1/executions/claim", json={"worker_id": "rt"}) as r:
            claimed = await r.json()
        url = f"{base}/v1/executions/{claimed['execution_id']}/outcome"
        async with session.post(url, json={"success": True, "result": "ok"}) as r:
            assert r.status == 200, await r.text()
        times.append((time.perf_counter() - start) * 1000)
    return times


async def claim_next_poller(session: aiohttp.ClientSession, base: str, worker: str) -> int:
    claimed = 0
    while True:
        async with session.post(f"{base}/v1/executions/claim", json={"worker_id": worker}) as r:
            if r.status == 409:
                return claimed
            assert r.status == 200
            claimed += 1


async def daemon_style_poller(session: aiohttp.ClientSession, base: str, worker: str) -> int:
    """Like cueapi-worker's poll cycle with max_concurrent 4: list, walk the list in order
    claiming until 4 succeed (409s are races lost to the other pollers), repeat."""
    claimed = 0
    while True:
        async with session.get(f"{base}/v1/executions/claimable") as r:
            items: list[dict[str, Any]] = (await r.json())["executions"]
        if not items:
            return claimed
        won = 0
        for item in items:
            url = f"{base}/v1/executions/{item['execution_id']}/claim"
            async with session.post(url, json={"worker_id": worker}) as r:
                won += r.status == 200
            if won == 4:
                break
        claimed += won


async def measure(executions: int, pollers: int, trips: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        process, base, key = start_server(Path(folder) / "claims.db")
        headers = {"Authorization": f"Bearer {key}"}
        try:
            connector = aiohttp.TCPConnector(limit=64)
            async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
                await fill(session, base, trips, "round-trip")
                p = percentiles(await round_trips(session, base, trips))
                print(f"claim -> outcome round trip ({trips}, sequential): p50 {p['p50']:.2f} ms,"
                      f" p99 {p['p99']:.2f} ms, max {p['max']:.2f} ms")  # fmt: skip
                for label, poller in (("claim-next", claim_next_poller),
                                      ("list + claim by id", daemon_style_poller)):  # fmt: skip
                    await fill(session, base, executions, f"load-{label}")
                    start = time.perf_counter()
                    counts = await asyncio.gather(
                        *(poller(session, base, f"p{n}") for n in range(pollers))
                    )
                    seconds = time.perf_counter() - start
                    assert sum(counts) == executions, counts
                    print(f"{label}: {executions} claims by {pollers} pollers in {seconds:.2f} s"
                          f" = {executions / seconds:,.0f} claims/s")  # fmt: skip
        finally:
            process.terminate()
            process.wait(30)
            if process.stdout:
                process.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executions", type=int, default=10_000)
    parser.add_argument("--pollers", type=int, default=8)
    parser.add_argument("--round-trips", type=int, default=1000)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    run(measure(args.executions, args.pollers, args.round_trips))


if __name__ == "__main__":
    main()
