"""SQLite next to PostgreSQL with one and with two nodes, in one run: a burst and fire
lateness, each node a real `cueapi-lite serve` process.

* burst: N one-time cues due at the same instant, delivered to a local receiver
  process; seconds from the instant until every execution is `success`.
* lateness: N one-time cues due at distinct instants over a few seconds; how long after
  its instant each execution's first attempt began (the fire committed, the attempt
  taken from the queue; p50 / p99).

The cues are written before the nodes start (through the cue service), so every setup
starts from the same rows. PostgreSQL is a throwaway cluster from the system's binaries
(as in the tests).

    python bench/backends.py [--burst 10000] [--lateness 2000] [--spread 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import machine, percentiles, receiver_process

from cueapi_lite import CueApiLite, Settings
from cueapi_lite.store import is_postgres

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.pgcluster import Cluster, Databases, find_bin_dir

# Time for the nodes to start (and load the cues) before the first instant.
START_LEAD_S = 15


class Node:
    """A `cueapi-lite serve` process on a free port, its log discarded."""

    def __init__(self, db: str, cwd: str) -> None:
        env = dict(os.environ, CUEAPI_LITE_RATE_LIMIT_PER_MINUTE="0",
                   CUEAPI_LITE_LOG_LEVEL="warning")  # fmt: skip
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cueapi_lite", "serve", "--port", "0", "--db", db],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
            cwd=cwd,  # `-m` puts the working directory first on the path
        )  # fmt: skip
        assert self.process.stdout is not None
        banner = ""
        while not banner.endswith("to stop.\n"):
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"server did not start:\n{banner}")
            banner += line
        threading.Thread(target=self._discard, daemon=True).start()

    def _discard(self) -> None:
        assert self.process.stdout is not None
        for _line in self.process.stdout:
            pass

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


def _at(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def write_cues(db: str, bodies: Callable[[int], list[dict[str, Any]]]) -> None:
    """Create the cues `bodies(now_ms)` through the cue service, no server running."""

    async def create() -> None:
        lite = CueApiLite(Settings(db=db))
        await lite.open_offline()
        try:
            key = await lite.accounts.mint_key("bench@example.com")
            made = bodies(time.time_ns() // 1_000_000)
            for start in range(0, len(made), 500):
                await asyncio.gather(
                    *(lite.cues.create(key.user, b) for b in made[start : start + 500])
                )
        finally:
            await lite.close_offline()

    asyncio.run(create())


def rows(db: str, sql: str) -> list[tuple[Any, ...]]:
    if is_postgres(db):
        import psycopg

        with psycopg.connect(db) as conn:
            return list(conn.execute(sql.encode()).fetchall())
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return list(conn.execute(sql).fetchall())


@contextlib.contextmanager
def nodes(db: str, count: int, cwd: str) -> Iterator[None]:
    started: list[Node] = []
    try:
        for _ in range(count):
            started.append(Node(db, cwd))
        yield
    finally:
        for node in started:
            node.stop()


def wait_for_success(db: str, count: int, timeout_s: float = 900) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.2)
        [(done,)] = rows(db, "SELECT COUNT(*) FROM executions WHERE status = 'success'")
        if done >= count:
            return
    raise RuntimeError(f"{count} executions were not delivered in {timeout_s} s")


def burst(db: str, count: int, node_count: int, url: str, cwd: str) -> float:
    due: list[int] = []

    def bodies(now_ms: int) -> list[dict[str, Any]]:
        due.append((now_ms // 1000 + START_LEAD_S) * 1000)
        return [
            {"name": f"burst-{n}", "schedule": {"type": "once", "at": _at(due[0])},
             "callback": {"url": f"{url}/hook"}, "payload": {"n": n}}
            for n in range(count)
        ]  # fmt: skip

    write_cues(db, bodies)
    with nodes(db, node_count, cwd):
        wait_for_success(db, count)
    [(last,)] = rows(db, "SELECT MAX(updated_at_ms) FROM executions")
    return float((last - due[0]) / 1000)


def lateness(
    db: str, count: int, spread_s: float, node_count: int, url: str, cwd: str
) -> dict[str, float]:
    def bodies(now_ms: int) -> list[dict[str, Any]]:
        first_ms = now_ms + START_LEAD_S * 1000
        step_ms = spread_s * 1000 / count
        return [
            {"name": f"idle-{n}", "schedule": {"type": "once", "at": _at(first_ms + n * step_ms)},
             "callback": {"url": f"{url}/hook"}}
            for n in range(count)
        ]  # fmt: skip

    write_cues(db, bodies)
    with nodes(db, node_count, cwd):
        wait_for_success(db, count)
    found = rows(db, "SELECT started_at_ms - scheduled_for_ms FROM executions")
    return percentiles([float(late) for (late,) in found])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--lateness", type=int, default=2_000)
    parser.add_argument("--spread", type=float, default=10.0)
    args = parser.parse_args()
    print(machine(), flush=True)
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL's binaries are needed: apt-get install -y postgresql")
    results = []
    with (
        tempfile.TemporaryDirectory() as folder,
        receiver_process() as url,
        contextlib.closing(_Stoppable(Cluster(bin_dir).start())) as cluster,
    ):
        databases = Databases(cluster.cluster)
        files = iter(range(1000))
        setups: list[tuple[str, int, Callable[[], str]]] = [
            ("SQLite", 1, lambda: str(Path(folder) / f"bench-{next(files)}.db")),
            ("PostgreSQL, 1 node", 1, databases.new),
            ("PostgreSQL, 2 nodes", 2, databases.new),
        ]
        for label, node_count, new_db in setups:
            seconds = burst(new_db(), args.burst, node_count, url, folder)
            late = lateness(new_db(), args.lateness, args.spread, node_count, url, folder)
            results.append((label, seconds, late))
            print(f"{label}: burst {seconds:.2f} s; lateness p50 {late['p50']:.1f} ms,"
                  f" p99 {late['p99']:.1f} ms", flush=True)  # fmt: skip
    print(f"\n| backend | {args.burst:,}-cue burst | fire lateness p50 / p99 |")
    print("|---|---|---|")
    for label, seconds, late in results:
        print(f"| {label} | {seconds:.2f} s | {late['p50']:.1f} / {late['p99']:.1f} ms |")


class _Stoppable:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def close(self) -> None:
        self.cluster.stop()


if __name__ == "__main__":
    main()
