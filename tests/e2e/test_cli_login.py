"""The official `cueapi` CLI 0.2.0, as a new user would try it against a local server:
`cueapi login` (approved with `cueapi-lite device approve`), whoami, usage, the cue
commands, quickstart, key regenerate and logout; exit codes and the server's messages."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from cueapi_lite.testing import LiveServer, WebhookReceiver

from .conftest import run_cli

pytestmark = pytest.mark.e2e

LOGIN_TIMEOUT_S = 60.0


def approve(db: Path, code: str, email: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cueapi_lite", "device", "approve", code, "--email", email,
         "--db", str(db)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def login(cli: Path, env: dict[str, str], db: Path, email: str) -> str:
    """Run `cueapi login`, approve its code from the command line; returns its output."""
    process = subprocess.Popen(
        [str(cli), "login"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert process.stdout is not None
        seen = ""
        while "visit: " not in seen:
            line = process.stdout.readline()
            assert line, f"login exited early:\n{seen}"
            seen += line
        match = re.search(r"visit: (\S+)", seen)
        assert match, seen
        url = match.group(1)
        code = parse_qs(urlsplit(url).query)["code"][0]
        assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", code)
        page = httpx.get(url, timeout=10)  # the page the CLI opened in the browser
        assert page.status_code == 200
        assert code in page.text
        approved = approve(db, code, email)
        assert approved.returncode == 0, approved.stderr
        rest, _ = process.communicate(timeout=LOGIN_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 0, seen + rest
    return seen + rest


def test_a_new_user_logs_in_and_every_command_works(
    tmp_path: Path, cueapi_cli: Path, cli_home: dict[str, str]
) -> None:
    db = tmp_path / "cli.db"
    with LiveServer(str(db)) as server, WebhookReceiver() as receiver:
        env = dict(cli_home, CUEAPI_API_BASE=server.base_url + "/v1")

        def cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
            return run_cli(cueapi_cli, env, *args, timeout=timeout)

        # Not logged in yet: the CLI says so and exits 0.
        assert "Not logged in" in cli("whoami").stdout

        output = login(cueapi_cli, env, db, "me@example.com")
        assert "Authenticated as me@example.com" in output
        key = re.search(r"Your API key: (cue_sk_[0-9a-f]{32})", output)
        assert key, output
        api_key = key.group(1)
        credentials = Path(env["HOME"]) / ".config" / "cueapi" / "credentials.json"
        assert json.loads(credentials.read_text())["default"] == {
            "api_key": api_key, "email": "me@example.com", "api_base": server.base_url + "/v1",
        }  # fmt: skip
        assert stat.S_IMODE(credentials.stat().st_mode) == 0o600

        whoami = cli("whoami")
        assert whoami.returncode == 0, whoami.stderr
        assert re.search(r"Email:\s+me@example.com", whoami.stdout)
        assert re.search(r"Plan:\s+Self-hosted", whoami.stdout)
        assert re.search(r"Active cues:\s+0 / 1000000000", whoami.stdout)
        assert re.search(r"Executions:\s+0 / 1000000000 this month", whoami.stdout)
        assert f"{api_key[:7]}...{api_key[-4:]}" in whoami.stdout

        usage = cli("usage")
        assert usage.returncode == 0, usage.stderr
        assert re.search(r"Executions:\s+0 / 1,000,000,000 \(0.0%\)", usage.stdout)
        assert re.search(r"Rate limit:\s+6000 req/min", usage.stdout)

        hook = receiver.url + "/hook"
        created = cli("create", "--name", "nightly", "--cron", "0 9 * * *", "--url", hook)
        assert created.returncode == 0, created.stderr
        cue_id = re.search(r"Created: (cue_[a-z0-9]{12})", created.stdout)
        assert cue_id, created.stdout
        cue = cue_id.group(1)
        assert re.search(r"Status:\s+active", created.stdout)

        # Errors show the server's own message, with exit 1.
        duplicate = cli("create", "--name", "nightly", "--cron", "0 9 * * *", "--url", hook)
        assert duplicate.returncode == 1
        assert "A cue named 'nightly' already exists" in duplicate.stderr
        bad = cli("create", "--name", "bad", "--cron", "every day", "--url", "http://x.test/h")
        assert bad.returncode == 1
        assert "Invalid cron expression" in bad.stderr

        listed = cli("list")
        assert listed.returncode == 0
        assert cue in listed.stdout
        assert "1 cues (1 active)" in listed.stdout
        got = cli("get", cue)
        assert got.returncode == 0, got.stderr
        assert re.search(r"Schedule:\s+0 9 \* \* \* \(UTC\)", got.stdout)
        missing = cli("get", "cue_doesnotexist")
        assert missing.returncode == 1
        assert "Cue not found: cue_doesnotexist" in missing.stderr

        assert f"Updated: {cue} (renamed)" in cli("update", cue, "--name", "renamed").stdout
        assert f"Paused: {cue} (renamed)" in cli("pause", cue).stdout
        resumed = cli("resume", cue)
        assert f"Resumed: {cue} (renamed)" in resumed.stdout
        assert "Next run:" in resumed.stdout
        fired = cli("fire", cue, "--payload-override", '{"n": 1}')
        assert fired.returncode == 0, fired.stderr
        assert re.search(r"Execution:\s+[0-9a-f-]{36}", fired.stdout)
        [delivered] = receiver.wait_for(1)
        assert delivered.json()["payload"] == {"n": 1}
        deleted = cli("delete", cue, "-y")
        assert deleted.returncode == 0
        assert "Deleted." in deleted.stdout
        assert cli("get", cue).returncode == 1

        billing = cli("manage")
        assert billing.returncode == 1
        assert "Billing is not available on a self-hosted server." in billing.stderr

        quickstart = cli("quickstart", timeout=90)
        assert quickstart.returncode == 0, quickstart.stdout + quickstart.stderr
        assert "Callback delivered!" in quickstart.stdout
        assert '"message": "Your first cue! CueAPI is working."' in quickstart.stdout
        assert "CueAPI is working!" in quickstart.stdout

        regenerated = cli("key", "regenerate", "-y")
        assert regenerated.returncode == 0, regenerated.stderr
        new_key = re.search(r"New API key: (cue_sk_[0-9a-f]{32})", regenerated.stdout)
        assert new_key, regenerated.stdout
        assert json.loads(credentials.read_text())["default"]["api_key"] == new_key.group(1)
        old = httpx.get(
            server.base_url + "/v1/cues", headers={"Authorization": f"Bearer {api_key}"}
        )
        assert old.status_code == 401
        assert old.json()["error"]["code"] == "key_rotated"
        assert cli("whoami").returncode == 0

        logout = cli("logout")
        assert "Removed credentials for me@example.com (default profile)." in logout.stdout
        after = cli("whoami")
        assert after.returncode == 0
        assert "Not logged in" in after.stdout


def test_the_cli_shows_the_cue_limit_message(
    tmp_path: Path, cueapi_cli: Path, cli_home: dict[str, str]
) -> None:
    with LiveServer(str(tmp_path / "limit.db"), cue_limit=1) as server:
        key = server.mint_key("me@example.com")
        env = dict(cli_home, CUEAPI_API_BASE=server.base_url + "/v1", CUEAPI_API_KEY=key.api_key)
        args = ("--cron", "0 9 * * *", "--url", "http://127.0.0.1:9/hook")
        assert run_cli(cueapi_cli, env, "create", "--name", "one", *args).returncode == 0
        refused = run_cli(cueapi_cli, env, "create", "--name", "two", *args)
        assert refused.returncode == 1
        assert "Cue limit reached" in refused.stderr
        assert re.search(r"Active cues:\s+1 / 1", run_cli(cueapi_cli, env, "whoami").stdout)
