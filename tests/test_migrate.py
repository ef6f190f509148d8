"""`cueapi-lite migrate`: a SQLite database copied into PostgreSQL, and back into a new
SQLite file, serves the same API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.cli import main
from cueapi_lite.store.lock import ServerLock
from tests.conftest import FakeDeliverer, status, webhook_cue

TICKET = {
    "subject": "A question about retries",
    "message": "How many times is a failing webhook retried by default?",
    "type": "bug",
    "severity": "low",
}


async def _history(db: str, clock: ManualClock) -> tuple[str, dict[str, Any]]:
    """A SQLite database with a user, cues, executions, an alert and a ticket."""
    deliverer = FakeDeliverer()
    deliverer.answer(status(500))
    lite = CueApiLite(Settings(db=db), clock=clock, deliverer=deliverer)
    await lite.start()
    try:
        key = await lite.accounts.mint_key("alice@example.com")
        async with lite.client(key.api_key) as api:
            cue = (await api.post("/v1/cues", json=webhook_cue(retry={"max_attempts": 1}))).json()
            await api.post("/v1/cues", json={**webhook_cue(name="worker"), "transport": "worker"})
            for _ in range(3):  # three failures in a row: a consecutive_failure alert
                await api.post(f"/v1/cues/{cue['id']}/fire")
                await lite.settle()
            filed = await api.post("/v1/support", json=TICKET)
            assert filed.status_code == 201, filed.text
            seen = {
                "cues": (await api.get("/v1/cues")).json(),
                "executions": (await api.get("/v1/executions")).json(),
                "alerts": (await api.get("/v1/alerts")).json(),
            }
        return key.api_key, seen
    finally:
        await lite.aclose()


async def test_a_migrated_database_answers_like_the_original(
    tmp_path: Path, pg_databases: Any, clock: ManualClock
) -> None:
    source = str(tmp_path / "old.db")
    api_key, before = await _history(source, clock)
    assert before["alerts"]["total"] == 1
    target = pg_databases.new()
    result = CliRunner().invoke(main, ["migrate", "--from", source, "--to", target])
    assert result.exit_code == 0, result.output
    assert "executions                  3 rows copied, counts match" in result.output
    lite = CueApiLite(Settings(db=target), clock=clock, deliverer=FakeDeliverer())
    await lite.start()
    try:
        async with lite.client(api_key) as api:  # the same key: only its hash was copied
            assert (await api.get("/v1/cues")).json() == before["cues"]
            assert (await api.get("/v1/executions")).json() == before["executions"]
            assert (await api.get("/v1/alerts")).json() == before["alerts"]
            ticket = await api.post("/v1/support", json=TICKET)
            assert ticket.status_code == 201, ticket.text
            assert ticket.json()["ticket_id"] == 2  # ids go on from the copied ones
    finally:
        await lite.aclose()
    again = CliRunner().invoke(main, ["migrate", "--from", source, "--to", target])
    assert again.exit_code == 1
    assert "is not empty (users has rows)" in again.output


async def test_migrate_refuses_while_a_server_runs_on_the_file(
    tmp_path: Path, pg_databases: Any
) -> None:
    source = tmp_path / "busy.db"
    source.write_bytes(b"")
    lock = ServerLock(str(source))
    lock.acquire("2026-01-01T00:00:00+00:00")
    try:
        result = CliRunner().invoke(
            main, ["migrate", "--from", str(source), "--to", pg_databases.new()]
        )
    finally:
        lock.release()
    assert result.exit_code == 1
    assert "a server is running on" in result.output


def test_migrate_wants_a_postgresql_url_on_one_side(tmp_path: Path) -> None:
    source = tmp_path / "a.db"
    source.write_bytes(b"")
    result = CliRunner().invoke(main, ["migrate", "--from", str(source), "--to", "b.db"])
    assert result.exit_code == 1
    assert "one of --from and --to must be a postgresql:// URL" in result.output


async def test_a_database_copied_back_from_postgresql_answers_like_the_original(
    tmp_path: Path, pg_databases: Any, clock: ManualClock
) -> None:
    source = str(tmp_path / "old.db")
    api_key, before = await _history(source, clock)
    middle = pg_databases.new()
    there = CliRunner().invoke(main, ["migrate", "--from", source, "--to", middle])
    assert there.exit_code == 0, there.output
    back = str(tmp_path / "back.db")
    result = CliRunner().invoke(main, ["migrate", "--from", middle, "--to", back])
    assert result.exit_code == 0, result.output
    assert "executions                  3 rows copied, counts match" in result.output
    assert "point `cueapi-lite serve --db` at the SQLite file" in result.output
    lite = CueApiLite(Settings(db=back), clock=clock, deliverer=FakeDeliverer())
    await lite.start()
    try:
        async with lite.client(api_key) as api:
            assert (await api.get("/v1/cues")).json() == before["cues"]
            assert (await api.get("/v1/executions")).json() == before["executions"]
            assert (await api.get("/v1/alerts")).json() == before["alerts"]
            usage = (await api.get("/v1/usage")).json()
            ticket = await api.post("/v1/support", json=TICKET)
            assert ticket.json()["ticket_id"] == 2  # ids go on from the copied ones
    finally:
        await lite.aclose()
    assert usage["executions"]["used"] == 3  # the kept counters came back too
    again = CliRunner().invoke(main, ["migrate", "--from", middle, "--to", back])
    assert again.exit_code == 1
    assert "already exists; give the name of a new file" in again.output


async def test_migrate_back_refuses_while_nodes_run_on_the_database(
    tmp_path: Path, pg_databases: Any, clock: ManualClock
) -> None:
    source = pg_databases.new()
    lite = CueApiLite(Settings(db=source), clock=clock, deliverer=FakeDeliverer())
    await lite.start()
    try:
        result = await asyncio.to_thread(
            CliRunner().invoke, main, ["migrate", "--from", source, "--to", str(tmp_path / "x.db")]
        )
    finally:
        await lite.aclose()
    assert result.exit_code == 1
    assert "1 node(s) run on postgresql://" in result.output
    assert "stop them first" in result.output
    assert not (tmp_path / "x.db").exists()
