"""Backup while the server takes writes, restore (refused while it runs), export and
import from a file or from another live server's API."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from cueapi_lite.cli import main
from cueapi_lite.testing import LiveServer


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def authed(base_url: str, api_key: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"})


def cue_body(n: int, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"cue-{n}",
        "schedule": {"type": "recurring", "cron": "*/5 * * * *", "timezone": "Europe/Berlin"},
        "callback": {"url": "http://127.0.0.1:9/hook", "headers": {"X-Team": "ops"}},
        "payload": {"n": n},
        "retry": {"max_attempts": 5, "backoff_minutes": [1, 2]},
        "catch_up": "skip_missed",
    }
    body.update(fields)
    return body


def test_a_backup_taken_while_the_server_writes_is_a_consistent_copy(tmp_path: Path) -> None:
    db = str(tmp_path / "live.db")
    copy = tmp_path / "copy.db"
    with LiveServer(db) as server:
        key = server.mint_key("ops@example.com")
        stop = threading.Event()
        created: list[int] = []

        def write() -> None:
            with authed(server.base_url, key.api_key) as client:
                n = 0
                while not stop.is_set() and n < 2000:
                    response = client.post("/v1/cues", json=cue_body(n))
                    assert response.status_code == 201, response.text
                    created.append(n)
                    n += 1

        writer = threading.Thread(target=write)
        writer.start()
        try:
            while len(created) < 20:
                stop.wait(0.01)
            result = cli("backup", str(copy), "--db", db)
            during = len(created)
        finally:
            stop.set()
            writer.join()
        assert result.exit_code == 0, result.output
        assert f"Backed up {db} to {copy}" in result.output
    conn = sqlite3.connect(copy)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    names = {row[0] for row in conn.execute("SELECT name FROM cues")}
    # A snapshot of one commit: a prefix of the cues created, none half-written.
    assert 20 <= len(names) <= len(created)
    assert names == {f"cue-{n}" for n in range(len(names))}
    assert len(names) <= during + 1
    assert not Path(f"{copy}.part").exists()


def test_backup_never_overwrites_a_file(tmp_path: Path) -> None:
    db, copy = tmp_path / "a.db", tmp_path / "copy.db"
    assert (
        cli("keys", "create", "--create", "--db", str(db), "--email", "a@example.com").exit_code
        == 0
    )
    copy.write_text("precious")
    result = CliRunner().invoke(main, ["backup", str(copy), "--db", str(db)])
    assert result.exit_code == 1
    assert "exists already" in result.output
    assert copy.read_text() == "precious"


def test_restore_refuses_while_a_server_runs_then_puts_the_backup_back(tmp_path: Path) -> None:
    db = str(tmp_path / "live.db")
    copy = str(tmp_path / "copy.db")
    with LiveServer(db) as server:
        key = server.mint_key("ops@example.com")
        headers = {"Authorization": f"Bearer {key.api_key}"}
        httpx.post(f"{server.base_url}/v1/cues", json=cue_body(1), headers=headers)
        assert cli("backup", copy, "--db", db).exit_code == 0
        httpx.post(f"{server.base_url}/v1/cues", json=cue_body(2), headers=headers)
        refused = CliRunner().invoke(main, ["restore", copy, "--db", db])
        assert refused.exit_code == 1
        assert "another cueapi-lite server is already running on" in refused.output
    restored = cli("restore", copy, "--db", db)
    assert restored.exit_code == 0, restored.output
    assert f"The old file is {db}.before-restore" in restored.output
    with LiveServer(db) as server:
        response = httpx.get(f"{server.base_url}/v1/cues", headers=headers)
        assert [c["name"] for c in response.json()["cues"]] == ["cue-1"]
    old = sqlite3.connect(f"{db}.before-restore")
    assert old.execute("SELECT COUNT(*) FROM cues").fetchone()[0] == 2


def test_restore_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    result = CliRunner().invoke(main, ["restore", str(junk), "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 1
    assert "is not a usable cueapi-lite database" in result.output
    assert not (tmp_path / "x.db").exists()


def test_export_writes_create_bodies_and_import_recreates_them_paused_included(
    tmp_path: Path,
) -> None:
    source, target = str(tmp_path / "source.db"), str(tmp_path / "target.db")
    with LiveServer(source) as server:
        key = server.mint_key("ops@example.com")
        headers = {"Authorization": f"Bearer {key.api_key}"}
        with httpx.Client(base_url=server.base_url, headers=headers) as client:
            client.post("/v1/cues", json=cue_body(1))
            paused = client.post("/v1/cues", json=cue_body(2, transport="worker")).json()
            client.patch(f"/v1/cues/{paused['id']}", json={"status": "paused"})
        exported = cli("export", "--email", "ops@example.com", "--db", source)
    assert exported.exit_code == 0, exported.output
    bodies = json.loads(exported.output)
    by_name = {b["name"]: b for b in bodies}
    assert by_name["cue-1"]["schedule"] == {
        "type": "recurring", "cron": "*/5 * * * *", "timezone": "Europe/Berlin"
    }  # fmt: skip
    assert by_name["cue-1"]["callback"]["headers"] == {"X-Team": "ops"}
    assert by_name["cue-2"]["status"] == "paused"
    assert not any(field in by_name["cue-1"] for field in ("id", "run_count", "next_run"))
    dump = tmp_path / "cues.json"
    dump.write_text(exported.output)
    assert (
        cli("keys", "create", "--create", "--db", target, "--email", "x@example.com").exit_code == 0
    )
    imported = cli("import", str(dump), "--email", "new@example.com", "--db", target)
    assert imported.exit_code == 0, imported.output
    assert "Imported 2 cue(s) for new@example.com; 0 skipped" in imported.output
    again = cli("import", str(dump), "--email", "new@example.com", "--db", target)
    assert "Imported 0 cue(s) for new@example.com; 2 skipped (name exists)" in again.output
    with LiveServer(target) as server:
        key = server.mint_key("new@example.com")
        with authed(server.base_url, key.api_key) as client:
            listed = client.get("/v1/cues").json()["cues"]
    got = {c["name"]: c for c in listed}
    assert got["cue-1"]["status"] == "active"
    assert got["cue-1"]["retry"] == {"max_attempts": 5, "backoff_minutes": [1, 2]}
    assert got["cue-1"]["catch_up"] == "skip_missed"
    assert got["cue-2"]["status"] == "paused"
    assert got["cue-2"]["transport"] == "worker"


def test_import_from_pulls_the_cues_of_another_live_server(tmp_path: Path) -> None:
    target = str(tmp_path / "target.db")
    assert (
        cli("keys", "create", "--create", "--db", target, "--email", "me@example.com").exit_code
        == 0
    )
    with LiveServer(str(tmp_path / "remote.db")) as remote:
        key = remote.mint_key("them@example.com")
        with authed(remote.base_url, key.api_key) as client:
            for n in range(105):  # more than one page of the remote's list
                assert client.post("/v1/cues", json=cue_body(n)).status_code == 201
        result = cli("import", "--from", remote.base_url + "/v1", "--key", key.api_key,
                     "--email", "me@example.com", "--db", target)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Imported 105 cue(s) for me@example.com" in result.output
    conn = sqlite3.connect(target)
    assert conn.execute("SELECT COUNT(*) FROM cues").fetchone()[0] == 105


def test_import_from_a_server_that_refuses_the_key_says_so(tmp_path: Path) -> None:
    target = str(tmp_path / "target.db")
    assert (
        cli("keys", "create", "--create", "--db", target, "--email", "me@example.com").exit_code
        == 0
    )
    with LiveServer(str(tmp_path / "remote.db")) as remote:
        result = CliRunner().invoke(main, ["import", "--from", remote.base_url, "--key",
                                           "cue_sk_" + "0" * 32, "--email", "me@example.com",
                                           "--db", target])  # fmt: skip
    assert result.exit_code == 1
    assert "answered 401 to GET /v1/cues" in result.output


def test_import_refuses_while_a_server_runs_on_the_target(tmp_path: Path) -> None:
    db = str(tmp_path / "live.db")
    dump = tmp_path / "cues.json"
    dump.write_text(json.dumps([cue_body(1)]))
    with LiveServer(db):
        result = CliRunner().invoke(main, ["import", str(dump), "--email", "a@example.com",
                                           "--db", db])  # fmt: skip
    assert result.exit_code == 1
    assert "another cueapi-lite server is already running" in result.output


@pytest.mark.parametrize("content", ['{"name": "x"}', "not json", "[1, 2]"])
def test_import_refuses_a_file_that_is_not_a_list_of_bodies(tmp_path: Path, content: str) -> None:
    db = str(tmp_path / "t.db")
    assert cli("keys", "create", "--create", "--db", db, "--email", "a@example.com").exit_code == 0
    dump = tmp_path / "cues.json"
    dump.write_text(content)
    result = CliRunner().invoke(main, ["import", str(dump), "--email", "a@example.com",
                                       "--db", db])  # fmt: skip
    assert result.exit_code == 1
    assert result.output.startswith("Error:")


def test_remote_cues_skip_finished_ones_and_keep_paused_ones() -> None:
    from cueapi_lite.transfer import create_body, remote_cues

    listed = [
        {"name": "on", "status": "active", "schedule": {"type": "recurring", "cron": "0 9 * * *",
                                                          "timezone": "UTC"}},
        {"name": "held", "status": "paused", "schedule": {"type": "once",
                                                            "at": "2030-01-01T00:00:00Z"}},
        {"name": "done", "status": "completed", "schedule": {"type": "once",
                                                               "at": "2020-01-01T00:00:00Z"}},
    ]  # fmt: skip
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        assert request.headers["authorization"] == "Bearer cue_sk_test"
        return httpx.Response(200, json={"cues": listed, "total": 3})

    cues = list(remote_cues("https://api.example.com/v1/", "cue_sk_test",
                            transport=httpx.MockTransport(answer)))  # fmt: skip
    assert seen == ["https://api.example.com/v1/cues?limit=100&offset=0"]
    bodies = [create_body(cue) for cue in cues]
    assert bodies == [
        {"name": "on", "schedule": {"type": "recurring", "cron": "0 9 * * *", "timezone": "UTC"}},
        {"name": "held", "status": "paused",
         "schedule": {"type": "once", "at": "2030-01-01T00:00:00Z", "timezone": "UTC"}},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ('{"n": NaN}', "[1].payload.n: NaN is not a JSON number"),
        ('{"s": "\\udc00"}', "[1].payload.s: holds a lone UTF-16 surrogate"),
        ('{"n": 123456789012345678901}', "[1].payload.n: the number is out of range"),
    ],
)
def test_import_refuses_json_the_api_would_refuse_and_imports_nothing(
    tmp_path: Path, payload: str, message: str
) -> None:
    """The file is read with the API's decoder: what a server could not store is named
    before anything is written, instead of failing halfway with a traceback."""
    db = str(tmp_path / "t.db")
    assert cli("keys", "create", "--create", "--db", db, "--email", "a@example.com").exit_code == 0
    dump = tmp_path / "cues.json"
    bad = json.dumps(cue_body(2)).replace('{"n": 2}', payload)
    dump.write_text(f"[{json.dumps(cue_body(1))}, {bad}]")
    result = CliRunner().invoke(main, ["import", str(dump), "--email", "a@example.com",
                                       "--db", db])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert message in result.output
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM cues").fetchone() == (0,)


def test_remote_cues_refuse_an_answer_a_server_could_not_store() -> None:
    from cueapi_lite.transfer import TransferError, remote_cues

    def answer(request: httpx.Request) -> httpx.Response:
        body = b'{"cues": [{"name": "x", "status": "active", "payload": {"n": NaN}}], "total": 1}'
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    with pytest.raises(TransferError, match=r"cues\[0\]\.payload\.n: NaN is not a JSON number"):
        list(remote_cues("https://api.example.com", "cue_sk_test",
                         transport=httpx.MockTransport(answer)))  # fmt: skip


def test_export_to_a_folder_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    db = str(tmp_path / "cues.db")
    assert (
        cli("keys", "create", "--create", "--db", db, "--email", "ops@example.com").exit_code == 0
    )
    missing = tmp_path / "no-such-folder" / "cues.json"
    result = CliRunner().invoke(
        main, ["export", "--email", "ops@example.com", "-o", str(missing), "--db", db]
    )
    assert result.exit_code == 1, result.output
    assert f"Error: cannot write {missing}: No such file or directory" in result.output
    assert not missing.parent.exists()
