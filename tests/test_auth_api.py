"""Accounts, keys, webhook secrets and sessions (E18-E30) through the API."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from cueapi import verify_webhook

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.credentials import hash_token
from cueapi_lite.services.accounts import NewKey

from .conftest import FakeDeliverer, webhook_cue

DESTRUCTIVE = {"X-Confirm-Destructive": "true"}


def code_of(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- E18 register -------------------------------------------------------------------------


async def test_register_creates_a_user_with_a_key_and_secret(lite: CueApiLite) -> None:
    async with lite.client() as client:
        response = await client.post("/v1/auth/register", json={"email": "new@example.com"})
        assert response.status_code == 201, response.text
        data = response.json()
        assert set(data) == {"api_key", "email", "webhook_secret"}
        assert data["email"] == "new@example.com"
        me = await client.get("/v1/auth/me", headers=bearer(data["api_key"]))
        assert me.status_code == 200
        assert me.json()["email"] == "new@example.com"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"email": "alice@example.com"}, 409, "duplicate_email"),
        ({"email": "ALICE@example.com"}, 409, "duplicate_email"),
        ({"email": "not an email"}, 422, "validation_error"),
        ({"email": 42}, 422, "validation_error"),
        ({}, 422, "validation_error"),
        ({"email": "a@" + "b" * 300}, 422, "validation_error"),
    ],
)
async def test_register_refuses_bad_or_known_emails(
    lite: CueApiLite, user: NewKey, body: dict[str, Any], status: int, code: str
) -> None:
    async with lite.client() as client:
        response = await client.post("/v1/auth/register", json=body)
    assert response.status_code == status, response.text
    assert code_of(response) == code


@pytest.mark.parametrize(
    ("host", "registration", "open_"),
    [
        ("127.0.0.1", "auto", True),
        ("::1", "auto", True),
        ("0.0.0.0", "auto", False),
        ("192.168.1.5", "auto", False),
        ("0.0.0.0", "on", True),
        ("127.0.0.1", "off", False),
    ],
)
def test_registration_is_open_by_default_only_on_loopback(
    host: str, registration: str, open_: bool
) -> None:
    assert Settings(host=host, registration=registration).registration_open is open_


async def test_register_answers_403_when_registration_is_off(
    tmp_path: Path, clock: ManualClock
) -> None:
    lite = CueApiLite(Settings(db=str(tmp_path / "r.db"), registration="off"), clock=clock)
    await lite.start()
    try:
        async with lite.client() as client:
            response = await client.post("/v1/auth/register", json={"email": "x@example.com"})
        assert response.status_code == 403
        assert code_of(response) == "registration_disabled"
        assert await lite.store.users.count() == 0
    finally:
        await lite.aclose()


# --- E19, E20 me ---------------------------------------------------------------------------


async def test_me_has_the_fields_and_integer_types_the_cli_reads(
    api: httpx.AsyncClient, user: NewKey
) -> None:
    await api.post("/v1/cues", json=webhook_cue())
    data = (await api.get("/v1/auth/me")).json()
    assert data["email"] == "alice@example.com"
    assert data["plan"] == "self-hosted"
    assert data["plan"].capitalize() == "Self-hosted"
    for name in ("active_cues", "active_cue_limit", "executions_this_month",
                 "monthly_execution_limit", "rate_limit_per_minute"):  # fmt: skip
        assert type(data[name]) is int, name
    assert data["active_cues"] == 1
    assert data["active_cue_limit"] == 1_000_000_000
    assert data["api_key_prefix"] == user.api_key[:11]
    assert data["has_webhook_secret"] is True
    assert data["alert_webhook_url"] is None
    assert data["email_alerts"] is True
    assert data["created_at"].endswith("+00:00")


async def test_patch_me_updates_preferences(api: httpx.AsyncClient) -> None:
    response = await api.patch(
        "/v1/auth/me",
        json={"alert_webhook_url": "https://ops.example.com/a", "email_alerts": False},
    )
    assert response.status_code == 200, response.text
    assert response.json()["alert_webhook_url"] == "https://ops.example.com/a"
    assert response.json()["email_alerts"] is False
    cleared = await api.patch("/v1/auth/me", json={"alert_webhook_url": None})
    assert cleared.json()["alert_webhook_url"] is None
    assert (await api.get("/v1/auth/me")).json()["email_alerts"] is False


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "no_fields"),
        ({"plan": "scale"}, "no_fields"),
        ({"email_alerts": "yes"}, "validation_error"),
        ({"alert_webhook_url": "ftp://x"}, "validation_error"),
        ({"alert_webhook_url": "https://x/" + "a" * 2100}, "validation_error"),
    ],
)
async def test_patch_me_refuses_bad_preferences(
    api: httpx.AsyncClient, body: dict[str, Any], code: str
) -> None:
    response = await api.patch("/v1/auth/me", json=body)
    assert response.status_code == 422
    assert code_of(response) == code


# --- E21, E22 the calling key ---------------------------------------------------------------


async def test_regenerate_replaces_the_calling_key_at_once(
    lite: CueApiLite, api: httpx.AsyncClient, user: NewKey
) -> None:
    other = await lite.accounts.mint_key(user.user.email, label="ci")
    response = await api.post("/v1/auth/key/regenerate", headers=DESTRUCTIVE)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["previous_key_revoked"] is True
    assert data["prefix"] == data["api_key"][:11]
    assert data["label"] == "default"
    old = await api.get("/v1/cues")
    assert old.status_code == 401
    assert code_of(old) == "key_rotated"
    async with lite.client(data["api_key"]) as fresh:
        assert (await fresh.get("/v1/cues")).status_code == 200
        keys = (await fresh.get("/v1/auth/keys")).json()["keys"]
    async with lite.client(other.api_key) as untouched:
        assert (await untouched.get("/v1/cues")).status_code == 200
    by_id = {k["id"]: k for k in keys}
    assert by_id[user.key_id]["status"] == "revoked"
    assert by_id[user.key_id]["revoked_reason"] == "rotated"
    assert by_id[user.key_id]["replaced_by"] == data["id"]


async def test_regenerate_needs_the_confirmation_header(api: httpx.AsyncClient) -> None:
    for headers in ({}, {"X-Confirm-Destructive": "yes"}):
        response = await api.post("/v1/auth/key/regenerate", headers=headers)
        assert response.status_code == 400
        assert code_of(response) == "confirmation_required"
    assert (await api.get("/v1/cues")).status_code == 200


async def test_regenerate_accepts_the_workers_bodiless_post(lite: CueApiLite, user: NewKey) -> None:
    # cueapi-worker sends no Content-Type and no body, to //v1/... (H3, CONTRACT §4.4).
    async with lite.client() as client:
        response = await client.post(
            "http://cueapi-lite.test//v1/auth/key/regenerate",
            headers={**bearer(user.api_key), **DESTRUCTIVE},
        )
    assert response.status_code == 200, response.text


async def test_get_key_cannot_reveal_a_hashed_key(api: httpx.AsyncClient, user: NewKey) -> None:
    data = (await api.get("/v1/auth/key")).json()
    assert data["api_key"] is None
    assert data["prefix"] == user.api_key[:11]
    assert "regenerate" in data["message"].lower()


# --- E23-E26 named keys ---------------------------------------------------------------------


async def test_named_keys_mint_list_rename_revoke(
    lite: CueApiLite, api: httpx.AsyncClient, user: NewKey, clock: ManualClock
) -> None:
    created = await api.post("/v1/auth/keys", json={"label": "laptop"})
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["api_key"].startswith("cue_sk_")
    assert key["status"] == "active"
    assert key["label"] == "laptop"
    assert key["prefix"] == key["api_key"][:11]

    listed = (await api.get("/v1/auth/keys")).json()
    assert listed["total"] == 2
    assert all("api_key" not in k for k in listed["keys"])
    assert {k["id"]: k["current"] for k in listed["keys"]} == {user.key_id: True, key["id"]: False}

    renamed = await api.patch(f"/v1/auth/keys/{key['id']}", json={"label": "old laptop"})
    assert renamed.json()["label"] == "old laptop"

    revoked = await api.delete(f"/v1/auth/keys/{key['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["revoked_at"] is not None
    async with lite.client(key["api_key"]) as dead:
        response = await dead.get("/v1/cues")
    assert response.status_code == 401
    assert code_of(response) == "invalid_api_key"
    assert (await api.delete(f"/v1/auth/keys/{key['id']}")).status_code == 200  # idempotent

    # The revoked record stays listed for 30 days, then the next key change purges it.
    clock.advance(29 * 86400)
    assert len((await api.get("/v1/auth/keys")).json()["keys"]) == 2
    clock.advance(2 * 86400)
    assert len((await api.get("/v1/auth/keys")).json()["keys"]) == 1
    spare = (await api.post("/v1/auth/keys", json={"label": "spare"})).json()
    await api.delete(f"/v1/auth/keys/{spare['id']}")
    assert await lite.store.users.key(user.user.id, key["id"]) is None


async def test_revoking_the_last_active_key_is_refused(
    api: httpx.AsyncClient, user: NewKey
) -> None:
    response = await api.delete(f"/v1/auth/keys/{user.key_id}")
    assert response.status_code == 409
    assert code_of(response) == "last_active_key"
    assert (await api.get("/v1/cues")).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"label": ""},
        {"label": "   "},
        {"label": 7},
        {"label": "x" * 101},
        {"label": "a\nb"},
    ],
)
async def test_key_labels_are_validated(api: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await api.post("/v1/auth/keys", json=body)
    assert response.status_code == 422
    assert (await api.get("/v1/auth/keys")).json()["total"] == 1


async def test_unknown_keys_are_404(api: httpx.AsyncClient) -> None:
    for response in (
        await api.patch("/v1/auth/keys/key_nothere00000", json={"label": "x"}),
        await api.delete("/v1/auth/keys/key_nothere00000"),
    ):
        assert response.status_code == 404
        assert code_of(response) == "key_not_found"


@pytest.mark.sqlite_file
async def test_keys_and_tokens_are_stored_only_as_hashes(
    lite: CueApiLite, api: httpx.AsyncClient, user: NewKey, settings: Settings
) -> None:
    minted = (await api.post("/v1/auth/keys", json={"label": "x"})).json()["api_key"]
    rotated = (await api.post("/v1/auth/key/regenerate", headers=DESTRUCTIVE)).json()["api_key"]
    dump = "\n".join(sqlite3.connect(settings.db).iterdump())
    for secret in (user.api_key, minted, rotated):
        assert secret not in dump
        assert hash_token(secret) in dump


# --- E27, E28 webhook secret ----------------------------------------------------------------


async def test_webhook_secret_rotation_signs_the_next_attempt_with_the_new_secret(
    lite: CueApiLite, api: httpx.AsyncClient, user: NewKey, deliverer: FakeDeliverer
) -> None:
    assert (await api.get("/v1/auth/webhook-secret")).json() == {
        "webhook_secret": user.user.webhook_secret
    }
    cue = (await api.post("/v1/cues", json=webhook_cue())).json()
    await api.post(f"/v1/cues/{cue['id']}/fire")
    await lite.settle()  # the delivery service now caches the old secret

    refused = await api.post("/v1/auth/webhook-secret/regenerate")
    assert refused.status_code == 400
    assert code_of(refused) == "confirmation_required"
    response = await api.post("/v1/auth/webhook-secret/regenerate", headers=DESTRUCTIVE)
    assert response.status_code == 200
    new_secret = response.json()["webhook_secret"]
    assert response.json()["previous_secret_revoked"] is True
    assert new_secret.startswith("whsec_")
    assert len(new_secret) == 70
    assert new_secret != user.user.webhook_secret

    await api.post(f"/v1/cues/{cue['id']}/fire")
    await lite.settle()
    first, second = deliverer.requests
    for request, secret, other in (
        (first, user.user.webhook_secret, new_secret),
        (second, new_secret, user.user.webhook_secret),
    ):
        assert request.body is not None
        args = (request.headers["X-CueAPI-Signature"],)
        stamp = request.headers["X-CueAPI-Timestamp"]
        body = json.loads(request.body)
        assert verify_webhook(body, *args, secret, stamp, tolerance=10**9)
        assert not verify_webhook(body, *args, other, stamp, tolerance=10**9)


# --- E29, E30 sessions ---------------------------------------------------------------------


async def login_token(lite: CueApiLite, email: str = "alice@example.com") -> dict[str, Any]:
    """A device login approved and polled: the poll's answer (api_key, session_token)."""
    async with lite.client() as client:
        await client.post("/v1/auth/device-code", json={"device_code": "SESS-1234"})
        await lite.devices.approve("SESS-1234", email, "cli", create_user=True)
        data = (await client.post("/v1/auth/device-code/poll",
                                  json={"device_code": "SESS-1234"})).json()  # fmt: skip
    assert data["status"] == "approved"
    return dict(data)


