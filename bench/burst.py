"""A burst: 10,000 cues due at the same instant, delivered to a local receiver process.

Measures the time from the instant until every execution is acknowledged by the receiver
and its `success` is durable in SQLite, and the executions per second that implies.
Target: the 10,000 done in <= 3 s.

    python bench/burst.py [--cues 10000] [--cron]   (--cron: `* * * * *` cues, else once)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from common import create_many, machine, receiver_process, run, server


def thread_cpu() -> dict[str, float]:
    """CPU seconds per thread of this process, by thread name (Linux)."""
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    found: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            name = names.get(int(task.name), "other threads")
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            ticks = int(fields[11]) + int(fields[12])  # utime + stime
            found[name] = found.get(name, 0.0) + ticks / os.sysconf("SC_CLK_TCK")
    return found


async def measure(cues: int, cron: bool, url: str) -> None:
    async with server() as (lite, key):
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
        await asyncio.sleep(max(0.0, due_ms / 1000 - time.time() - 0.5))
        cpu_before = time.process_time()
        threads_before = thread_cpu()
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
        seconds = (row[1] - due_ms) / 1000
        writes = lite.store.db.writer.operations - operations
        commits = lite.store.db.writer.batches - batches
        rate = cues / seconds
        print(f"all {cues} delivered and durable {seconds:.2f} s after the instant")
        print(f"{rate:,.0f} executions/s; {writes} writes in {commits} commits")
        cpu_s = time.process_time() - cpu_before
        # CPU time is what a shared machine distorts least: compare it between versions.
        print(f"server CPU (all threads) {cpu_s:.2f} s: {cpu_s / cues * 1e6:.0f} us per execution")
        spent = {name: cpu - threads_before.get(name, 0.0) for name, cpu in thread_cpu().items()}
        shares = [f"{name} {cpu:.2f} s" for name, cpu in sorted(spent.items()) if cpu >= 0.01]
        print("  by thread: " + ", ".join(shares))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cues", type=int, default=10_000)
    parser.add_argument("--cron", action="store_true", help="`* * * * *` cues instead of once")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with receiver_process() as url:
        run(measure(args.cues, args.cron, url))


if __name__ == "__main__":
    main()
