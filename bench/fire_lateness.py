"""Fire lateness of 10,000 idle cues: how late after its instant each fire happens.

10,000 one-time cues wait on the heap, due at distinct instants spread over 20 s, each
delivered to a local receiver process. For every fire it records how late the scheduler
woke for it and how late its execution row was durable. Target: p99 <= 5 ms.

    python bench/fire_lateness.py [--cues 10000] [--spread 20]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime

from common import create_many, machine, percentiles, receiver_process, run, server

from cueapi_lite.scheduler import Due, Kind


async def measure(cues: int, spread_s: float, url: str) -> None:
    async with server() as (lite, key):
        woke: list[float] = []
        durable: list[float] = []
        fire_due = lite.firing.fire_due

        async def timed(entries: list[Due], now_ms: int) -> None:
            start = time.time_ns() / 1e6
            woke.extend(start - due for due, _ in entries)
            await fire_due(entries, now_ms)
            done = time.time_ns() / 1e6
            durable.extend(done - due for due, _ in entries)

        lite.scheduler.on(Kind.FIRE, timed)
        first_ms = time.time_ns() // 1_000_000 + 15_000 + 1
        step_ms = spread_s * 1000 / cues
        bodies = [
            {
                "name": f"idle-{n}",
                "schedule": {"type": "once", "at": datetime.fromtimestamp(
                    (first_ms + n * step_ms) / 1000, UTC).isoformat()},
                "callback": {"url": f"{url}/hook"},
                "payload": {"n": n},
            }
            for n in range(cues)
        ]  # fmt: skip
        setup = time.perf_counter()
        await create_many(lite, key, bodies)
        print(f"created {cues} cues in {time.perf_counter() - setup:.1f}s")
        while len(durable) < cues:
            await asyncio.sleep(0.25)
        await lite.delivery.drain()
        for label, values in (("woke", woke), ("durable", durable)):
            p = percentiles(values)
            print(f"{label:8s} late by  p50 {p['p50']:6.2f} ms  p99 {p['p99']:6.2f} ms  "
                  f"max {p['max']:6.2f} ms   ({len(values)} fires)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cues", type=int, default=10_000)
    parser.add_argument("--spread", type=float, default=20.0, help="seconds the fires span")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with receiver_process() as url:
        run(measure(args.cues, args.spread, url))


if __name__ == "__main__":
    main()