async def test_a_login_token_buys_one_session_that_works_as_bearer(
    lite: CueApiLite, user: NewKey, clock: ManualClock
) -> None:
    approved = await login_token(lite)
    async with lite.client() as client:
        response = await client.post("/v1/auth/session", json={"token": approved["session_token"]})
        assert response.status_code == 200, response.text
        session = response.json()
        assert session["email"] == "alice@example.com"
        assert session["session_token"].startswith("cue_ses_")
        again = await client.post("/v1/auth/session", json={"token": approved["session_token"]})
        assert again.status_code == 401
        assert code_of(again) == "invalid_token"
        for bad in ({"token": "nope"}, {}, {"token": user.api_key}):
            assert (await client.post("/v1/auth/session", json=bad)).status_code == 401

    async with lite.client(session["session_token"]) as as_session:
        me = (await as_session.get("/v1/auth/me")).json()
        assert me["email"] == "alice@example.com"
        assert me["authenticated_with"] == "session"
        assert me["api_key_prefix"] is None
        assert (await as_session.post("/v1/cues", json=webhook_cue())).status_code == 201
        regenerate = await as_session.post("/v1/auth/key/regenerate", headers=DESTRUCTIVE)
        assert regenerate.status_code == 400
        assert code_of(regenerate) == "api_key_required"

        clock.advance(3601)
        expired = await as_session.get("/v1/cues")
        assert expired.status_code == 401
        assert code_of(expired) == "session_expired"


async def test_refresh_replaces_the_session(lite: CueApiLite, user: NewKey) -> None:
    approved = await login_token(lite)
    async with lite.client() as client:
        first = (await client.post("/v1/auth/session",
                                   json={"token": approved["session_token"]})).json()  # fmt: skip
    async with lite.client(first["session_token"]) as old:
        refreshed = await old.post("/v1/auth/session/refresh")
        assert refreshed.status_code == 200, refreshed.text
        assert (await old.get("/v1/cues")).status_code == 401
    async with lite.client(refreshed.json()["session_token"]) as new:
        assert (await new.get("/v1/cues")).status_code == 200
    async with lite.client(user.api_key) as with_key:
        response = await with_key.post("/v1/auth/session/refresh")
        assert response.status_code == 401
        assert code_of(response) == "invalid_token"


async def test_login_tokens_expire(lite: CueApiLite, user: NewKey, clock: ManualClock) -> None:
    approved = await login_token(lite)
    clock.advance(901)
    async with lite.client() as client:
        response = await client.post("/v1/auth/session", json={"token": approved["session_token"]})
    assert response.status_code == 401
