"""The official `cueapi-worker` 0.3.0 daemon against a real server: it claims worker
executions, runs shell handlers and reports outcomes with evidence; SIGTERM stops it."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cueapi_lite.testing import LiveServer

from .conftest import wait_until

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def write_config(path: Path, base_url: str, api_key: str) -> None:
    evidence = (
        'printf \'%s\' \'{"success": true, "result": "did {{ payload.n }}",'
        ' "external_id": "ext-{{ payload.n }}", "summary": "evidence ok"}\''
        ' > "$CUEAPI_OUTCOME_FILE"'
    )
    config = {
        "api_key": api_key,
        "api_base": base_url,
        "worker_id": "e2e-worker",
        "poll_interval": 1,
        "heartbeat_interval": 1,
        "max_concurrent": 4,
        "handlers": {
            "evidence": evidence,
            "fails": "echo broken >&2; exit 3",
            "loud": {"cmd": f"{sys.executable} -c \"print('x' * 3000)\"", "timeout": 60},
        },
    }
    path.write_text(json.dumps(config))  # JSON is YAML


def test_the_official_worker_daemon_runs_claims_and_reports(tmp_path: Path) -> None:
    worker_bin = shutil.which("cueapi-worker", path=str(BIN))
    assert worker_bin, "cueapi-worker is installed with the test extra"
    with LiveServer(str(tmp_path / "worker.db")) as server:
        key = server.mint_key("worker@example.com")
        api = httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {key.api_key}"}
        )
        now = datetime.now(UTC).isoformat()
        ids: dict[str, str] = {}
        for task, extra in [("evidence", {"n": 7}), ("fails", {}), ("loud", {}), ("orphan", {})]:
            cue = api.post("/v1/cues", json={
                "name": task, "schedule": {"type": "once", "at": now}, "transport": "worker",
                "payload": {"task": task, **extra},
            }).json()  # fmt: skip
            assert cue["warning"].startswith("No active workers found")
            ids[task] = cue["id"]
        config = tmp_path / "worker.yaml"
        write_config(config, server.base_url, key.api_key)
        daemon = subprocess.Popen(
            [worker_bin, "start", "-c", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        )  # fmt: skip
        try:

            def finished(task: str) -> dict[str, Any] | None:
                found = api.get("/v1/executions", params={"cue_id": ids[task]}).json()
                done = [e for e in found["executions"] if e["status"] in ("success", "failed")]
                return done[0] if done else None

            evidence = wait_until(lambda: finished("evidence"))
            fails = wait_until(lambda: finished("fails"))
            loud = wait_until(lambda: finished("loud"))

            assert evidence["status"] == "success"
            assert evidence["claimed_by_worker"] == "e2e-worker"
            assert evidence["attempts"] == 1
            assert evidence["outcome_state"] == "reported_success"
            assert evidence["outcome"]["result"] == "did 7"
            assert evidence["outcome"]["external_id"] == "ext-7"
            assert evidence["outcome"]["summary"] == "evidence ok"

            assert fails["status"] == "failed"
            assert fails["outcome_success"] is False
            assert "broken" in fails["outcome"]["error"]
            assert "broken" in fails["error_message"]

            assert loud["status"] == "success"
            assert len(loud["outcome"]["result"]) > 2000  # the daemon sends up to 4,096

            cues = {task: api.get(f"/v1/cues/{cue_id}").json() for task, cue_id in ids.items()}
            assert cues["evidence"]["status"] == "completed"
            assert cues["fails"]["status"] == "failed"

            # Nobody handles `orphan`: it stays pending and claimable.
            orphan = api.get("/v1/executions", params={"cue_id": ids["orphan"]}).json()
            assert [e["status"] for e in orphan["executions"]] == ["pending"]
            claimable = api.get("/v1/executions/claimable").json()["executions"]
            assert [e["task"] for e in claimable] == ["orphan"]

            [worker] = api.get("/v1/workers").json()["workers"]
            assert worker["worker_id"] == "e2e-worker"
            assert sorted(worker["handlers"]) == ["evidence", "fails", "loud"]
            assert worker["heartbeat_status"] == "active"
        finally:
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(60)
            output = daemon.stdout.read() if daemon.stdout else ""
            if daemon.stdout:
                daemon.stdout.close()
            api.close()
        assert code == 0, output
        assert "Worker daemon stopped" in output
