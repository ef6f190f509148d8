"""History retention: a `* * * * *` cue for N simulated days keeps the file bounded.

Runs one every-minute webhook cue on a manual clock (a fake receiver answers 200 with
an outcome), with the given retention, and prints the file size and the executions kept
at the end of each simulated day; then the same without retention, for comparison.

    python bench/retention.py [--days 10] [--keep 3]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from pathlib import Path

from common import run

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.webhooks import WebhookRequest, WebhookResponse

DAY_S = 86_400


class Receiver:
    async def send(self, request: WebhookRequest) -> WebhookResponse:
        return WebhookResponse(200, b'{"success": true, "result": "ok"}')

    async def close(self) -> None:
        pass


def file_bytes(path: Path) -> int:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path.stat().st_size


async def simulate(days: int, keep: int, folder: Path) -> list[tuple[int, int, int]]:
    path = folder / f"keep-{keep}.db"
    clock = ManualClock(start_ms=1_767_225_600_000)  # 2026-01-01T00:00:00Z
    lite = CueApiLite(Settings(db=str(path), history_retention_days=keep), clock=clock,
                      deliverer=Receiver())  # fmt: skip
    await lite.start()
    rows = []
    try:
        key = await lite.accounts.mint_key("bench@example.com")
        async with lite.client(key.api_key) as api:
            body = {
                "name": "minutely",
                "schedule": {"type": "recurring", "cron": "* * * * *"},
                "callback": {"url": "http://127.0.0.1:9/hook"},
                "payload": {"task": "t"},
            }
            await api.post("/v1/cues", json=body)
        for day in range(1, days + 1):
            for _ in range(24 * 60):
                clock.advance(60)
                await lite.settle()
            count = lite.store.db.fetchone("SELECT COUNT(*) FROM executions")
            rows.append((day, file_bytes(path), int(count[0]) if count else 0))
    finally:
        await lite.aclose()
    return rows


async def main(days: int, keep: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        kept = await simulate(days, keep, Path(folder))
        everything = await simulate(days, 0, Path(folder))
    print(f"a `* * * * *` cue for {days} simulated days (1,440 executions a day)")
    print(f"{'day':>4} {'retention ' + str(keep) + ' d':>24} {'retention 0 (keep all)':>26}")
    for (day, size, count), (_, size_all, count_all) in zip(kept, everything, strict=True):
        print(f"{day:>4} {size / 1e6:>9.2f} MB {count:>7} rows {size_all / 1e6:>11.2f} MB"
              f" {count_all:>7} rows")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--keep", type=int, default=3, help="HISTORY_RETENTION_DAYS")
    args = parser.parse_args()
    run(main(args.days, args.keep))
