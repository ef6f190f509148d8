"""Server time of each dashboard page with 10,000 cues and 1,000,000 executions.

Rows are bulk-inserted with SQL (not over HTTP): every cue gets 100 executions spread
over the last 30 days (~33,000 in the last 24 hours), mostly successes, with failures,
missed runs, unknown outcomes and failed verifications mixed in. Each page is then
requested through the in-process ASGI client (no sockets), logged in with the cookie
session; the time is the whole request (auth, queries, template), as wall time and as
the process's CPU time (steadier on a shared machine).

Each page is timed twice: "fresh" after a commit more than 2 s ago (every read runs),
and "reused" with nothing committed in between (the widest reads are reused, see
`cueapi_lite/web/snapshots.py`).

    python bench/dashboard.py [--cues 10000] [--per-cue 100] [--rounds 20] [--db FILE]
    (--db: keep the filled database in FILE, and reuse it when it exists)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from cueapi_lite import CueApiLite, ManualClock, Settings

DAY_MS = 86_400_000
OPTIONS = {
    "callback": json.dumps({"url": "http://127.0.0.1:9/hook", "method": "POST", "headers": {}}),
    "retry": json.dumps({"max_attempts": 3, "backoff_minutes": [1, 5, 15]}),
    "on_failure": json.dumps({"email": False, "webhook": None, "pause": False}),
    "delivery": json.dumps({"timeout_seconds": 30, "outcome_deadline_seconds": 300}),
    "alerts": json.dumps({"consecutive_failures": 3, "missed_window_multiplier": 2}),
    "verification": json.dumps({"mode": "none"}),
}
CRONS = ["0 9 * * *", "*/15 * * * *", "30 7 * * 1-5", "0 * * * *", "0 0 1 * *"]
ZONES = ["UTC", "America/Los_Angeles", "Europe/Berlin", "Asia/Tokyo"]
# (status, outcome_state, weight)
STATES = [
    ("success", "reported_success", 88),
    ("failed", None, 5),
    ("missed", None, 3),
    ("success", "unknown", 2),
    ("success", "verification_failed", 1),
    ("success", "reported_failure", 1),
]


def fill(db: Path, user_id: str, cues: int, per_cue: int, now_ms: int) -> None:
    rng = random.Random(7)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    cue_ids = []
    for n in range(cues):
        cue_id = f"cue_bench{n:07d}"
        cue_ids.append(cue_id)
        created = now_ms - 40 * DAY_MS + n
        conn.execute(
            "INSERT INTO cues (id, user_id, name, status, transport, schedule_type, cron,"
            " timezone, callback, payload, retry, on_failure, delivery, alerts, catch_up,"
            " verification, next_fire_at_ms, run_count, fired_count, created_at_ms,"
            " updated_at_ms, watch_from_ms) VALUES (?, ?, ?, ?, 'webhook', 'recurring', ?, ?,"
            " ?, '{}', ?, ?, ?, ?, 'run_once_if_missed', ?, ?, ?, ?, ?, ?, ?)",
            (
                cue_id, user_id, f"bench-cue-{n:05d}", "paused" if n % 20 == 0 else "active",
                CRONS[n % len(CRONS)], ZONES[n % len(ZONES)], OPTIONS["callback"],
                OPTIONS["retry"], OPTIONS["on_failure"], OPTIONS["delivery"], OPTIONS["alerts"],
                OPTIONS["verification"], now_ms + rng.randrange(DAY_MS), per_cue, per_cue,
                created, created, created,
            ),
        )  # fmt: skip
    weights = [w for *_, w in STATES]
    rows = []
    for cue_id in cue_ids:
        for _ in range(per_cue):
            at = now_ms - rng.randrange(30 * DAY_MS)
            status, state, _w = rng.choices(STATES, weights)[0]
            outcome = (
                json.dumps(
                    {"success": state in (None, "reported_success", "unknown"), "recorded_at": None}
                )
                if state not in (None, "unknown")
                else None
            )
            rows.append(
                (str(uuid.uuid4()), cue_id, user_id, at, "schedule", status,
                 "server_down" if status == "missed" else None, "{}", 1,
                 200 if status == "success" else 500, at + 40, at + 250, at + 40,
                 outcome, state, at, at + 250)
            )  # fmt: skip
        if len(rows) >= 100_000:
            _insert(conn, rows)
            rows = []
    _insert(conn, rows)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def _insert(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    conn.executemany(
        "INSERT INTO executions (id, cue_id, user_id, scheduled_for_ms, triggered_by, status,"
        " missed_reason, payload, attempts, http_status, started_at_ms, delivered_at_ms,"
        " last_attempt_at_ms, outcome, outcome_state, created_at_ms, updated_at_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def _ms(times: list[float], cpu: list[float]) -> str:
    times = sorted(times)
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    return f"{statistics.median(times):8.1f} {p95:8.1f} {statistics.median(cpu):8.1f}"


async def main(cues: int, per_cue: int, rounds: int, keep: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(keep) if keep else Path(tmp) / "bench.db"
        clock = ManualClock()
        settings = Settings(db=str(db), rate_limit_per_minute=0)
        filled = db.exists()
        lite = CueApiLite(settings, clock=clock)
        await lite.start()
        key = await lite.accounts.mint_key("bench@example.com")
        await lite.aclose()
        if not filled:
            started = time.perf_counter()
            fill(db, key.user.id, cues, per_cue, clock.now_ms())
            print(f"inserted {cues:,} cues and {cues * per_cue:,} executions"
                  f" in {time.perf_counter() - started:.1f} s")  # fmt: skip
        with sqlite3.connect(db) as conn:
            (cue_id,) = conn.execute("SELECT id FROM cues ORDER BY id LIMIT 1 OFFSET ?",
                                     (cues // 2,)).fetchone()  # fmt: skip
            (execution_id,) = conn.execute(
                "SELECT id FROM executions WHERE cue_id = ? LIMIT 1", (cue_id,)
            ).fetchone()
            counted = conn.execute("SELECT (SELECT COUNT(*) FROM cues),"
                                   " (SELECT COUNT(*) FROM executions)").fetchone()  # fmt: skip
        print(f"database: {counted[0]:,} cues, {counted[1]:,} executions")

        lite = CueApiLite(settings, clock=clock)
        await lite.start()

        async def commit_something() -> None:
            # Any commit changes the data version; 2 s later nothing is reused.
            await lite.store.db.write(
                lambda conn: conn.execute("UPDATE users SET email = email WHERE 0")
            )
            await lite.store.db.write(
                lambda conn: conn.execute(
                    "UPDATE users SET webhook_secret = webhook_secret WHERE id = ?",
                    (key.user.id,),
                )
            )
            clock.advance(3)

        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=lite.asgi), base_url="http://127.0.0.1:8000"
            ) as web:
                form = (await web.get("/login")).text
                csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form)
                assert csrf is not None
                await web.post("/login", data={"csrf": csrf.group(1), "api_key": key.api_key})
                pages = [
                    ("overview", "/"),
                    ("cues, page 1", "/cues"),
                    ("cues, page 100", "/cues?page=100"),
                    ("cues, failing", "/cues?status=failing"),
                    ("cues, search", "/cues?q=cue-0999"),
                    ("cue detail", f"/cues/{cue_id}"),
                    ("execution", f"/executions/{execution_id}"),
                    ("alerts", "/alerts"),
                    ("workers", "/workers"),
                ]
                print(f"{'ms':<16} {'fresh p50':>9} {'p95':>8} {'cpu':>8}"
                      f" {'reused p50':>11} {'p95':>8} {'cpu':>8}")  # fmt: skip
                for name, path in pages:
                    fresh: tuple[list[float], list[float]] = ([], [])
                    reused: tuple[list[float], list[float]] = ([], [])
                    for _ in range(rounds):
                        await commit_something()
                        for times, cpu in (fresh, reused):
                            begin, begin_cpu = time.perf_counter(), time.process_time()
                            response = await web.get(path)
                            times.append((time.perf_counter() - begin) * 1000)
                            cpu.append((time.process_time() - begin_cpu) * 1000)
                            assert response.status_code == 200, (path, response.status_code)
                    print(f"{name:<16} {_ms(*fresh)}    {_ms(*reused)}")
                version = (await web.get("/")).headers["x-live-version"]
                begin = time.perf_counter()
                for _ in range(rounds * 10):
                    unchanged = await web.get("/cues", headers={"X-Live-Version": version})
                    assert unchanged.status_code == 204
                per_poll = (time.perf_counter() - begin) * 1000 / (rounds * 10)
                print(f"{'live poll, 204':<16} {per_poll:8.2f}")
        finally:
            await lite.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cues", type=int, default=10_000)
    parser.add_argument("--per-cue", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--db", default=None)
    args = parser.parse_args()
    asyncio.run(main(args.cues, args.per_cue, args.rounds, args.db))
