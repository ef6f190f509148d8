"""A burst: 10,000 cues due at the same instant, delivered to a local receiver process.

Measures the time from the instant until every execution is acknowledged by the receiver
and its `success` is durable in SQLite, and the executions per second that implies.
Target: the 10,000 done in <= 3 s.

    python bench/burst.py [--cues 10000] [--cron]   (--cron: `* * * * *` cues, else once)
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime

from common import create_many, receiver_process, run, server


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
        while True:
            await asyncio.sleep(0.05)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cues", type=int, default=10_000)
    parser.add_argument("--cron", action="store_true", help="`* * * * *` cues instead of once")
    args = parser.parse_args()
    with receiver_process() as url:
        run(measure(args.cues, args.cron, url))


if __name__ == "__main__":
    main()
