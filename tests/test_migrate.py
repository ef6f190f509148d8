"""`cueapi-lite migrate`: a SQLite database copied into PostgreSQL serves the same API."""

from __future__ import annotations

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


def test_migrate_wants_a_postgresql_url(tmp_path: Path) -> None:
    source = tmp_path / "a.db"
    source.write_bytes(b"")
    result = CliRunner().invoke(main, ["migrate", "--from", str(source), "--to", "b.db"])
    assert result.exit_code == 1
    assert "--to must be a postgresql:// URL" in result.output
