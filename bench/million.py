"""A million active cues (and a million or more execution rows) in one SQLite file.

Cues are bulk-loaded through the store (not over HTTP), then the instance is closed and
opened again to time a cold start: open -> every deadline on the heap -> first fire
possible (when `start()` returns, the scheduler loop runs). Then the resident memory, and
the latency of reads through the ASGI app in-process (no sockets), compared with the same
reads on a database of 20 cues measured in the same run.

    python bench/million.py [--cues 1000000] [--executions 1000000] [--busy 100000]

`--busy` of the executions belong to one cue (its history is listed); the rest are spread
over the first 1,000 cues.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine, percentiles, run

from cueapi_lite import CueApiLite, Settings
from cueapi_lite.models import Cue, ExecutionStatus, new_cue_id, new_execution
from cueapi_lite.store.sqlite.rows import (
    CUE_INSERT,
    EXECUTION_INSERT,
    cue_options,
    execution_params,
)

CHUNK = 50_000


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def fill(lite: CueApiLite, cues: int, executions: int, busy: int) -> str:
    """Load the cues and executions; returns the id of the cue with `busy` executions."""
    key = await lite.accounts.mint_key("million@example.com")
    body = {"name": "template", "schedule": {"type": "recurring", "cron": "0 0 1 1 *"},
            "callback": {"url": "http://127.0.0.1:9/hook"}, "payload": {"n": 0}}  # fmt: skip
    template = await lite.cues.create(key.user, body)
    started = time.perf_counter()
    # Rows straight from the template's (the store's own row and INSERT statement): the
    # ids, names, payloads and creation instants differ.
    t, s = template, template.schedule
    base = [
        t.id, t.user_id, t.name, t.description, t.status, t.transport, s.type, s.cron,
        s.at_ms, s.timezone, *cue_options(t), t.next_fire_at_ms, t.last_run_ms, t.run_count,
        t.fired_count, t.warning, t.created_at_ms, t.updated_at_ms, t.watch_from_ms,
    ]  # fmt: skip
    made: list[Cue] = [template]
    for first in range(1, cues, CHUNK):
        rows = []
        for n in range(first, min(cues, first + CHUNK)):
            row = base.copy()
            row[0], row[2], row[11] = new_cue_id(), f"cue-{n}", f'{{"n":{n}}}'
            row[23] = row[24] = template.created_at_ms + n
            rows.append(tuple(row))
            if len(made) < 1000:
                made.append(dataclasses.replace(template, id=row[0]))

        def insert(conn: Any, rows: list[Any] = rows) -> None:
            conn.executemany(CUE_INSERT, rows)

        await lite.store.db.write(insert)
    print(f"{cues:,} cues bulk-loaded in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    now_ms = template.created_at_ms
    for first in range(0, executions, CHUNK):
        rows = []
        for n in range(first, min(executions, first + CHUNK)):
            cue = template if n < busy else made[n % len(made)]
            execution = new_execution(cue, now_ms - n * 1000, "schedule", now_ms)
            execution.status = ExecutionStatus.SUCCESS.value
            rows.append(execution_params(execution))

        def op(conn: Any, rows: list[Any] = rows) -> None:
            conn.executemany(EXECUTION_INSERT, rows)

        await lite.store.db.write(op)
    print(f"{executions:,} execution rows loaded in {time.perf_counter() - started:.1f} s"
          f" ({busy:,} of them one cue's)", flush=True)  # fmt: skip
    return template.id


async def timed_reads(lite: CueApiLite, key: str, paths: list[str], n: int) -> dict[str, Any]:
    results = {}
    for path in paths:
        route, _, query = path.partition("?")
        scope = {"type": "http", "method": "GET", "path": route, "raw_path": route.encode(),
                 "query_string": query.encode(), "root_path": "", "scheme": "http",
                 "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {key}".encode())],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2),
                 "http_version": "1.1"}  # fmt: skip
        status = 0

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        timings = []
        for _ in range(n):
            started = time.perf_counter()
            await lite.asgi(dict(scope), receive, send)
            timings.append((time.perf_counter() - started) * 1000)
            assert status == 200, (path, status)
        results[path] = percentiles(timings)
    return results


def read_rows(cue_id: str) -> list[tuple[str, str]]:
    return [
        ("GET /v1/cues?limit=20", "/v1/cues?limit=20"),
        ("GET /v1/cues?limit=20&offset=<middle>", "/v1/cues?limit=20&offset={middle}"),
        ("GET /v1/cues/{id}", f"/v1/cues/{cue_id}"),
        ("GET /v1/executions?cue_id={id}&limit=20", f"/v1/executions?cue_id={cue_id}&limit=20"),
        ("GET /v1/executions?limit=20", "/v1/executions?limit=20"),
        ("GET /v1/auth/me", "/v1/auth/me"),
    ]


async def measure(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        # The reference: the same reads on 20 cues.
        small = CueApiLite(Settings(db=str(Path(folder) / "small.db"), rate_limit_per_minute=0))
        await small.start()
        key = await small.accounts.mint_key("small@example.com")
        body = {"schedule": {"type": "recurring", "cron": "0 0 1 1 *"},
                "callback": {"url": "http://127.0.0.1:9/hook"}, "payload": {"n": 0}}  # fmt: skip
        first = await small.cues.create(key.user, {"name": "c0", **body})
        for n in range(1, 20):
            await small.cues.create(key.user, {"name": f"c{n}", **body})
        for _ in range(20):
            await small.cues.fire(key.user, first.id, {})
        await small.settle()
        rows = read_rows(first.id)
        reference = await timed_reads(
            small, key.api_key, [path.format(middle=10) for _, path in rows], args.reads
        )
        await small.aclose()

        db = args.db or str(Path(folder) / "million.db")
        lite = CueApiLite(Settings(db=db, rate_limit_per_minute=0))
        await lite.start()
        if Path(db).stat().st_size > 2**20:  # kept from an earlier run (--db)
            busy = lite.store.db.fetchone("SELECT id FROM cues WHERE name = 'template'")[0]
        else:
            busy = await fill(lite, args.cues, args.executions, args.busy)
        await lite.aclose()
        size_mib = sum(p.stat().st_size for p in Path(db).parent.glob(Path(db).name + "*")) / 2**20

        before = rss_mib()
        started = time.perf_counter()
        lite = CueApiLite(Settings(db=db, rate_limit_per_minute=0))
        if args.profile:
            import cProfile

            profile = cProfile.Profile()
            profile.enable()
        await lite.start()
        cold_s = time.perf_counter() - started
        if args.profile:
            profile.disable()
            profile.dump_stats(args.profile)
        heap = len(lite.scheduler._heap)
        print(f"cold start: open -> {heap:,} deadlines on the heap -> first fire possible"
              f" in {cold_s:.2f} s; RSS {rss_mib():.0f} MiB (was {before:.0f} MiB before"
              f" opening; database {size_mib:,.0f} MiB)", flush=True)  # fmt: skip
        key = await lite.accounts.mint_key("million@example.com")
        rows = read_rows(busy)
        found = await timed_reads(
            lite, key.api_key, [path.format(middle=args.cues // 2) for _, path in rows],
            args.reads,
        )  # fmt: skip
        print(f"RSS after the reads {rss_mib():.0f} MiB")
        await lite.aclose()
    print(f"{'in-process read, ms':42s} {'20 cues p50 / p99':>18s}   {'large p50 / p99':>16s}")
    for (label, _), small_p, large_p in zip(rows, reference.values(), found.values(), strict=True):
        print(f"{label:42s} {small_p['p50']:7.2f} / {small_p['p99']:6.2f}"
              f"   {large_p['p50']:7.2f} / {large_p['p99']:6.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cues", type=int, default=1_000_000)
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--busy", type=int, default=100_000)
    parser.add_argument("--reads", type=int, default=500, help="timed reads per path")
    parser.add_argument("--db", help="keep the large database in this file (reused when it exists)")
    parser.add_argument("--profile", help="write a cProfile of the cold start to this file")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    run(measure(args))


if __name__ == "__main__":
    main()
