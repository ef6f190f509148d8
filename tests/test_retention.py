"""History retention on the manual clock: old finished history goes, in batches, from the
heap; work still in progress and everything with `0` days stays; the file gives pages
back (incremental vacuum)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.retention import PRUNE_BATCH

from .conftest import FakeDeliverer, status, webhook_cue

HOUR_S = 3600
DAY_S = 24 * HOUR_S


async def run_hourly_cue(
    lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer, hours: int
) -> None:
    key = await lite.accounts.mint_key("alice@example.com")
    async with lite.client(key.api_key) as api:
        body = webhook_cue(schedule={"type": "recurring", "cron": "0 * * * *"})
        assert (await api.post("/v1/cues", json=body)).status_code == 201
        cue_id = (await api.get("/v1/cues")).json()["cues"][0]["id"]
    deliverer.answer(status(200, {"success": True}))
    for _ in range(hours):
        [cue] = await lite.store.cues.get_many([cue_id])
        assert cue.next_fire_at_ms is not None
        clock.advance((cue.next_fire_at_ms - clock.now_ms()) / 1000)
        await lite.settle()


async def started(tmp_path: Path, clock: ManualClock, **settings: object) -> CueApiLite:
    deliverer = FakeDeliverer()
    lite = CueApiLite(Settings(db=str(tmp_path / "r.db"), **settings),  # type: ignore[arg-type]
                      clock=clock, deliverer=deliverer)  # fmt: skip
    await lite.start()
    return lite


def scheduled_times(lite: CueApiLite) -> list[int]:
    return [r[0] for r in lite.store.db.fetchall("SELECT scheduled_for_ms FROM executions")]


async def test_history_older_than_the_setting_is_pruned_from_the_heap(
    tmp_path: Path, clock: ManualClock
) -> None:
    lite = await started(tmp_path, clock, history_retention_days=1)
    try:
        assert isinstance(lite.deliverer, FakeDeliverer)
        await run_hourly_cue(lite, clock, lite.deliverer, hours=72)
        times = scheduled_times(lite)
        cutoff = clock.now_ms() - DAY_S * 1000
        # The hourly pass leaves at most an hour's worth older than a day.
        assert min(times) >= cutoff - HOUR_S * 1000
        assert 24 <= len(times) <= 26
        assert lite.telemetry.pruned["executions"] == 72 - len(times)
    finally:
        await lite.aclose()


async def test_zero_days_keeps_everything(tmp_path: Path, clock: ManualClock) -> None:
    lite = await started(tmp_path, clock, history_retention_days=0)
    try:
        assert isinstance(lite.deliverer, FakeDeliverer)
        await run_hourly_cue(lite, clock, lite.deliverer, hours=72)
        assert len(scheduled_times(lite)) == 72
    finally:
        await lite.aclose()


async def test_work_in_progress_is_never_pruned_however_old(
    tmp_path: Path, clock: ManualClock
) -> None:
    lite = await started(tmp_path, clock, history_retention_days=1, unclaimed_expiry_s=0)
    try:
        key = await lite.accounts.mint_key("alice@example.com")
        async with lite.client(key.api_key) as api:
            cue = await api.post("/v1/cues", json={
                "name": "sync", "schedule": {"type": "recurring", "cron": "0 0 1 1 *"},
                "transport": "worker", "payload": {"task": "sync"}})  # fmt: skip
            fired = await api.post(f"/v1/cues/{cue.json()['id']}/fire", json={})
            clock.advance(3 * DAY_S)
            await lite.settle()
            waiting = await api.get(f"/v1/executions/{fired.json()['id']}")
        assert waiting.status_code == 200
        assert waiting.json()["status"] == "pending"
    finally:
        await lite.aclose()


async def test_a_large_backlog_goes_in_batches_a_second_apart_then_the_file_shrinks(
    tmp_path: Path, clock: ManualClock
) -> None:
    lite = await started(tmp_path, clock, history_retention_days=0)
    try:
        assert isinstance(lite.deliverer, FakeDeliverer)
        await run_hourly_cue(lite, clock, lite.deliverer, hours=3 * PRUNE_BATCH // 2)
    finally:
        await lite.aclose()
    path = str(tmp_path / "r.db")
    size_before = Path(path).stat().st_size
    lite = await started(tmp_path, clock, history_retention_days=1)
    try:
        clock.advance(600)  # the first pass runs ten minutes after start
        await lite.settle()
        assert lite.telemetry.pruned["executions"] == PRUNE_BATCH  # one batch, then a pause
        clock.advance(1)
        await lite.settle()
        assert lite.telemetry.pruned["executions"] > PRUNE_BATCH
        assert len(scheduled_times(lite)) <= 26
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        assert Path(path).stat().st_size < size_before / 2
    finally:
        await lite.aclose()


async def test_an_existing_file_without_incremental_vacuum_is_rebuilt_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at_ms INTEGER)")
    conn.close()
    lite = CueApiLite(Settings(db=str(path)), clock=ManualClock())
    await lite.start()
    await lite.aclose()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    assert conn.execute("SELECT COUNT(*) FROM cues").fetchone()[0] == 0


async def test_alerts_are_history_too(tmp_path: Path, clock: ManualClock) -> None:
    lite = await started(tmp_path, clock, history_retention_days=1)
    try:
        key = await lite.accounts.mint_key("alice@example.com")
        assert isinstance(lite.deliverer, FakeDeliverer)
        lite.deliverer.answer(status(500))
        async with lite.client(key.api_key) as api:
            body = webhook_cue(schedule={"type": "recurring", "cron": "0 * * * *"},
                               retry={"max_attempts": 1}, alerts={"consecutive_failures": 1},
                               on_failure={"email": True})  # fmt: skip
            await api.post("/v1/cues", json=body)
            clock.advance(HOUR_S)
            await lite.settle()
            assert len((await api.get("/v1/alerts")).json()["alerts"]) >= 1
            await api.patch(f"/v1/cues/{(await api.get('/v1/cues')).json()['cues'][0]['id']}",
                            json={"status": "paused"})  # fmt: skip
            clock.advance(2 * DAY_S)
            await lite.settle()
            assert (await api.get("/v1/alerts")).json()["alerts"] == []
        outbox = lite.store.db.fetchone("SELECT COUNT(*) FROM alert_outbox")
        assert outbox is not None
        assert outbox[0] == 0
    finally:
        await lite.aclose()
