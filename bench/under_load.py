"""Fire lateness of unrelated cues while a burst is delivered and the API serves load.

Against a real `cueapi-lite serve` process (rate limit off) and a verifying receiver
process: probe cues due at distinct instants are measured first on an idle server, then
again while `--cues` one-time cues fall due at one instant (inside the probes' span) and
a paced client sends `--rate` GET /v1/cues?limit=20 a second. Lateness is the receiver's
arrival time minus the probe's scheduled instant (end to end, one machine's clock).

    python bench/under_load.py [--cues 10000] [--probes 100] [--rate 2000]
        [--pythonpath DIR]   (run the server from another checkout)
        [--phases]           (where the lateness went: fire, wait for a worker, the rest)
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import datetime
from typing import Any

import aiohttp
import loadgen
from common import add_receiver_option, machine, percentiles, receiver_process, server_process
from compare import Api, at, lateness, receiver_stats


async def under_load(args: argparse.Namespace, base: str, key: str, receiver: str) -> None:
    api = Api(base, key)
    try:
        idle = await lateness(api, receiver, args.probes, 5.0, "idle-probe", lead_s=5.0)
        print(f"idle:       probe lateness p50 {idle['p50']:6.1f} ms  p99 {idle['p99']:6.1f} ms"
              f"  max {idle['max']:6.1f} ms", flush=True)  # fmt: skip
        async with aiohttp.ClientSession() as plain:
            await plain.delete(f"{receiver}/_stats")
            # Pace the creation: the first 500 burst cues tell how long all of them take.
            started = time.time()
            far = [time.time() * 1000 + 3_600_000] * min(500, args.cues)
            first_ids = await api.create_once(
                [f"burst-{n}" for n in range(len(far))], far, f"{receiver}/hook"
            )
            per_cue_s = (time.time() - started) / len(far)
            due_ms = (time.time() + per_cue_s * args.cues * 1.3 + 8) // 1 * 1000
            await api.create_once(
                [f"burst-{n}" for n in range(len(far), args.cues)],
                [due_ms] * (args.cues - len(far)), f"{receiver}/hook",
            )  # fmt: skip
            when = {"schedule": {"type": "once", "at": at(due_ms)}}
            for start in range(0, len(first_ids), 16):
                await asyncio.gather(*(api.call("PATCH", f"/v1/cues/{cue_id}", when)
                                       for cue_id in first_ids[start : start + 16]))  # fmt: skip
            # Probes from 1 s before the instant to 4 s after it, none at the instant
            # itself (that would make it one of the burst).
            step = 5000 / args.probes
            probe_due = [due_ms - 1000 + (n + 0.5) * step for n in range(args.probes)]
            await api.create_once(
                [f"probe-{n}" for n in range(args.probes)], probe_due, f"{receiver}/hook"
            )
            if time.time() * 1000 > due_ms - 3000:
                print("warning: setting up took until the burst's instant")
            await asyncio.sleep(max(0.0, (due_ms - 2000) / 1000 - time.time()))
            stop = asyncio.Event()
            load = asyncio.create_task(
                loadgen.paced(f"{base}/v1/cues?limit=20", key, args.rate, stop)
            )
            total = args.cues + args.probes
            while (await receiver_stats(plain, receiver))["arrived"] < total:
                await asyncio.sleep(0.2)
                if time.time() * 1000 > due_ms + 300_000:
                    raise RuntimeError("the burst did not finish in 5 minutes")
            stop.set()
            achieved = await load
            stats = await receiver_stats(plain, receiver, arrivals=True)
        arrivals = stats["arrivals"].values()
        probes = [a - s for a, s, name in arrivals if str(name).startswith("probe-")]
        burst_done = max(a for a, _s, name in arrivals if str(name).startswith("burst-"))
        late = percentiles(probes)
        if args.phases:
            await print_phases(api, stats["arrivals"])
        if args.verbose:
            for a, s, name in sorted(arrivals, key=lambda x: x[1]):
                if str(name).startswith("probe-"):
                    print(f"  probe due {(s - due_ms) / 1000:+.2f} s: late {a - s:7.1f} ms")
        print(f"under load: probe lateness p50 {late['p50']:6.1f} ms  p99 {late['p99']:6.1f} ms"
              f"  max {late['max']:6.1f} ms; the burst of {args.cues:,} arrived in"
              f" {(burst_done - due_ms) / 1000:.2f} s; API load {achieved:,.0f} req/s"
              f" (asked {args.rate:,}); {stats['bad_signatures']} bad signatures")  # fmt: skip
    finally:
        await api.close()


async def print_phases(api: Api, arrivals: dict[str, list[Any]]) -> None:
    """Where each probe's lateness went, from its execution's own times: the fire (the
    timer; the row made), the wait for a delivery worker (the attempt begun), and the
    rest (the write that begins the attempt, the request's trip to the receiver). An
    attempt that begins with its fire (a worker was free) has no wait: its fire's write
    is part of the rest."""
    phases: dict[str, list[float]] = {"fire": [], "to attempt": [], "to arrival": []}
    for execution_id, (arrived_ms, scheduled_ms, name) in arrivals.items():
        if not str(name).startswith("probe-"):
            continue
        row = await api.call("GET", f"/v1/executions/{execution_id}")
        created_ms = datetime.fromisoformat(row["created_at"]).timestamp() * 1000
        started_ms = datetime.fromisoformat(row["started_at"]).timestamp() * 1000
        phases["fire"].append(created_ms - scheduled_ms)
        phases["to attempt"].append(started_ms - created_ms)
        phases["to arrival"].append(arrived_ms - started_ms)
    for phase, values in phases.items():
        cut = percentiles(values)
        print(f"  {phase:>10}: p50 {cut['p50']:6.1f} ms  p99 {cut['p99']:6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cues", type=int, default=10_000)
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--rate", type=int, default=2000, help="API requests per second")
    parser.add_argument("--pythonpath", help="run the server from this checkout")
    parser.add_argument("--verbose", action="store_true", help="print every probe")
    parser.add_argument("--phases", action="store_true", help="where the lateness went")
    add_receiver_option(parser)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with (
        server_process(args.pythonpath) as server,
        receiver_process(server.secret, args.receiver == "aiohttp") as receiver,
    ):
        print(f"server RSS idle after start: {server.rss_mib():.1f} MiB")
        asyncio.run(under_load(args, server.base, server.key, receiver))
        print(f"server RSS after the run: {server.rss_mib():.1f} MiB")


if __name__ == "__main__":
    main()
