"""`cueapi-lite service install`: a systemd unit or a launchd plist naming this
interpreter and the database by absolute path."""

from __future__ import annotations

import plistlib
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cueapi_lite.cli import main
from cueapi_lite.service import service_file


def test_a_user_systemd_unit_runs_serve_with_absolute_paths_and_restarts_on_failure(
    tmp_path: Path,
) -> None:
    unit = service_file("linux", "/opt/venv/bin/python", "/data/cues.db", user=True,
                        home=Path("/home/ada"))  # fmt: skip
    assert unit.path == Path("/home/ada/.config/systemd/user/cueapi-lite.service")
    lines = unit.text.splitlines()
    assert "ExecStart=/opt/venv/bin/python -m cueapi_lite serve --db /data/cues.db" in lines
    assert "Restart=on-failure" in lines
    assert "KillSignal=SIGTERM" in lines
    assert "WantedBy=default.target" in lines
    assert not any(line.startswith("User=") for line in lines)
    assert unit.next_steps[-1] == "systemctl --user enable --now cueapi-lite"
    assert unit.logs == "journalctl --user -u cueapi-lite -f"


def test_a_system_unit_runs_as_the_installing_user_and_quotes_odd_paths() -> None:
    unit = service_file("linux", "/opt/my venv/bin/python", "relative.db", user=False,
                        host="0.0.0.0", port=9000)  # fmt: skip
    assert unit.path == Path("/etc/systemd/system/cueapi-lite.service")
    [exec_start] = [line for line in unit.text.splitlines() if line.startswith("ExecStart=")]
    database = str(Path("relative.db").absolute())
    assert exec_start == (
        f'ExecStart="/opt/my venv/bin/python" -m cueapi_lite serve --db {database}'
        " --host 0.0.0.0 --port 9000"
    )
    assert any(line.startswith("User=") for line in unit.text.splitlines())
    assert "WantedBy=multi-user.target" in unit.text


def test_a_launchd_agent_keeps_the_server_alive_after_a_crash_and_logs_to_a_file() -> None:
    unit = service_file("darwin", "/Users/ada/.venv/bin/python", "/Users/ada/cues.db",
                        user=True, home=Path("/Users/ada"))  # fmt: skip
    assert unit.path == Path("/Users/ada/Library/LaunchAgents/io.cueapi.lite.plist")
    plist = plistlib.loads(unit.text.encode())
    assert plist["ProgramArguments"] == [
        "/Users/ada/.venv/bin/python", "-m", "cueapi_lite", "serve", "--db", "/Users/ada/cues.db"
    ]  # fmt: skip
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["StandardErrorPath"] == "/Users/ada/Library/Logs/cueapi-lite.log"
    assert unit.next_steps == [f"launchctl bootstrap gui/$(id -u) {unit.path}"]


def test_an_unknown_platform_is_refused() -> None:
    with pytest.raises(ValueError, match="systemd or launchd"):
        service_file("win32", "python", "x.db", user=True)


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_print_shows_the_file_for_either_platform_and_writes_nothing(
    platform: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    db = tmp_path / "cues.db"
    result = CliRunner().invoke(main, ["service", "install", "--user", "--print",
                                       "--platform", platform, "--db", str(db)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sys.executable in result.output
    assert str(db) in result.output
    assert ("[Service]" in result.output) == (platform == "linux")
    assert ("<plist" in result.output) == (platform == "darwin")
    assert list(tmp_path.iterdir()) == []


def test_install_writes_the_unit_where_it_is_told(tmp_path: Path) -> None:
    target = tmp_path / "units" / "cueapi-lite.service"
    args = ["service", "install", "--user", "--platform", "linux", "--to", str(target),
            "--db", str(tmp_path / "c.db")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"Wrote {target}" in result.output
    assert "systemctl --user enable --now cueapi-lite" in result.output
    assert f"--db {tmp_path / 'c.db'}" in target.read_text()
