"""The default database path: the platform's user data directory, the same from any
working directory."""

from __future__ import annotations

import pytest

from cueapi_lite.config import Settings, default_db_path


@pytest.mark.parametrize(
    ("platform", "environ", "expected"),
    [
        ("linux", {"HOME": "/home/ada"}, "/home/ada/.local/share/cueapi-lite/cueapi-lite.db"),
        ("linux", {"HOME": "/home/ada", "XDG_DATA_HOME": "/data"},
         "/data/cueapi-lite/cueapi-lite.db"),
        # A relative XDG_DATA_HOME is invalid by the spec and ignored.
        ("linux", {"HOME": "/home/ada", "XDG_DATA_HOME": "rel"},
         "/home/ada/.local/share/cueapi-lite/cueapi-lite.db"),
        ("darwin", {"HOME": "/Users/ada"},
         "/Users/ada/Library/Application Support/cueapi-lite/cueapi-lite.db"),
        ("freebsd14", {"HOME": "/home/ada"}, "/home/ada/.local/share/cueapi-lite/cueapi-lite.db"),
    ],
)  # fmt: skip
def test_the_default_database_lives_in_the_user_data_directory(
    platform: str, environ: dict[str, str], expected: str
) -> None:
    assert default_db_path(platform, environ) == expected


def test_settings_default_to_it_and_the_environment_overrides_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "/srv/data")
    assert Settings().db == "/srv/data/cueapi-lite/cueapi-lite.db"
    assert Settings.from_env({"CUEAPI_LITE_DB": "/tmp/x.db"}).db == "/tmp/x.db"
