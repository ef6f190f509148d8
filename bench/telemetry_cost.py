"""What the log lines and counters cost per execution on the burst path, in isolation.

Calls `Telemetry.fired` and `Telemetry.attempted` (the two events every delivered
execution has) N times: with logging not configured (lines below the level are skipped),
at INFO as text and as JSON into a file, as `serve` logs (on a running event loop, so
lines are flushed once per loop iteration, not once each); rounds alternate, so a busy
machine affects each alike. Compare the microseconds per execution with the burst's
(about 290 µs per execution at 3,500 executions/s).

    python bench/telemetry_cost.py [-n 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path

from cueapi_lite.logs import configure
from cueapi_lite.models import (
    Alerts,
    Callback,
    Cue,
    Delivery,
    OnFailure,
    Retry,
    Schedule,
    Verification,
    new_execution,
)
from cueapi_lite.telemetry import Telemetry


def one_run(n: int) -> float:
    telemetry = Telemetry()
    cue = Cue(
        id="cue_bench", user_id="u", name="burst-1", description=None, status="active",
        transport="webhook", schedule=Schedule("once", None, 1, "UTC"),
        callback=Callback("http://127.0.0.1:9000/hook", "POST", {}), payload={},
        retry=Retry(), on_failure=OnFailure(), delivery=Delivery(), alerts=Alerts(),
        catch_up="run_once_if_missed", verification=Verification(), next_fire_at_ms=1,
        last_run_ms=None, run_count=0, fired_count=0, warning=None, created_at_ms=0,
        updated_at_ms=0,
    )  # fmt: skip
    executions = [new_execution(cue, 1_000, "schedule", 1_002) for _ in range(n)]
    started = time.perf_counter()
    for execution in executions:
        telemetry.fired(cue, [execution], 1_003)
        telemetry.attempted(execution.id, cue.name, cue.callback.url, 1, 3, 200, 0.0021,
                            None, None)  # fmt: skip
    return (time.perf_counter() - started) / n * 1e6


async def on_a_loop(n: int) -> float:
    # As in `serve`: lines logged on a running loop are flushed once per loop iteration.
    return one_run(n)


def main(n: int, rounds: int) -> None:
    results: dict[str, list[float]] = {"not configured": [], "text": [], "json": []}
    root = logging.getLogger()
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            for mode in results:
                root.handlers.clear()
                root.setLevel(logging.WARNING)
                if mode != "not configured":
                    configure("info", mode, (Path(folder) / f"{mode}.log").open("a"))
                results[mode].append(asyncio.run(on_a_loop(n)))
    root.handlers.clear()
    for mode, values in results.items():
        best = min(values)
        print(f"{mode:>15}: {best:6.1f} µs per execution (fire + attempt; best of {rounds})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    main(args.n, args.rounds)
