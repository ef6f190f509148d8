"""History retention on the manual clock: old finished history goes, in batches, from the
heap; work still in progress and everything with `0` days stays; the file gives pages
back (incremental vacuum)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.retention import PRUNE_BATCH

from .conftest import FakeDeliverer, status, webhook_cue
from .helpers import ms

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
            for name in ("first", "second"):
                body = webhook_cue(name=name, retry={"max_attempts": 1},
                                   schedule={"type": "recurring", "cron": "0 * * * *"},
                                   alerts={"consecutive_failures": 1},
                                   on_failure={"email": True})  # fmt: skip
                await api.post("/v1/cues", json=body)
            clock.advance(HOUR_S)
            await lite.settle()
            raised = (await api.get("/v1/alerts")).json()["alerts"]
            assert len(raised) == 2
            for cue in (await api.get("/v1/cues")).json()["cues"]:
                await api.patch(f"/v1/cues/{cue['id']}", json={"status": "paused"})
            clock.advance(2 * DAY_S)
            await lite.settle()
            # All but the newest alert are pruned (it marks where the alert log resumes).
            [kept] = (await api.get("/v1/alerts")).json()["alerts"]
        newest = lite.store.db.fetchone("SELECT id FROM alerts ORDER BY rowid DESC LIMIT 1")
        assert newest is not None
        assert kept["id"] == newest[0]
        outbox = lite.store.db.fetchall("SELECT DISTINCT alert_id FROM alert_outbox")
        assert [row[0] for row in outbox] == [kept["id"]]
    finally:
        await lite.aclose()


def test_a_retention_shorter_than_a_month_is_refused_with_a_monthly_limit(
    tmp_path: Path,
) -> None:
    """The limit's 24 h of grace are timed from this month's stored executions: pruning
    them within the month would let scheduled runs go on past the limit for ever."""
    env = {
        "CUEAPI_LITE_MONTHLY_EXECUTION_LIMIT": "1000",
        "CUEAPI_LITE_HISTORY_RETENTION_DAYS": "7",
    }
    with pytest.raises(ValueError, match="history_retention_days must be 0 or at least 31"):
        Settings.from_env(env, db=str(tmp_path / "x.db"))  # `serve` prints it and exits 1
    for days in (0, 31, 90):  # keeping everything, or a month and more, is fine
        Settings(db=str(tmp_path / "x.db"), monthly_execution_limit=1000,
                 history_retention_days=days)  # fmt: skip
    Settings(db=str(tmp_path / "x.db"), history_retention_days=7)  # no limit: any retention


async def test_pruning_keeps_the_api_totals_and_the_monthly_usage_right(
    tmp_path: Path,
) -> None:
    """Counters kept by triggers follow the deletes: list totals shrink with the rows,
    while the month's usage still counts every run made."""
    clock = ManualClock(ms("2027-03-10T00:30:00Z"))  # the whole run in one month
    lite = await started(tmp_path, clock, history_retention_days=1)
    try:
        await run_hourly_cue(lite, clock, lite.deliverer, hours=30)  # type: ignore[arg-type]
        clock.advance(HOUR_S)
        await lite.settle()
        left = len(scheduled_times(lite))
        assert left < 30
        key = await lite.accounts.mint_key("alice@example.com")
        async with lite.client(key.api_key) as api:
            listed = (await api.get("/v1/executions")).json()
            cue_id = (await api.get("/v1/cues")).json()["cues"][0]["id"]
            cue = (await api.get(f"/v1/cues/{cue_id}")).json()
            usage = (await api.get("/v1/usage")).json()
        assert listed["total"] == cue["execution_total"] == left
        assert usage["executions"]["used"] == len(lite.deliverer.requests) == 31  # type: ignore[attr-defined]
    finally:
        await lite.aclose()


async def test_an_alert_raised_after_pruning_is_still_logged(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Alerts are logged by reading the rows after the last one logged; pruning the
    newest alert must not make the next one look old (SQLite reuses a freed top rowid)."""
    caplog.set_level(logging.WARNING, logger="cueapi_lite")
    lite = await started(tmp_path, clock, history_retention_days=1)
    deliverer = lite.deliverer
    assert isinstance(deliverer, FakeDeliverer)
    try:
        key = await lite.accounts.mint_key("alice@example.com")
        async with lite.client(key.api_key) as api:
            body = webhook_cue(name="flaky", retry={"max_attempts": 1},
                               alerts={"consecutive_failures": 1})  # fmt: skip
            cue_id = (await api.post("/v1/cues", json=body)).json()["id"]
            await api.patch(f"/v1/cues/{cue_id}", json={"status": "paused"})
            deliverer.answer(status(500), status(200, {"success": True}), status(500))
            for _ in range(3):  # an alert, a success that ends the streak, an alert
                await api.post(f"/v1/cues/{cue_id}/fire", json={})
                await lite.settle()
                clock.advance(600)  # one alert per cue and type per five minutes
            assert (await api.get("/v1/alerts")).json()["total"] == 2
            clock.advance(2 * DAY_S)  # both are past the retention
            await lite.settle()
            assert scheduled_times(lite) == []  # the history was pruned
            # The newest alert stays: its rowid is where the alert log resumes.
            assert (await api.get("/v1/alerts")).json()["total"] == 1
            deliverer.answer(status(200, {"success": True}), status(500))
            for _ in range(2):
                await api.post(f"/v1/cues/{cue_id}/fire", json={})
                await lite.settle()
                clock.advance(600)
            assert (await api.get("/v1/alerts")).json()["total"] == 2
        raised = [r.getMessage() for r in caplog.records if r.getMessage().startswith("alert:")]
        assert len(raised) == 3, raised
    finally:
        await lite.aclose()
