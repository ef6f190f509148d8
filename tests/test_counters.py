"""Counts kept as rows change (migration 0005): `/v1/auth/me`, `/v1/usage` and list totals
stay right across creates, deletes, fires, missed occurrences, month ends and restarts,
and a database made before the counters existed gets them filled in."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.store.sqlite.migrations import MIGRATIONS, _statements

from .conftest import FakeDeliverer, webhook_cue
from .helpers import ms

Counts = Callable[[httpx.AsyncClient], Awaitable[dict[str, int]]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(ms("2026-06-30T22:30:00+00:00"))


async def counts(api: httpx.AsyncClient) -> dict[str, int]:
    me = (await api.get("/v1/auth/me")).json()
    usage = (await api.get("/v1/usage")).json()
    listed = (await api.get("/v1/executions")).json()
    cues = (await api.get("/v1/cues")).json()
    assert me["active_cues"] == usage["cues"]["active"]
    assert me["executions_this_month"] == usage["executions"]["used"]
    return {
        "active": usage["cues"]["active"],
        "cues_used": usage["cues"]["used"],
        "cues_listed": cues["total"],
        "executions_used": usage["executions"]["used"],
        "executions_listed": listed["total"],
    }


async def create(api: httpx.AsyncClient, name: str, **fields: Any) -> dict[str, Any]:
    response = await api.post("/v1/cues", json=webhook_cue(name=name, **fields))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_cue_counts_follow_create_pause_complete_and_delete(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    a = await create(api, "a")
    b = await create(api, "b")
    once = await create(api, "once", schedule={"type": "once", "at": "2026-06-30T22:40:00Z"})
    assert await counts(api) == {"active": 3, "cues_used": 3, "cues_listed": 3,
                                 "executions_used": 0, "executions_listed": 0}  # fmt: skip
    await api.patch(f"/v1/cues/{a['id']}", json={"status": "paused"})
    found = await counts(api)
    assert (found["active"], found["cues_used"], found["cues_listed"]) == (2, 3, 3)
    clock.advance(600)  # the once cue fires, is delivered and completes
    await lite.settle()
    assert (await api.get(f"/v1/cues/{once['id']}")).json()["status"] == "completed"
    found = await counts(api)
    assert (found["active"], found["cues_used"], found["cues_listed"]) == (1, 2, 3)
    assert (found["executions_used"], found["executions_listed"]) == (1, 1)
    assert (await api.get("/v1/cues", params={"status": "paused"})).json()["total"] == 1
    await api.delete(f"/v1/cues/{b['id']}")
    found = await counts(api)
    assert (found["active"], found["cues_used"], found["cues_listed"]) == (0, 1, 2)


async def test_deleting_a_cue_removes_its_history_but_not_its_runs_from_usage(
    api: httpx.AsyncClient, lite: CueApiLite
) -> None:
    cue = await create(api, "a")
    other = await create(api, "b")
    for target in (cue, cue, other):
        assert (await api.post(f"/v1/cues/{target['id']}/fire")).status_code == 200
    await lite.settle()
    assert (await counts(api))["executions_listed"] == 3
    of_other = (await api.get(f"/v1/cues/{other['id']}")).json()
    assert of_other["execution_total"] == 1
    listed = (await api.get("/v1/executions", params={"cue_id": cue["id"]})).json()
    assert listed["total"] == 2
    await api.delete(f"/v1/cues/{cue['id']}")
    found = await counts(api)
    assert found["executions_listed"] == 1  # the history went with the cue
    assert found["executions_used"] == 3  # the runs happened this month all the same
    gone = (await api.get("/v1/executions", params={"cue_id": cue["id"]})).json()
    assert gone["total"] == 0


async def test_missed_occurrences_are_listed_but_not_counted(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    """A worker execution nobody claims ends `missed`: it leaves the monthly usage."""
    await create(api, "worker", transport="worker",
                 schedule={"type": "recurring", "cron": "45 22 * * *"})  # fmt: skip
    clock.advance(15 * 60)
    await lite.settle()
    assert (await counts(api))["executions_used"] == 1
    clock.advance(900)
    await lite.settle()
    listed = (await api.get("/v1/executions")).json()
    assert [e["status"] for e in listed["executions"]] == ["missed"]
    found = await counts(api)
    assert (found["executions_listed"], found["executions_used"]) == (1, 0)


async def test_a_new_month_starts_from_zero_and_the_old_one_keeps_its_count(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    cue = await create(api, "hourly", schedule={"type": "recurring", "cron": "0 * * * *"})
    await api.post(f"/v1/cues/{cue['id']}/fire")  # June
    clock.advance(30 * 60)  # 23:00 June 30: an hourly fire
    await lite.settle()
    assert (await counts(api))["executions_used"] == 2
    clock.advance(3600)  # 00:00 July 1
    await lite.settle()
    found = await counts(api)
    assert (found["executions_used"], found["executions_listed"]) == (1, 3)
    assert (await api.get("/v1/usage")).json()["billing_period"]["start"].startswith("2026-07-01")


@pytest.fixture
async def reopen(
    settings: Settings, clock: ManualClock, deliverer: FakeDeliverer
) -> AsyncIterator[Callable[[], Awaitable[CueApiLite]]]:
    opened: list[CueApiLite] = []

    async def start() -> CueApiLite:
        app = CueApiLite(settings, clock=clock, deliverer=deliverer)
        await app.start()
        opened.append(app)
        return app

    yield start
    for app in opened:
        await app.aclose()


async def test_counts_survive_a_restart(
    lite: CueApiLite, api: httpx.AsyncClient, reopen: Callable[[], Awaitable[CueApiLite]]
) -> None:
    cue = await create(api, "a")
    await create(api, "b")
    await api.post(f"/v1/cues/{cue['id']}/fire")
    await lite.settle()
    before = await counts(api)
    key = api.headers["Authorization"].removeprefix("Bearer ")
    await lite.aclose()
    again = await reopen()
    async with again.client(key) as client:
        assert await counts(client) == before


async def test_a_database_from_before_the_counters_gets_them_filled_in(
    tmp_path: Path, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at_ms INTEGER NOT NULL)")
    for name, sql in MIGRATIONS[:4]:
        for statement in _statements(sql):
            conn.execute(statement)
        conn.execute("INSERT INTO migrations VALUES (?, 0)", (name,))
    conn.close()
    settings = Settings(db=str(db))
    app = CueApiLite(settings, clock=clock, deliverer=deliverer)
    await app.start()
    key = await app.accounts.mint_key("old@example.com")
    await app.aclose()
    # Rows written by a version without the counters (straight into the old schema):
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DELETE FROM migrations WHERE name LIKE '0005%' OR name LIKE '0009%'")
    for trigger in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {trigger[0]}")
    conn.execute("DROP TABLE cue_counts")
    conn.execute("DROP TABLE execution_counts")
    conn.execute("DROP TABLE cue_execution_counts")
    for index in ("cues_user_page", "cues_user_status_page", "executions_user_page",
                  "executions_cue_page"):  # fmt: skip
        conn.execute(f"DROP INDEX {index}")
    conn.execute("ALTER TABLE cues DROP COLUMN version")
    conn.execute("CREATE INDEX cues_user_created ON cues(user_id, created_at_ms DESC)")
    conn.execute("CREATE INDEX executions_user ON executions(user_id, scheduled_for_ms DESC)")
    conn.execute("CREATE INDEX executions_cue ON executions(cue_id, scheduled_for_ms DESC)")
    options = ('{"url":"http://127.0.0.1:9/h","method":"POST","headers":{}}', "{}",
               '{"max_attempts":3,"backoff_minutes":[1,5,15]}',
               '{"email":true,"webhook":null,"pause":false}',
               '{"timeout_seconds":30,"outcome_deadline_seconds":300}',
               '{"consecutive_failures":3,"missed_window_multiplier":2}',
               "run_once_if_missed", '{"mode":"none"}')  # fmt: skip
    for n, status in enumerate(["active", "active", "paused", "completed"]):
        conn.execute(
            "INSERT INTO cues (id, user_id, name, status, transport, schedule_type, cron,"
            " timezone, callback, payload, retry, on_failure, delivery, alerts, catch_up,"
            " verification, created_at_ms, updated_at_ms)"
            " VALUES (?, ?, ?, ?, 'webhook', 'recurring', '0 0 1 1 *', 'UTC', ?, ?, ?, ?, ?,"
            " ?, ?, ?, ?, ?)",
            (f"cue_old{n}", key.user.id, f"old-{n}", status, *options, n, n),
        )
    june, may = ms("2026-06-10T00:00:00+00:00"), ms("2026-05-10T00:00:00+00:00")
    for n, (at, status) in enumerate([(june, "success"), (june, "missed"), (may, "success")]):
        conn.execute(
            "INSERT INTO executions (id, cue_id, user_id, scheduled_for_ms, triggered_by,"
            " status, payload, created_at_ms, updated_at_ms)"
            " VALUES (?, 'cue_old0', ?, ?, 'manual_fire', ?, '{}', 0, 0)",
            (f"e{n}", key.user.id, at, status),
        )
    conn.close()
    app = CueApiLite(settings, clock=clock, deliverer=deliverer)
    await app.start()
    try:
        async with app.client(key.api_key) as api:
            assert await counts(api) == {"active": 2, "cues_used": 3, "cues_listed": 4,
                                         "executions_used": 1, "executions_listed": 3}  # fmt: skip
            history = (await api.get("/v1/executions", params={"cue_id": "cue_old0"})).json()
            assert history["total"] == 3
            assert (await api.get("/v1/cues/cue_old0")).json()["execution_total"] == 3
    finally:
        await app.aclose()
