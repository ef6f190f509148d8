"""A burst: 10,000 cues due at the same instant, delivered to a local receiver process.

Measures the time from the instant until every execution is acknowledged by the receiver
and its `success` is durable in SQLite, and the executions per second that implies.
Target: the 10,000 done in <= 3 s.

    python bench/burst.py [--cues 10000] [--cron] [--log text|json] [--no-metrics]
                          [--scrape SECONDS] [--receiver lean|aiohttp]

`--cron`: `* * * * *` cues, else once. `--log`: log at INFO as `serve` does (to a file);
without it nothing is logged. `--no-metrics`: the server without /metrics. `--scrape`:
read /metrics every SECONDS during the burst, as Prometheus would.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import add_receiver_option, create_many, machine, receiver_process, run, server


def thread_cpu() -> dict[str, tuple[float, int]]:
    """CPU seconds and waits (voluntary context switches: the interpreter lock, a sleep)
    per thread of this process, by thread name (Linux)."""
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    found: dict[str, tuple[float, int]] = {}
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            name = names.get(int(task.name), "other threads")
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            ticks = int(fields[11]) + int(fields[12])  # utime + stime
            status = (task / "status").read_text()
            waits = int(status.split("\nvoluntary_ctxt_switches:")[1].split()[0])
            cpu, waited = found.get(name, (0.0, 0))
            found[name] = (cpu + ticks / os.sysconf("SC_CLK_TCK"), waited + waits)
    return found


async def scraper(lite: Any, every_s: float) -> None:
    """Read /metrics in-process every `every_s` seconds; prints how many scrapes ran."""
    took: list[float] = []
    try:
        async with lite.client() as client:
            while True:
                await asyncio.sleep(every_s)
                started = time.perf_counter()
                response = await client.get("/metrics")
                took.append(time.perf_counter() - started)
                assert response.status_code == 200
    finally:
        slowest = max(took, default=0) * 1000
        print(f"{len(took)} scrapes of /metrics during the run, slowest {slowest:.1f} ms")


async def measure(cues: int, cron: bool, url: str, metrics: bool, scrape_s: float) -> None:
    # Only when turned off, so the script also runs a version without the setting.
    async with server(**({} if metrics else {"metrics": False})) as (lite, key):
        if cron:
            schedule = {"type": "recurring", "cron": "* * * * *"}
        else:
            due_ms = (time.time_ns() // 1_000_000 // 1000 + 20) * 1000
            at = datetime.fromtimestamp(due_ms / 1000, UTC).isoformat()
            schedule = {"type": "once", "at": at}
        bodies = [
            {"name": f"burst-{n}", "schedule": schedule, "callback": {"url": f"{url}/hook"},
             "payload": {"n": n}}
            for n in range(cues)
        ]  # fmt: skip
        await create_many(lite, key, bodies)
        due_ms = lite.scheduler.next_due_ms()
        assert due_ms is not None
        print(f"{cues} cues created; due in {(due_ms - time.time() * 1000) / 1000:.1f}s")
        batches, operations = lite.store.db.writer.batches, lite.store.db.writer.operations
        scraping = asyncio.create_task(scraper(lite, scrape_s)) if scrape_s else None
        # CPU seconds of this process (event loop and writer thread) from the instant on:
        # on a shared machine a steadier measure of the work than the wall time.
        while time.time() * 1000 < due_ms:
            await asyncio.sleep(0.001)
        cpu_at_due = time.process_time()
        threads_at_due = thread_cpu()
        while True:
            await asyncio.sleep(0.05)
            # Counting rows costs the server's thread a scan: count only once it is idle.
            if time.time() * 1000 < due_ms or lite.delivery.busy:
                continue
            row = lite.store.db.fetchone(
                "SELECT COUNT(*), MAX(updated_at_ms) FROM executions WHERE status = 'success'"
            )
            assert row is not None
            if row[0] >= cues:
                break
        if scraping is not None:
            scraping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scraping
        cpu_s = time.process_time() - cpu_at_due
        seconds = (row[1] - due_ms) / 1000
        writes = lite.store.db.writer.operations - operations
        commits = lite.store.db.writer.batches - batches
        rate = cues / seconds
        print(f"all {cues} delivered and durable {seconds:.2f} s after the instant")
        print(f"{rate:,.0f} executions/s; {writes} writes in {commits} commits")
        print(
            f"{cpu_s:.2f} CPU seconds in this process ({cpu_s / cues * 1e6:.0f} µs per execution)"
        )
        shares = []
        for name, (cpu, waits) in sorted(thread_cpu().items()):
            cpu_then, waits_then = threads_at_due.get(name, (0.0, 0))
            if cpu - cpu_then >= 0.01:
                shares.append(f"{name} {cpu - cpu_then:.2f} s ({waits - waits_then:,} waits)")
        print("  by thread: " + ", ".join(shares))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cues", type=int, default=10_000)
    parser.add_argument("--cron", action="store_true", help="`* * * * *` cues instead of once")
    parser.add_argument("--log", choices=["text", "json"], help="log at INFO, as serve does")
    parser.add_argument("--no-metrics", action="store_true", help="serve without /metrics")
    parser.add_argument("--flush-each-line", action="store_true",
                        help="logging's usual handler (a write per line)")  # fmt: skip
    parser.add_argument("--scrape", type=float, default=0.0, help="scrape /metrics every S s")
    add_receiver_option(parser)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with (
        tempfile.TemporaryDirectory() as folder,
        receiver_process(aiohttp=args.receiver == "aiohttp") as url,
    ):
        if args.log:
            from cueapi_lite.logs import configure

            log = Path(folder) / "serve.log"
            configure("info", args.log, log.open("w"))
            if args.flush_each_line:
                import logging

                [handler] = logging.getLogger().handlers
                plain = logging.StreamHandler(log.open("a"))
                plain.setFormatter(handler.formatter)
                logging.getLogger().handlers[:] = [plain]
        run(measure(args.cues, args.cron, url, not args.no_metrics, args.scrape))
        if args.log:
            print(f"{sum(1 for _ in log.open())} log lines")


if __name__ == "__main__":
    main()
