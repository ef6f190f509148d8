"""Fixtures for end-to-end tests that run the official clients as real processes.

The `cueapi` CLI and the SDK both install a top-level `cueapi` package (CONTRACT H1), so
the CLI gets its own virtual environment, made once and kept under `.cache/`.
"""

from __future__ import annotations

import os
import subprocess
import time
import venv
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
CLI_VERSION = "0.2.0"


def _cli_environment() -> Path:
    home = ROOT / ".cache" / f"cueapi-cli-{CLI_VERSION}"
    executable = home / "bin" / "cueapi"
    if executable.exists():
        return executable
    venv.EnvBuilder(with_pip=True, clear=True).create(home)
    install = subprocess.run(
        [str(home / "bin" / "python"), "-m", "pip", "install", "-q", f"cueapi=={CLI_VERSION}"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if install.returncode != 0:
        raise RuntimeError(f"installing cueapi=={CLI_VERSION} failed:\n{install.stderr}")
    return executable


@pytest.fixture(scope="session")
def cueapi_cli() -> Path:
    """Path of the official `cueapi` CLI executable, in its own environment."""
    return _cli_environment()


@pytest.fixture
def cli_home(tmp_path: Path) -> dict[str, str]:
    """An environment for running the CLI: a private HOME, no browser, no inherited keys."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CUEAPI_") and k not in {"XDG_CONFIG_HOME", "HOME"}
    }
    env.update(HOME=str(home), BROWSER="true", PYTHONUNBUFFERED="1", NO_COLOR="1")
    return env


def wait_until(condition: Callable[[], T], timeout: float = 30.0) -> T:
    """Poll an observable condition (an API answer) until it is truthy or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def run_cli(
    cli: Path, env: dict[str, str], *args: str, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run the CLI and capture its output (never raises on a non-zero exit)."""
    return subprocess.run(
        [str(cli), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The first test that needs the CLI installs it: give those tests room for that."""
    for item in items:
        if "cueapi_cli" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(600))
