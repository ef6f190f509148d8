"""The official `cueapi-worker` 0.3.0's login (magic link, CONTRACT §9.1) and
`regenerate-key` against a real server."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml

from cueapi_lite.testing import LiveServer

pytestmark = pytest.mark.e2e

WORKER = str(Path(sys.executable).parent / "cueapi-worker")


class Inbox:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def send(self, to: str, subject: str, body: str) -> None:
        self.sent.append((to, subject, body))


def test_worker_login_by_magic_link_then_regenerate_key(tmp_path: Path) -> None:
    with LiveServer(str(tmp_path / "w.db")) as server:
        assert server.lite is not None
        inbox = Inbox()
        server.lite.devices.mailer = inbox
        config = tmp_path / "worker.yaml"
        # A trailing slash: the worker then calls //v1/... (H3).
        config.write_text(f"api_base: {server.base_url}/\nhandlers:\n  job: echo hi\n")
        login = subprocess.Popen(
            [WORKER, "login", "--email", "ops@example.com", "-c", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not inbox.sent:
                assert time.monotonic() < deadline, "no magic link was sent"
                assert login.poll() is None, login.communicate()[0]
                time.sleep(0.05)
            [(to, _subject, body)] = inbox.sent
            assert to == "ops@example.com"
            link = re.search(r"http://\S+/v1/auth/verify\?\S+", body)
            assert link, body
            with httpx.Client() as browser:
                page = browser.get(link.group(0))
                assert page.status_code == 200
                csrf = re.search(r"name=csrf value='([0-9a-f]{64})'", page.text)
                assert csrf, page.text
                query = {k: v[0] for k, v in parse_qs(urlsplit(link.group(0)).query).items()}
                confirmed = browser.post(
                    f"{server.base_url}/v1/auth/verify",
                    data={**query, "csrf": csrf.group(1)},
                )
                assert confirmed.status_code == 200, confirmed.text
            output, _ = login.communicate(timeout=30)
        finally:
            if login.poll() is None:
                login.kill()
                login.wait(10)
        assert login.returncode == 0, output
        assert "Authenticated. Key saved to config." in output
        key = yaml.safe_load(config.read_text())["api_key"]
        assert key.startswith("cue_sk_")

        regenerated = subprocess.run(
            [WORKER, "regenerate-key", "-c", str(config)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert regenerated.returncode == 0, regenerated.stderr
        new_key = yaml.safe_load(config.read_text())["api_key"]
        assert new_key != key
        with httpx.Client(base_url=server.base_url) as client:
            old = client.get("/v1/auth/me", headers={"Authorization": f"Bearer {key}"})
            assert old.status_code == 401
            assert old.json()["error"]["code"] == "key_rotated"
            me = client.get("/v1/auth/me", headers={"Authorization": f"Bearer {new_key}"})
            assert me.json()["email"] == "ops@example.com"
