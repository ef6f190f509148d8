"""The writer's SQL for a 10,000-cue burst, alone on one thread: what each step costs
per execution, with and without SQLite checkpointing inside the commits
(`wal_autocheckpoint`; the server checkpoints on a thread of its own), and with a
statement per row (as the server wrote until batching) or per slice (`SqliteTx`).

Each execution's rows move as in a burst: the cue's fire and the execution's insert, the
attempt begun, then the attempt finished with its cue's run counted. `--batch`
executions share a transaction, as group commit gathers them. The cues are made once,
through the service, in a template file. A statement costs more in the server than here:
each one's steps hand the interpreter lock to the event loop and back.

    python bench/sql_writes.py [--cues 10000] [--batch 15] [--rounds 2]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import create_many, machine, run, server

from cueapi_lite.delivery import finish_attempts
from cueapi_lite.models import Execution, new_execution, new_execution_id
from cueapi_lite.store import AttemptResult, FirePlan
from cueapi_lite.store.sqlite.db import connect
from cueapi_lite.store.sqlite.rows import (
    CUE_COLUMNS,
    CUE_STATE_COLUMNS,
    EXECUTION_INSERT,
    cue_from_row,
)
from cueapi_lite.store.sqlite.tx import SqliteTx

FIRE = (
    "UPDATE cues SET next_fire_at_ms = NULL, fired_count = fired_count + 1,"
    " version = version + 1, status = COALESCE(NULL, status), updated_at_ms = ?"
    " WHERE id = ? AND status = 'active' AND next_fire_at_ms = ?"
)
BEGIN = (
    "UPDATE executions SET status = 'delivering', attempts = attempts + 1,"
    " last_attempt_at_ms = ?, started_at_ms = COALESCE(started_at_ms, ?),"
    " next_retry_ms = NULL, updated_at_ms = ? WHERE id IN ({marks})"
    " AND status IN ('pending', 'retrying') RETURNING id, attempts"
)
FINISH = (
    "UPDATE executions SET status = 'success', http_status = 200, response_body = '{}',"
    " next_retry_ms = NULL, updated_at_ms = ?, delivered_at_ms = ?"
    " WHERE id = ? AND status = 'delivering' AND attempts = 1"
    " RETURNING id, cue_id, triggered_by, scheduled_for_ms"
)
STATE = f"SELECT {CUE_STATE_COLUMNS} FROM cues WHERE id = ?"  # noqa: S608
COUNT = (
    "UPDATE cues SET run_count = run_count + 1, version = version + 1, last_run_ms = ?,"
    " watch_from_ms = ?, status = 'completed', next_fire_at_ms = NULL, updated_at_ms = ?"
    " WHERE id = ?"
)


async def make_template(path: Path, cues: int) -> None:
    async with server() as (lite, key):
        at = datetime.fromtimestamp(time.time() + 30 * 86400, UTC).isoformat()
        bodies = [
            {"name": f"burst-{n}", "schedule": {"type": "once", "at": at},
             "callback": {"url": "http://127.0.0.1:9/hook"}, "payload": {"n": n}}
            for n in range(cues)
        ]  # fmt: skip
        await create_many(lite, key, bodies)
        source = lite.store.location
        await lite.aclose()
        conn = sqlite3.connect(source)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        shutil.copyfile(source, path)


def burst_writes(template: Path, batch: int, autocheckpoint: int) -> dict[str, float]:
    """Seconds spent per statement kind, the writes of every cue in the file."""
    spent: dict[str, float] = dict.fromkeys(
        ("fire", "insert", "begin", "finish", "read state", "count run", "commit"), 0.0
    )

    def timed(kind: str, statement: Callable[[], Any]) -> None:
        started = time.perf_counter()
        statement()
        spent[kind] += time.perf_counter() - started

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "burst.db"
        shutil.copyfile(template, path)
        conn = connect(str(path))
        conn.execute(f"PRAGMA wal_autocheckpoint={autocheckpoint}")
        cues = conn.execute("SELECT id, user_id, next_fire_at_ms FROM cues").fetchall()
        now = int(time.time() * 1000)
        made: dict[str, str] = {}
        for phase in ("fire", "begin", "finish"):
            for start in range(0, len(cues), batch):
                chunk = cues[start : start + batch]
                timed("commit", lambda: conn.execute("BEGIN IMMEDIATE"))
                if phase == "fire":
                    rows = []
                    for cue_id, user_id, due_ms in chunk:
                        timed("fire", lambda c=cue_id, d=due_ms: conn.execute(FIRE, (now, c, d)))
                        made[cue_id] = execution_id = new_execution_id()
                        rows.append((execution_id, cue_id, user_id, due_ms, "schedule",
                                     "pending", None, "{}", 0, None, None, now, now,
                                     "webhook", None, None))  # fmt: skip
                    timed("insert", lambda r=rows: conn.executemany(EXECUTION_INSERT, r))
                elif phase == "begin":
                    ids = [made[cue_id] for cue_id, _u, _d in chunk]
                    sql = BEGIN.format(marks=",".join("?" * len(ids)))
                    params = (now, now, now, *ids)
                    timed("begin", lambda s=sql, p=params: conn.execute(s, p).fetchall())
                else:
                    for cue_id, _user_id, due_ms in chunk:
                        params = (now, now, made[cue_id])
                        timed("finish", lambda p=params: conn.execute(FINISH, p).fetchone())
                        timed("read state", lambda c=cue_id: conn.execute(STATE, (c,)).fetchone())
                        count = (due_ms, now, now, cue_id)
                        timed("count run", lambda p=count: conn.execute(COUNT, p))
                timed("commit", lambda: conn.execute("COMMIT"))
        conn.close()
    return {kind: seconds / len(cues) for kind, seconds in spent.items()}


def burst_writes_batched(template: Path, batch: int, autocheckpoint: int) -> dict[str, float]:
    """The same writes through `SqliteTx`, a statement per slice where it has one."""
    spent: dict[str, float] = dict.fromkeys(("fire", "insert", "begin", "finish", "commit"), 0.0)

    def timed(kind: str, statement: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = statement()
        spent[kind] += time.perf_counter() - started
        return result

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "burst.db"
        shutil.copyfile(template, path)
        conn = connect(str(path))
        conn.execute(f"PRAGMA wal_autocheckpoint={autocheckpoint}")
        cues = [cue_from_row(row) for row in conn.execute(f"SELECT {CUE_COLUMNS} FROM cues")]  # noqa: S608
        tx = SqliteTx(conn)
        now = int(time.time() * 1000)
        made: dict[str, Execution] = {}
        for phase in ("fire", "begin", "finish"):
            for start in range(0, len(cues), batch):
                chunk = cues[start : start + batch]
                timed("commit", lambda: conn.execute("BEGIN IMMEDIATE"))
                if phase == "fire":
                    fires = []
                    for cue in chunk:
                        assert cue.next_fire_at_ms is not None
                        made[cue.id] = new_execution(cue, cue.next_fire_at_ms, "schedule", now)
                        fires.append((FirePlan(cue.id, cue.next_fire_at_ms, None, []), 1))
                    timed("fire", lambda f=fires: tx.apply_fires(f, now))
                    rows = [made[cue.id] for cue in chunk]
                    timed("insert", lambda r=rows: tx.insert_executions(r))
                elif phase == "begin":
                    ids = [made[cue.id].id for cue in chunk]
                    sql = BEGIN.format(marks=",".join("?" * len(ids)))
                    params = (now, now, now, *ids)
                    timed("begin", lambda s=sql, p=params: conn.execute(s, p).fetchall())
                else:
                    results = [AttemptResult(made[cue.id].id, 1, True, 200, None, "{}")
                               for cue in chunk]  # fmt: skip
                    timed("finish", lambda r=results: finish_attempts(tx, r, now))
                timed("commit", lambda: conn.execute("COMMIT"))
        conn.close()
    return {kind: seconds / len(cues) for kind, seconds in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cues", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=15, help="executions per transaction")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as folder:
        template = Path(folder) / "template.db"
        run(make_template(template, args.cues))
        for _round in range(args.rounds):
            for label, write, autocheckpoint in (
                ("per row, checkpoints in commits", burst_writes, 1000),
                ("per row, checkpoints beside", burst_writes, 0),
                ("per slice, checkpoints beside", burst_writes_batched, 0),
            ):
                spent = write(template, args.batch, autocheckpoint)
                parts = "  ".join(f"{kind} {s * 1e6:.1f}" for kind, s in spent.items())
                total = sum(spent.values()) * 1e6
                print(f"{label:>31}: {total:6.1f} µs per execution ({parts})")


if __name__ == "__main__":
    main()
