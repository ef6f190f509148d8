"""The examples in examples/ run as documented against a real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cueapi_lite.testing import LiveServer

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


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
