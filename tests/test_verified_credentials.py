"""A verified key or session is trusted for a few seconds without a read, but every change
takes effect on the very next request: revoke, regenerate, session refresh and expiry, a
new webhook secret. Changes made by another process are seen once the few seconds pass.
The manual clock stands still unless a test moves it, so nothing here expires by itself."""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.services.accounts import VERIFIED_FOR_MS, NewKey

from .test_auth_api import DESTRUCTIVE, code_of, login_token


async def test_a_revoked_key_is_refused_on_the_next_request(
    lite: CueApiLite, api: httpx.AsyncClient
) -> None:
    second = (await api.post("/v1/auth/keys", json={"label": "ci"})).json()
    async with lite.client(second["api_key"]) as ci:
        assert (await ci.get("/v1/cues")).status_code == 200  # verified and remembered
        assert (await api.delete(f"/v1/auth/keys/{second['id']}")).status_code == 200
        refused = await ci.get("/v1/cues")
    assert refused.status_code == 401
    assert code_of(refused) == "invalid_api_key"


async def test_a_regenerated_key_is_refused_on_the_next_request(
    lite: CueApiLite, api: httpx.AsyncClient
) -> None:
    assert (await api.get("/v1/auth/me")).status_code == 200
    new_key = (await api.post("/v1/auth/key/regenerate", headers=DESTRUCTIVE)).json()["api_key"]
    refused = await api.get("/v1/auth/me")
    assert refused.status_code == 401
    assert code_of(refused) == "key_rotated"
    async with lite.client(new_key) as renewed:
        assert (await renewed.get("/v1/auth/me")).status_code == 200


async def test_a_new_webhook_secret_is_shown_at_once(api: httpx.AsyncClient) -> None:
    before = (await api.get("/v1/auth/webhook-secret")).json()["webhook_secret"]
    rotated = await api.post("/v1/auth/webhook-secret/regenerate", headers=DESTRUCTIVE)
    after = (await api.get("/v1/auth/webhook-secret")).json()["webhook_secret"]
    assert after == rotated.json()["webhook_secret"] != before


async def session_for(lite: CueApiLite) -> str:
    approved = await login_token(lite)
    async with lite.client() as client:
        response = await client.post("/v1/auth/session", json={"token": approved["session_token"]})
    return str(response.json()["session_token"])


async def test_a_remembered_session_still_ends_at_its_expiry(
    lite: CueApiLite, user: NewKey, clock: ManualClock, settings: Settings
) -> None:
    token = await session_for(lite)
    async with lite.client(token) as session:
        clock.advance(settings.session_ttl_s - 1)
        assert (await session.get("/v1/cues")).status_code == 200  # remembered for seconds
        clock.advance(1)
        expired = await session.get("/v1/cues")
    assert expired.status_code == 401
    assert code_of(expired) == "session_expired"


async def test_a_refreshed_session_is_refused_on_the_next_request(
    lite: CueApiLite, user: NewKey
) -> None:
    token = await session_for(lite)
    async with lite.client(token) as old:
        assert (await old.get("/v1/cues")).status_code == 200
        assert (await old.post("/v1/auth/session/refresh")).status_code == 200
        assert (await old.get("/v1/cues")).status_code == 401


@pytest.mark.sqlite_file
async def test_a_key_revoked_by_another_process_is_refused_within_seconds(
    lite: CueApiLite, api: httpx.AsyncClient, user: NewKey, clock: ManualClock, settings: Settings
) -> None:
    assert (await api.get("/v1/cues")).status_code == 200
    conn = sqlite3.connect(settings.db)
    with conn:
        conn.execute("UPDATE api_keys SET status = 'revoked' WHERE id = ?", (user.key_id,))
    conn.close()
    clock.advance(VERIFIED_FOR_MS / 1000)
    assert (await api.get("/v1/cues")).status_code == 401


async def test_unknown_keys_are_read_every_time(lite: CueApiLite, user: NewKey) -> None:
    """A guessed key is never remembered, so guesses cannot fill the memory."""
    for n in range(3):
        async with lite.client(f"cue_sk_{n:032d}") as guess:
            assert (await guess.get("/v1/cues")).status_code == 401
    assert not lite.accounts._verified
