"""The `cueapi-lite` command line: keys, explain, and help for every command; the README's
command and settings tables match the commands and settings there are."""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cueapi_lite.cli import main
from cueapi_lite.config import Settings
from cueapi_lite.credentials import hash_token

from .helpers import unused_port

README = Path(__file__).resolve().parents[1] / "README.md"


def invoke(*args: str) -> click.testing.Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_keys_create_prints_one_json_object_and_stores_only_a_hash(tmp_path: Path) -> None:
    db = tmp_path / "keys.db"
    result = invoke(
        "keys", "create", "--create", "--db", str(db), "--email", "ops@example.com", "--json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"email", "api_key", "webhook_secret"}
    assert data["email"] == "ops@example.com"
    assert data["api_key"].startswith("cue_sk_")
    assert len(data["api_key"]) == 7 + 32
    assert data["webhook_secret"].startswith("whsec_")
    assert len(data["webhook_secret"]) == 6 + 64
    conn = sqlite3.connect(db)
    stored = [row[0] for row in conn.execute("SELECT key_hash FROM api_keys")]
    assert stored == [hash_token(data["api_key"])]
    dump = "\n".join(conn.iterdump())
    assert data["api_key"] not in dump


def test_keys_create_reuses_the_user_and_its_secret(tmp_path: Path) -> None:
    db = str(tmp_path / "keys.db")
    first = json.loads(
        invoke(
            "keys", "create", "--create", "--db", db, "--email", "a@example.com", "--json"
        ).output
    )
    second = json.loads(
        invoke("keys", "create", "--db", db, "--email", "A@example.com", "--json").output
    )
    assert first["api_key"] != second["api_key"]
    assert first["webhook_secret"] == second["webhook_secret"]


def test_keys_create_refuses_a_bad_email(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["keys", "create", "--create", "--db", str(tmp_path / "k.db"),
                                       "--email", "not-an-email"])  # fmt: skip
    assert result.exit_code == 1
    assert "Not a valid email" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["keys", "create", "--email", "a@example.com"],
        ["device", "approve", "ABCD-EFGH", "--email", "a@example.com"],
        ["device", "list"],
        ["export", "--email", "a@example.com"],
        ["backup", "copy.db"],
    ],
)
def test_admin_commands_refuse_to_make_a_second_empty_database(
    args: list[str], tmp_path: Path
) -> None:
    missing = tmp_path / "elsewhere" / "cueapi-lite.db"
    result = CliRunner().invoke(main, [*args, "--db", str(missing)])
    assert result.exit_code == 1
    assert f"no database at {missing}" in result.output
    assert not missing.exists()
    assert not missing.parent.exists()


