"""The one-file distribution: a shiv zipapp of cueapi-lite, built as the README says,
starts `serve` in a fresh interpreter that sees nothing but the file."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.timeout(900)
def test_the_zipapp_serves_from_the_file_alone(tmp_path: Path) -> None:
    build = tmp_path / "build"
    build.mkdir()
    pyz = build / "cueapi-lite.pyz"
    built = subprocess.run(
        [str(BIN / "shiv"), "-c", "cueapi-lite", "-o", str(pyz), str(ROOT), "-q"],
        capture_output=True, text=True, timeout=800, check=False, cwd=build,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    shutil.move(pyz, alone / "cueapi-lite.pyz")
    # The interpreter the virtual environment was made from, isolated (-I) and without
    # site-packages (-S): everything cueapi-lite needs must come out of the file.
    python = getattr(sys, "_base_executable", sys.executable)
    env = {"PATH": os.environ.get("PATH", ""), "SHIV_ROOT": str(tmp_path / "unpacked")}
    process = subprocess.Popen(
        [python, "-I", "-S", "cueapi-lite.pyz", "serve", "--port", "0", "--db", "lite.db"],
        cwd=alone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (lines and lines[-1].startswith("Ready.")):
            line = process.stdout.readline()
            assert line, "serve exited early:\n" + "".join(lines)
            lines.append(line)
        banner = "".join(lines)
        match = re.search(r"listening on (http://\S+)", banner)
        assert match, banner
        health = httpx.get(match.group(1) + "/health", timeout=10)
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "healthy"
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
        process.stdout.close()
    assert code == 0
    assert (alone / "lite.db").exists()
