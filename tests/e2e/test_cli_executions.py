"""The official `cueapi` CLI 0.2.0 `executions` commands against a real server, with the
exit codes and messages a person sees."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cueapi_lite.testing import LiveServer

from .conftest import run_cli

pytestmark = pytest.mark.e2e


def test_executions_commands_of_the_official_cli(
    tmp_path: Path, cueapi_cli: Path, cli_home: dict[str, str]
) -> None:
    with LiveServer(str(tmp_path / "cli.db")) as server:
        key = server.mint_key("cli@example.com")
        env = dict(cli_home, CUEAPI_API_KEY=key.api_key, CUEAPI_API_BASE=server.base_url + "/v1")

        def cli(*args: str) -> tuple[int, str]:
            done = run_cli(cueapi_cli, env, *args)
            return done.returncode, done.stdout + done.stderr

        with httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {key.api_key}"}
        ) as api:

            def worker_cue(name: str, payload: dict[str, str]) -> str:
                return str(api.post("/v1/cues", json={
                    "name": name, "schedule": {"type": "recurring", "cron": "0 0 1 1 *"},
                    "transport": "worker", "payload": payload,
                }).json()["id"])  # fmt: skip

            sync = worker_cue("sync", {"task": "sync", "agent": "alpha"})
            mail = worker_cue("mail", {"task": "mail"})
            first = api.post(f"/v1/cues/{sync}/fire").json()["id"]
            second = api.post(f"/v1/cues/{mail}/fire").json()["id"]
            third = api.post(f"/v1/cues/{sync}/fire").json()["id"]

        code, out = cli("executions", "list-claimable")
        assert code == 0, out
        assert first[:26] in out
        assert second[:26] in out
        code, out = cli("executions", "list-claimable", "--task", "mail")
        assert (code, first[:26] in out, second[:26] in out) == (0, False, True)
        code, out = cli("executions", "list-claimable", "--agent", "alpha")
        assert (code, first[:26] in out, second[:26] in out) == (0, True, False)
        code, out = cli("executions", "list-claimable", "--task", "nothing")
        assert (code, "No claimable executions (task=nothing)" in out) == (0, True)

        code, out = cli("executions", "claim", first, "--worker-id", "w1")
        assert code == 0, out
        assert f"Claimed: {first}" in out
        assert "900s" in out
        code, out = cli("executions", "claim", first, "--worker-id", "w2")
        assert (code, "Not claimable" in out) == (1, True)
        code, out = cli("executions", "claim", "00000000-0000-4000-8000-000000000000",
                        "--worker-id", "w1")  # fmt: skip
        assert (code, "Execution not found" in out) == (1, True)

        code, out = cli("executions", "claim-next", "--worker-id", "w1", "--task", "mail")
        assert (code, f"Claimed: {second}" in out) == (0, True)
        code, out = cli("executions", "claim-next", "--worker-id", "w1", "--task", "mail")
        assert (code, "No claimable executions for task=mail" in out) == (0, True)
        code, out = cli("executions", "claim-next", "--worker-id", "w3")
        assert (code, f"Claimed: {third}" in out) == (0, True)
        code, out = cli("executions", "claim-next", "--worker-id", "w3")
        assert (code, "No executions available for claiming" in out) == (0, True)

        code, out = cli("executions", "heartbeat", first, "--worker-id", "w1")
        assert (code, f"Heartbeat acknowledged: {first}" in out, "Lease until" in out) == (
            0, True, True,
        )  # fmt: skip
        code, out = cli("executions", "heartbeat", first, "--worker-id", "intruder")
        assert (code, "does not match" in out) == (1, True)

        code, out = cli("executions", "report-outcome", first, "--success",
                        "--external-id", "ticket-42", "--summary", "done by hand")  # fmt: skip
        assert (code, f"Outcome recorded: {first}" in out) == (0, True)
        code, out = cli("executions", "report-outcome", first, "--failure")
        assert (code, "Outcome already recorded" in out) == (1, True)
        code, out = cli("executions", "heartbeat", first, "--worker-id", "w1")
        assert (code, "no longer in 'delivering'" in out) == (1, True)

        code, out = cli("executions", "get", first)
        assert code == 0, out
        assert "Claimed by:" in out
        assert "w1" in out
        assert "success" in out.lower()
        code, out = cli("executions", "get", "00000000-0000-4000-8000-000000000000")
        assert (code, "Execution not found" in out) == (1, True)

        code, out = cli("executions", "list", "--cue-id", sync)
        assert code == 0, out
        assert first[:26] in out
        assert third[:26] in out
        assert second[:26] not in out
