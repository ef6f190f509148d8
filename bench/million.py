"""A million active cues and ten million execution rows in one SQLite file.

Cues and executions are bulk-loaded by SQL statements that copy a template cue made
through the service (not over HTTP): the cues get daily schedules spread over
`--instants` minutes of the day, the executions are finished runs, `--busy` of them one
cue's and the rest spread over 1,000 cues. Then a fresh process times a cold start
(open -> the heap loaded -> first fire possible: when `start()` returns, the scheduler
loop runs), the sweep that arms the missed-window checks afterwards (in steps, between
fires and requests), the resident memory, and the latency of reads through the ASGI
app in-process (no sockets), beside the same reads on a database of 20 cues measured
in the same process.

    python bench/million.py [--cues 1000000] [--executions 10000000] [--db FILE]

With `--db` the large database is kept in FILE and reused when it exists.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine, percentiles, run

from cueapi_lite import CueApiLite, Settings
from cueapi_lite.cron import schedule_for
from cueapi_lite.store.sqlite.rows import CUE_COLUMNS

CUE_CHUNK = 100_000
EXECUTION_CHUNK = 500_000
SPREAD_CUES = 1_000
WALK = 100  # pages of executions walked through from deep in the history
PAGES = 2_000
QUIET_MS = 4 * 3_600_000


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cue_copy(template_created_ms: int) -> str:
    """INSERT ... SELECT: cue `n` (from the `numbers` CTE) copied from the template row,
    with its own id, name, payload, creation time and daily schedule (from `slots`)."""
    replaced = {
        "id": "printf('cue_%012d', n)",
        "name": "'cue-' || n",
        "payload": "'{\"n\":' || n || '}'",
        "cron": "slots.cron",
        "next_fire_at_ms": "slots.next_ms",
        "created_at_ms": f"{template_created_ms} + n",
        "updated_at_ms": f"{template_created_ms} + n",
    }
    columns = [c.strip() for c in CUE_COLUMNS.split(",")]
    values = ", ".join(replaced.get(c, f"t.{c}") for c in columns)
    return (
        "WITH RECURSIVE numbers(n) AS (SELECT ? UNION ALL SELECT n + 1 FROM numbers"  # noqa: S608
        " WHERE n < ?)"
        f" INSERT INTO cues ({CUE_COLUMNS}) SELECT {values}"
        " FROM numbers JOIN slots ON slots.slot = n % (SELECT COUNT(*) FROM slots)"
        " CROSS JOIN (SELECT * FROM cues WHERE id = ?) AS t"
    )


# Finished runs: row `n` belongs to the busy cue (n < busy) or to one of the first
# SPREAD_CUES copies; one occurrence a second, going back from `now`.
EXECUTION_COPY = (
    "WITH RECURSIVE numbers(n) AS (SELECT ? UNION ALL SELECT n + 1 FROM numbers"
    " WHERE n < ?)"
    " INSERT INTO executions (id, cue_id, user_id, scheduled_for_ms, triggered_by, status,"
    " payload, attempts, http_status, started_at_ms, delivered_at_ms, created_at_ms,"
    " updated_at_ms, transport)"
    " SELECT printf('%08x-0000-4000-8000-%012x', n / 65536, n),"
    " CASE WHEN n < ? THEN ? ELSE printf('cue_%012d', 1 + n % ?) END,"
    " ?, ? - n * 1000, 'schedule', 'success', '{\"n\":0}', 1, 200,"
    " ? - n * 1000, ? - n * 1000 + 50, ? - n * 1000, ? - n * 1000 + 50, 'webhook'"
    " FROM numbers"
)


async def fill(db: str, cues: int, executions: int, busy: int, instants: int) -> None:
    lite = CueApiLite(Settings(db=db, rate_limit_per_minute=0))
    await lite.start()
    key = await lite.accounts.mint_key("million@example.com")
    body = {"name": "template", "schedule": {"type": "recurring", "cron": "0 0 * * *"},
            "callback": {"url": "http://127.0.0.1:9/hook"}, "payload": {"n": 0}}  # fmt: skip
    template = await lite.cues.create(key.user, body)
    now_ms = template.created_at_ms
    slots = []
    for slot in range(instants):
        minute = slot * (24 * 60) // instants
        cron = f"{minute % 60} {minute // 60} * * *"
        # Each cue's next fire is an occurrence at least QUIET_MS away, so no cue falls
        # due while the benchmark measures (what fires cost is bench/burst.py's).
        slots.append((slot, cron, schedule_for(cron, "UTC").next_after(now_ms + QUIET_MS)))

    def make_slots(conn: Any) -> None:
        conn.execute("PRAGMA cache_size = -500000")
        conn.execute("CREATE TEMP TABLE slots (slot INTEGER PRIMARY KEY, cron, next_ms)")
        conn.executemany("INSERT INTO slots VALUES (?, ?, ?)", slots)

    await lite.store.db.write(make_slots)
    started = time.perf_counter()
    copy = _cue_copy(template.created_at_ms)
    for first in range(1, cues, CUE_CHUNK):
        last = min(cues - 1, first + CUE_CHUNK - 1)

        def cue_rows(conn: Any, first: int = first, last: int = last) -> None:
            conn.execute(copy, (first, last, template.id))

        await lite.store.db.write(cue_rows)
    print(f"{cues:,} cues bulk-loaded in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    for first in range(0, executions, EXECUTION_CHUNK):
        last = min(executions, first + EXECUTION_CHUNK) - 1
        params = (first, last, busy, template.id, min(SPREAD_CUES, cues - 1), key.user.id,
                  *([now_ms] * 5))  # fmt: skip

        def execution_rows(conn: Any, params: tuple[Any, ...] = params) -> None:
            conn.execute(EXECUTION_COPY, params)

        await lite.store.db.write(execution_rows)
        print(f"  {last + 1:,} execution rows", flush=True)
    print(f"{executions:,} execution rows loaded in {time.perf_counter() - started:.1f} s"
          f" ({busy:,} of them one cue's)", flush=True)  # fmt: skip
    await lite.aclose()


async def get(lite: CueApiLite, key: str, path: str) -> None:
    """One GET through the ASGI app (no sockets); it must answer 200."""
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

    await lite.asgi(scope, receive, send)
    assert status == 200, (path, status)


async def timed_reads(lite: CueApiLite, key: str, paths: list[str], n: int) -> dict[str, Any]:
    results = {}
    for path in paths:
        timings = []
        for _ in range(n):
            started = time.perf_counter()
            await get(lite, key, path)
            timings.append((time.perf_counter() - started) * 1000)
        results[path] = percentiles(timings)
    return results


def read_rows(cue_id: str) -> list[tuple[str, str]]:
    return [
        ("GET /v1/cues?limit=20", "/v1/cues?limit=20"),
        ("GET /v1/cues?limit=20&offset=<middle>", "/v1/cues?limit=20&offset={middle}"),
        ("GET /v1/cues/{id}", f"/v1/cues/{cue_id}"),
        ("GET /v1/executions?cue_id={id}&limit=20", f"/v1/executions?cue_id={cue_id}&limit=20"),
        ("GET /v1/executions?limit=20", "/v1/executions?limit=20"),
        ("GET /v1/executions?limit=20&offset=100000", "/v1/executions?limit=20&offset={deep}"),
        ("GET /v1/auth/me", "/v1/auth/me"),
    ]


async def reference(folder: str, reads: int) -> dict[str, Any]:
    """The same reads on 20 cues and 20 executions."""
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
    paths = [path.format(middle=10, deep=10) for _, path in read_rows(first.id)]
    small.reads.version = None  # every read reaches the database (see `measure`)
    found = await timed_reads(small, key.api_key, paths, reads)
    await small.aclose()
    return found


async def measure(args: argparse.Namespace) -> None:
    """In a fresh process: the cold start, the sweep, memory, then the reads."""
    with tempfile.TemporaryDirectory() as folder:
        small = await reference(folder, args.reads)
    db = args.db
    size_mib = sum(p.stat().st_size for p in Path(db).parent.glob(Path(db).name + "*")) / 2**20
    before = rss_mib()
    started = time.perf_counter()
    lite = CueApiLite(Settings(db=db, rate_limit_per_minute=0))
    await lite.start()
    cold_s = time.perf_counter() - started
    heap, after_start = len(lite.scheduler), rss_mib()
    started = time.perf_counter()
    await lite.settle()  # the missed-window sweep's remaining steps (nothing else is due)
    sweep_s = time.perf_counter() - started
    print(f"cold start: open -> {heap:,} deadlines on the heap -> first fire possible"
          f" in {cold_s:.2f} s; RSS {after_start:.0f} MiB ({before:.0f} MiB before opening;"
          f" database {size_mib:,.0f} MiB)", flush=True)  # fmt: skip
    print(
        f"missed-window sweep over every watched cue afterwards: {sweep_s:.2f} s;"
        f" {len(lite.scheduler):,} deadlines on the heap; RSS {rss_mib():.0f} MiB",
        flush=True,
    )
    key = await lite.accounts.mint_key("million@example.com")
    busy = lite.store.db.fetchone("SELECT id FROM cues WHERE name = 'template'")[0]
    cues = lite.store.db.fetchone("SELECT COUNT(*) FROM cues")[0]
    executions = lite.store.db.fetchone("SELECT COUNT(*) FROM executions")[0]
    paths = [path.format(middle=cues // 2, deep=min(100_000, executions // 2))
             for _, path in read_rows(busy)]  # fmt: skip
    # Repeated reads with no commit between them would be answered from the read cache;
    # what is measured here is the read itself, so the cache is off.
    version, lite.reads.version = lite.reads.version, None
    large = await timed_reads(lite, key.api_key, paths, args.reads)
    lite.reads.version = version  # on again: its memory is part of what is measured
    for rounds in (1, 2):
        started = time.perf_counter()
        pages = [f"/v1/cues?limit=100&offset={n * 100}" for n in range(min(PAGES, cues // 100))]
        for page in pages:
            await get(lite, key.api_key, page)
        took_s = time.perf_counter() - started
        print(f"listing {len(pages):,} pages of 100 cues (round {rounds}): {took_s:.1f} s;"
              f" RSS afterwards {rss_mib():.0f} MiB")  # fmt: skip
    deep = min(100_000, executions // 2)
    walk = [f"/v1/executions?limit=20&offset={deep + n * 20}" for n in range(WALK)]
    started = time.perf_counter()
    for page in walk:
        await get(lite, key.api_key, page)
    took_ms = (time.perf_counter() - started) * 1000
    print(
        f"walking {WALK} pages of 20 executions from offset {deep:,} on: {took_ms / WALK:.2f} ms"
        f" a page (the first skips to its start, the others resume where one ended)"
    )
    await lite.aclose()
    print(f"{cues:,} cues, {executions:,} executions")
    print(f"{'in-process read, ms':42s} {'20 cues p50 / p99':>18s}   {'large p50 / p99':>16s}")
    rows = zip(read_rows(busy), small.values(), large.values(), strict=True)
    for (label, _), small_p, large_p in rows:
        print(f"{label:42s} {small_p['p50']:7.2f} / {small_p['p99']:6.2f}"
              f"   {large_p['p50']:7.2f} / {large_p['p99']:6.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cues", type=int, default=1_000_000)
    parser.add_argument("--executions", type=int, default=10_000_000)
    parser.add_argument("--busy", type=int, default=1_000_000, help="executions of one cue")
    parser.add_argument("--instants", type=int, default=1440, help="daily fire times")
    parser.add_argument("--reads", type=int, default=500, help="timed reads per path")
    parser.add_argument("--db", help="keep the large database in this file (reused when it exists)")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("cueapi_lite").setLevel(logging.ERROR)  # failed deliveries to nowhere
    if args.measure:
        run(measure(args))
        return
    print(f"machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        db = args.db or str(Path(folder) / "million.db")
        if not Path(db).exists():
            run(fill(db, args.cues, args.executions, args.busy, args.instants))
        command = [sys.executable, __file__, "--measure", "--db", db, "--reads", str(args.reads)]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