def test_keys_create_finds_the_default_database_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("CUEAPI_LITE_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    created = invoke("keys", "create", "--create", "--email", "a@example.com", "--json")
    assert created.exit_code == 0, created.output
    expected = tmp_path / "data" / "cueapi-lite" / "cueapi-lite.db"
    assert expected.is_file()
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    again = invoke("keys", "create", "--email", "b@example.com", "--json")
    assert again.exit_code == 0, again.output
    conn = sqlite3.connect(expected)
    assert conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 2
    assert not list((tmp_path / "other").iterdir())


def test_explain_flags_a_dst_gap_in_json() -> None:
    result = invoke("explain", "30 2 * * *", "--tz", "America/New_York",
                    "--from", "2026-03-07T00:00:00", "-n", "3", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows == [
        {"local": "2026-03-07T02:30:00-05:00", "utc": "2026-03-07T07:30:00+00:00", "note": None},
        {
            "local": "2026-03-08T03:00:00-04:00",
            "utc": "2026-03-08T07:00:00+00:00",
            "note": "02:30 does not exist (DST gap); fires at 03:00",
        },
        {"local": "2026-03-09T02:30:00-04:00", "utc": "2026-03-09T06:30:00+00:00", "note": None},
    ]


def test_explain_prints_local_and_utc_and_the_fold_note() -> None:
    result = invoke("explain", "30 1 * * *", "--tz", "America/New_York",
                    "--from", "2026-11-01T00:00:00", "-n", "1")  # fmt: skip
    assert result.output.strip() == (
        "2026-11-01T01:30:00-04:00  (2026-11-01T05:30:00+00:00)"
        "  <- 01:30 occurs twice (DST fold); fires at the first"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explain", "nope"], "Invalid cron expression"),
        (["explain", "* * * * *", "--tz", "Atlantis/Capital"], "Unknown timezone"),
        (["explain", "* * * * *", "--from", "yesterday"], "not an ISO 8601"),
    ],
)
def test_explain_reports_bad_input(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert message in result.output


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        found.append((path, command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, path + " "))
    return found


def _table(heading: str) -> list[str]:
    """The rows of the README's table under `## heading`."""
    section = README.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


def _documented_commands() -> list[str]:
    """The command of each row of the README's command table (`keys create`, ...)."""
    found = []
    for row in _table("Commands"):
        words = row.split("`")[1].split()
        assert words[0] == "cueapi-lite", row
        path = []
        for word in words[1:]:
            if not re.fullmatch(r"[a-z][a-z-]*", word):
                break  # an argument or an option: the command's words are done
            path.append(word)
        found.append(" ".join(path))
    return found


@pytest.mark.parametrize(("path", "command"), _commands(main))
def test_every_command_has_help_and_is_in_the_readme(path: str, command: click.Command) -> None:
    assert command.help, path
    result = invoke(*path.split(), "--help")
    assert result.exit_code == 0
    if isinstance(command, click.Group):  # named in the text; its commands have rows
        assert f"`cueapi-lite {path}`" in README.read_text(), f"README does not name {path!r}"
    else:
        assert _documented_commands().count(path) == 1, f"README's table must show {path!r} once"


def test_the_readme_shows_no_command_that_does_not_exist() -> None:
    commands = {path for path, command in _commands(main) if not isinstance(command, click.Group)}
    assert set(_documented_commands()) <= commands


def test_every_setting_is_in_the_readme_settings_table_once() -> None:
    """Each `CUEAPI_LITE_<NAME>` variable (a `Settings` field) has its row, and only one."""
    shown = [
        name for row in _table("Settings") for name in re.findall(r"`([A-Z_]+)`", row.split("|")[1])
    ]
    settings = sorted(field.name.upper() for field in dataclasses.fields(Settings))
    assert sorted(set(shown)) == settings
    assert [name for name in set(shown) if shown.count(name) > 1] == []


@pytest.mark.parametrize(
    ("cron", "zone", "message"),
    [
        ("0 25 * * *", "UTC", "hour 25 is out of range 0\u201323"),
        ("*/60 * * * *", "UTC", "minute step 60 is out of range 1\u201359"),
        ("0 9 * * *", "localtime", "Unknown timezone: 'localtime'"),
    ],
)
def test_explain_refuses_what_a_cue_would_refuse_and_says_why(
    cron: str, zone: str, message: str
) -> None:
    result = CliRunner().invoke(main, ["explain", cron, "--tz", zone])
    assert result.exit_code == 1
    assert message in result.output


OPENING_COMMANDS = [
    ["serve", "--port", "0"],
    ["keys", "create", "--email", "a@example.com"],
    ["export", "--email", "a@example.com"],
    ["import", "CUES", "--email", "a@example.com"],
]


def arguments(args: list[str], tmp_path: Path) -> list[str]:
    """`args` with CUES standing for a file of cues to import (an empty list)."""
    cues = tmp_path / "cues.json"
    cues.write_text("[]")
    return [str(cues) if arg == "CUES" else arg for arg in args]


def unchanged(path: Path, before: bytes) -> None:
    assert path.read_bytes() == before
    assert not Path(f"{path}-wal").exists()
    assert not Path(f"{path}-shm").exists()


@pytest.mark.parametrize("args", OPENING_COMMANDS, ids=lambda args: " ".join(args[:2]))
def test_a_file_that_is_not_a_database_is_refused_in_one_line(
    args: list[str], tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database, but someone's notes\n" * 200)
    before = notes.read_bytes()
    result = CliRunner().invoke(main, [*arguments(args, tmp_path), "--db", str(notes)])
    assert result.exit_code == 1, result.output
    assert f"Error: cannot use the database at {notes}: file is not a database" in result.output
    assert "Traceback" not in result.output
    unchanged(notes, before)


@pytest.mark.parametrize("args", OPENING_COMMANDS, ids=lambda args: " ".join(args[:2]))
def test_another_applications_sqlite_file_is_left_as_it_was(
    args: list[str], tmp_path: Path
) -> None:
    theirs = tmp_path / "theirs.db"
    conn = sqlite3.connect(theirs)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.execute("INSERT INTO users VALUES ('ada')")
    conn.commit()
    conn.close()
    before = theirs.read_bytes()
    result = CliRunner().invoke(main, [*arguments(args, tmp_path), "--db", str(theirs)])
    assert result.exit_code == 1, result.output
    message = f"Error: cannot use the database at {theirs}: it holds another application's tables"
    assert message in result.output
    unchanged(theirs, before)  # not turned to WAL, no tables added


@pytest.mark.parametrize("args", OPENING_COMMANDS, ids=lambda args: " ".join(args[:2]))
def test_a_postgresql_server_that_does_not_answer_is_one_line_without_the_password(
    args: list[str], tmp_path: Path
) -> None:
    port = unused_port()
    result = CliRunner().invoke(
        main, [*arguments(args, tmp_path), "--db", f"postgresql://cue:s3cret@127.0.0.1:{port}/cues"]
    )
    assert result.exit_code == 1, result.output
    assert result.output.startswith(
        f"Error: cannot use the database at postgresql://cue:***@127.0.0.1:{port}/cues: "
    ), result.output
    assert "Connection refused" in result.output
    assert "s3cret" not in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [["backup", "copy.db"], ["restore", "BACKUP"]])
def test_backup_and_restore_refuse_a_postgresql_url(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "real.db")
    assert (
        invoke("keys", "create", "--create", "--db", db, "--email", "a@example.com").exit_code == 0
    )
    assert invoke("backup", str(tmp_path / "BACKUP"), "--db", db).exit_code == 0
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(main, [*args, "--db", "postgresql://cue@127.0.0.1/cues"])
    assert result.exit_code == 1, result.output
    assert "for a PostgreSQL database use pg_dump and pg_restore" in result.output
    # Not taken for a relative path: no `postgresql:` folder, no file written.
    assert sorted(p.name for p in tmp_path.iterdir()) == before
