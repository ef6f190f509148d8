"""The examples in examples/ run as documented against a real server."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from mcp import Client, StdioServerParameters

from cueapi_lite.testing import LiveServer, manual_clock

from .conftest import wait_until

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BIN = Path(sys.executable).parent


def test_sdk_quickstart_runs_against_a_live_server(tmp_path: Path) -> None:
    with LiveServer(str(tmp_path / "example.db")) as server:
        key = server.mint_key("example@example.com")
        result = subprocess.run(
            [sys.executable, str(EXAMPLES / "sdk_quickstart.py"), server.base_url, key.api_key,
             key.user.webhook_secret],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "signature valid=True" in result.stdout
    assert "outcome=reported_success result='briefing sent'" in result.stdout


def run_example(name: str, *args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True, text=True, timeout=60, check=False, cwd=cwd,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_basic_usage_creates_lists_pauses_and_deletes(tmp_path: Path) -> None:
    with LiveServer(str(tmp_path / "basic.db")) as server:
        key = server.mint_key("basic@example.com")
        output = run_example("basic_usage.py", server.base_url, key.api_key)
    assert "2 cues: send-report [active], morning-brief [active]" in output
    assert "paused morning-brief: status=paused next_run=None" in output
    assert "deleted both; 0 cues left" in output


@contextmanager
def webhook_handler(secret: str) -> Iterator[str]:
    """examples/webhook_handler.py running on a free port; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "webhook_handler.py"), secret, "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        yield process.stdout.readline().split("listening on ")[1].strip()
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()


def test_webhook_handler_verifies_and_answers_the_outcome(tmp_path: Path) -> None:
    with LiveServer(str(tmp_path / "hook.db"), clock=manual_clock()) as server:
        key = server.mint_key("hook@example.com")
        with webhook_handler(key.user.webhook_secret) as url, httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {key.api_key}"}
        ) as api:  # fmt: skip
            bad_signature = {"X-CueAPI-Signature": "v1=00", "X-CueAPI-Timestamp": "1"}
            forged = httpx.post(url, json={"execution_id": "x", "payload": {}},
                                headers=bad_signature)  # fmt: skip
            assert forged.status_code == 401
            cues = [
                api.post("/v1/cues", json={"name": task, "at": server.now().isoformat(),
                                           "callback": url, "payload": {"task": task}}).json()
                for task in ("daily_brief", "unknown")
            ]  # fmt: skip
            server.advance()
            outcomes = [
                api.get("/v1/executions", params={"cue_id": cue["id"]}).json()["executions"][0]
                for cue in cues
            ]
    assert [(e["status"], e["outcome_state"]) for e in outcomes] == [
        ("success", "reported_success"), ("success", "reported_failure"),
    ]  # fmt: skip
    assert outcomes[0]["outcome"]["external_id"] == "mail:1"
    assert outcomes[1]["outcome"]["error"] == "no handler for task 'unknown'"


def test_worker_setup_writes_a_config_the_official_worker_runs(tmp_path: Path) -> None:
    worker_bin = shutil.which("cueapi-worker", path=str(BIN))
    assert worker_bin, "cueapi-worker is installed with the test extra"
    config = tmp_path / "worker.yaml"
    with LiveServer(str(tmp_path / "worker.db")) as server:
        key = server.mint_key("worker@example.com")
        output = run_example("worker_setup.py", server.base_url, key.api_key,
                             "--config", str(config), "--worker-id", "example-worker")  # fmt: skip
        assert "server says: No active workers found" in output
        assert '  sync_data: "echo synced {{ payload.rows }} rows"' in config.read_text()
        api = httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {key.api_key}"}
        )
        [cue] = api.get("/v1/cues").json()["cues"]
        execution_id = api.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
        daemon = subprocess.Popen(
            [worker_bin, "start", "-c", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        )  # fmt: skip
        try:
            done = wait_until(
                lambda: (
                    (e := api.get(f"/v1/executions/{execution_id}").json())["status"]
                    in ("success", "failed")
                    and e
                )
            )
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)
            if daemon.stdout:
                daemon.stdout.close()
            api.close()
    assert (done["status"], done["claimed_by_worker"]) == ("success", "example-worker")
    assert done["outcome"]["result"].strip() == "synced 100 rows"


async def test_the_mcp_client_config_starts_a_working_stdio_server(tmp_path: Path) -> None:
    entry = json.loads((EXAMPLES / "mcp_config.json").read_text())["mcpServers"]["cueapi-lite"]
    with LiveServer(str(tmp_path / "mcp.db")) as server:
        key = server.mint_key("desktop@example.com")
        args = [server.base_url if arg == "http://127.0.0.1:8000" else arg for arg in entry["args"]]
        command = StdioServerParameters(
            command=str(BIN / entry["command"]), args=args,
            env={**entry["env"], "CUEAPI_API_KEY": key.api_key},
        )  # fmt: skip
        async with Client(command) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            listed = await client.call_tool("cueapi_list_cues", {})
    assert "cueapi_create_cue" in names
    assert not listed.is_error
    assert json.loads(listed.content[0].text)["total"] == 0  # type: ignore[union-attr]
