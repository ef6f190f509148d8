"""`cueapi-lite doctor`: one ✓/✗ line per check with a fix, exit 0 only when all pass."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.cli import main
from cueapi_lite.testing import LiveServer

from .conftest import webhook_cue
from .helpers import unused_port


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections (a receiver that is up)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def database_with_cue(path: Path, callback_url: str) -> None:
    async def make() -> None:
        lite = CueApiLite(Settings(db=str(path)), clock=ManualClock())
        await lite.start()
        try:
            key = await lite.accounts.mint_key("ops@example.com")
            async with lite.client(key.api_key) as api:
                body = webhook_cue(callback={"url": callback_url})
                assert (await api.post("/v1/cues", json=body)).status_code == 201
        finally:
            await lite.aclose()

    asyncio.run(make())


def doctor(db: Path, port: int, *extra: str) -> Result:
    return CliRunner().invoke(main, ["doctor", "--db", str(db), "--port", str(port), *extra])


def test_a_healthy_installation_passes_every_check(tmp_path: Path, listener: int) -> None:
    db = tmp_path / "ok.db"
    database_with_cue(db, f"http://127.0.0.1:{listener}/hook")
    result = doctor(db, unused_port())
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"✓ database integrity: quick_check ok ({db})"
    assert any(line.startswith("✓ schema version: ") for line in lines)
    assert any(line.startswith("✓ write-ahead log: ") for line in lines)
    assert any(line.startswith("✓ time-zone database: tzdata ") for line in lines)
    assert any(line.startswith("✓ system clock: ") for line in lines)
    assert f"✓ callback host 127.0.0.1:{listener}: reachable" in lines
    assert "✓ server: no server is running on this database" in lines
    assert not any(line.startswith("✗") for line in lines)
    assert lines[-1].endswith("checks passed.")


def test_a_corrupted_database_fails_with_a_fix(tmp_path: Path) -> None:
    db = tmp_path / "broken.db"
    database_with_cue(db, "http://127.0.0.1:9/hook")
    raw = bytearray(db.read_bytes())
    raw[:16] = b"garbage garbage!"  # the header SQLite looks for
    db.write_bytes(bytes(raw))
    result = doctor(db, unused_port())
    assert result.exit_code == 1
    assert "✗ database integrity: " in result.output
    assert "fix: restore the newest backup: cueapi-lite restore BACKUP --db FILE" in result.output


def test_an_unreachable_callback_host_and_a_taken_port_fail(tmp_path: Path) -> None:
    closed = unused_port()  # nothing listens there
    db = tmp_path / "ok.db"
    database_with_cue(db, f"http://127.0.0.1:{closed}/hook")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        result = doctor(db, taken)
    assert result.exit_code == 1
    assert f"✗ callback host 127.0.0.1:{closed}: TCP connect failed" in result.output
    assert "fix: start the receiver, or update the cues that call it" in result.output
    assert f"✗ port: 127.0.0.1:{taken} is not free" in result.output


def test_a_missing_database_fails_and_is_not_created(tmp_path: Path) -> None:
    db = tmp_path / "none.db"
    result = doctor(db, unused_port())
    assert result.exit_code == 1
    assert f"✗ database: no database at {db}" in result.output
    assert not db.exists()


def test_a_running_server_is_named_and_its_port_is_not_a_failure(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    with LiveServer(str(db)) as server:
        result = doctor(db, server.settings.port)
    assert result.exit_code == 0, result.output
    assert "✓ server: running on this database (pid " in result.output
    assert "in use (by the running server, presumably)" in result.output


def test_an_unreachable_smtp_server_fails(
    tmp_path: Path, listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "ok.db"
    database_with_cue(db, f"http://127.0.0.1:{listener}/hook")
    monkeypatch.setenv("CUEAPI_LITE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CUEAPI_LITE_SMTP_PORT", str(unused_port()))
    result = doctor(db, unused_port())
    assert result.exit_code == 1
    assert "✗ SMTP server: 127.0.0.1:" in result.output
