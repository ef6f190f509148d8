"""SQLite next to PostgreSQL (one node), in one run: a burst and fire lateness.

* burst: N one-time cues due at the same instant, delivered to a local receiver
  process; seconds from the instant until every execution is `success` and durable.
* lateness: N one-time cues due at distinct instants over a few seconds; how late after
  its instant each fire's execution row was durable (p50 / p99).

PostgreSQL is a throwaway cluster from the system's binaries (as in the tests).

    python bench/backends.py [--burst 10000] [--lateness 2000] [--spread 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import create_many, percentiles, receiver_process, run

from cueapi_lite import CueApiLite, Settings
from cueapi_lite.scheduler import Due, Kind
from cueapi_lite.services.accounts import NewKey

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.pgcluster import Cluster, Databases, find_bin_dir


@contextlib.asynccontextmanager
async def server(db: str) -> AsyncIterator[tuple[CueApiLite, NewKey]]:
    lite = CueApiLite(Settings(db=db))
    await lite.start()
    try:
        yield lite, await lite.accounts.mint_key("bench@example.com")
    finally:
        await lite.aclose()


def _at(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


async def burst(db: str, cues: int, url: str) -> float:
    async with server(db) as (lite, key):
        due_ms = (time.time_ns() // 1_000_000 // 1000 + 30) * 1000
        bodies = [
            {"name": f"burst-{n}", "schedule": {"type": "once", "at": _at(due_ms)},
             "callback": {"url": f"{url}/hook"}, "payload": {"n": n}}
            for n in range(cues)
        ]  # fmt: skip
        await create_many(lite, key, bodies)
        while True:
            await asyncio.sleep(0.1)
            row = lite.store.db.fetchone(  # type: ignore[attr-defined]
                "SELECT COUNT(*), MAX(updated_at_ms) FROM executions WHERE status = 'success'"
            )
            if row[0] >= cues:
                return float((row[1] - due_ms) / 1000)


async def lateness(db: str, cues: int, spread_s: float, url: str) -> dict[str, float]:
    async with server(db) as (lite, key):
        durable: list[float] = []
        fire_due = lite.firing.fire_due

        async def timed(entries: list[Due], now_ms: int) -> None:
            await fire_due(entries, now_ms)
            done = time.time_ns() / 1e6
            durable.extend(done - due for due, _ in entries)

        lite.scheduler.on(Kind.FIRE, timed)
        first_ms = time.time_ns() // 1_000_000 + 20_000
        step_ms = spread_s * 1000 / cues
        bodies = [
            {"name": f"idle-{n}", "schedule": {"type": "once", "at": _at(first_ms + n * step_ms)},
             "callback": {"url": f"{url}/hook"}}
            for n in range(cues)
        ]  # fmt: skip
        await create_many(lite, key, bodies)
        while len(durable) < cues:
            await asyncio.sleep(0.25)
        await lite.delivery.drain()
        return percentiles(durable)


@contextlib.contextmanager
def backends() -> Iterator[list[tuple[str, Any]]]:
    """(label, a function giving a new empty database's `db` setting) per backend."""
    bin_dir = find_bin_dir()
    with tempfile.TemporaryDirectory() as folder:
        files = iter(range(1000))
        found: list[tuple[str, Any]] = [
            ("SQLite", lambda: str(Path(folder) / f"bench-{next(files)}.db"))
        ]
        cluster = Cluster(bin_dir).start() if bin_dir else None
        try:
            if cluster is not None:
                databases = Databases(cluster)
                found.append(("PostgreSQL, 1 node", databases.new))
            yield found
        finally:
            if cluster is not None:
                cluster.stop()


def main() -> None:
    logging.disable(logging.WARNING)  # a burst logs every fire and delivery
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--lateness", type=int, default=2_000)
    parser.add_argument("--spread", type=float, default=10.0)
    args = parser.parse_args()
    rows = []
    with receiver_process() as url, backends() as found:
        for label, new_db in found:
            seconds = run(burst(new_db(), args.burst, url))
            late = run(lateness(new_db(), args.lateness, args.spread, url))
            rows.append((label, seconds, late))
            print(f"{label}: burst {seconds:.2f} s; lateness p50 {late['p50']:.1f} ms,"
                  f" p99 {late['p99']:.1f} ms", flush=True)  # fmt: skip
    print(f"\n| backend | {args.burst:,}-cue burst | fire lateness p50 / p99 |")
    print("|---|---|---|")
    for label, seconds, late in rows:
        print(f"| {label} | {seconds:.2f} s | {late['p50']:.1f} / {late['p99']:.1f} ms |")


if __name__ == "__main__":
    main()
