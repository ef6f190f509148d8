"""Every spelling of a blocked host, in both callback policies: the create decision, the
stored (canonical) URL, and whether the real delivery path opens a TCP connection.

A listener on 127.0.0.1 counts accepted connections; the spellings carry its port, so any
spelling that reaches loopback (or 0.0.0.0, which Linux connects to loopback) is counted.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.callbacks import CallbackPolicy
from cueapi_lite.webhooks import DeliveryFailed, HttpDeliverer, WebhookRequest

LOOPBACK = [
    "127.0.0.1",
    "①②⑦.⓪.⓪.①",
    "１２７．０．０．１",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "127.1",
    "127.0.0.1.",
    "127.0.0.1。",
]
METADATA = [
    "①⑥⑨.②⑤④.①⑥⑨.②⑤④",
    "2852039166",
    "0251.0376.0251.0376",
    "0xa9fea9fe",
    "169.254.169.254。",
    "[::ffff:169.254.169.254]",
    "metadata.google.internal",
]
ZERO = ["⓪.⓪.⓪.⓪", "0.0.0.0", "0", "0x0"]
SPELLINGS = [(host, "loopback") for host in LOOPBACK] + [
    (host, "blocked") for host in METADATA + ZERO
]


class Listener:
    """A TCP server on 127.0.0.1 that counts connections and answers 200 `{}`."""

    def __init__(self) -> None:
        self.accepted = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> Listener:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    async with Listener() as running:
        yield running


async def _app(tmp_path: Path, policy: str) -> CueApiLite:
    settings = Settings(db=str(tmp_path / "ssrf.db"), callback_policy=policy)
    app = CueApiLite(settings, clock=ManualClock())  # the real deliverer
    await app.start()
    return app


def _url(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://{host}:{port}/hook"


def _cue(url: str) -> dict[str, Any]:
    return {
        "name": "ssrf",
        "schedule": {"type": "recurring", "cron": "0 9 * * *", "timezone": "UTC"},
        "callback": {"url": url},
    }


@pytest.mark.parametrize("policy", ["local", "public"])
@pytest.mark.parametrize(("host", "family"), SPELLINGS)
async def test_every_spelling_is_decided_on_its_canonical_address_and_connects_only_there(
    tmp_path: Path, listener: Listener, policy: str, host: str, family: str
) -> None:
    scheme = "https" if policy == "public" else "http"
    url = _url(scheme, host, listener.port)
    app = await _app(tmp_path, policy)
    try:
        key = await app.accounts.mint_key("eve@example.com")
        async with app.client(key.api_key) as api:
            created = await api.post("/v1/cues", json=_cue(url))
            allowed = family == "loopback" and policy == "local"
            if not allowed:
                assert created.status_code == 400, created.text
                assert created.json()["error"]["code"] == "invalid_callback_url"
                assert created.json()["error"]["details"][0]["field"] == "callback.url"
                assert listener.accepted == 0
                return
            assert created.status_code == 201, created.text
            cue = created.json()
            # The canonical URL is what is stored and what delivery connects to.
            assert cue["callback"]["url"] == f"http://127.0.0.1:{listener.port}/hook"
            fired = await api.post(f"/v1/cues/{cue['id']}/fire", json={})
            assert fired.status_code == 200
            await app.settle()
            execution = (await api.get(f"/v1/executions/{fired.json()['id']}")).json()
        assert execution["status"] == "success", execution
        assert listener.accepted == 1
    finally:
        await app.aclose()


@pytest.mark.parametrize("policy", ["local", "public"])
@pytest.mark.parametrize(("host", "family"), SPELLINGS)
async def test_the_deliverer_connects_only_to_the_address_the_policy_checked(
    listener: Listener, policy: str, host: str, family: str
) -> None:
    """A URL that reaches delivery unchecked (stored before this check existed) is
    canonicalised and checked again before any connection."""
    scheme = "https" if policy == "public" else "http"
    deliverer = HttpDeliverer(CallbackPolicy(policy))
    request = WebhookRequest(_url(scheme, host, listener.port), "POST", {}, b"{}", 5.0)
    try:
        if family == "loopback" and policy == "local":
            response = await deliverer.send(request)
            assert response.status == 200
            assert listener.accepted == 1
        else:
            with pytest.raises(DeliveryFailed):
                await deliverer.send(request)
            assert listener.accepted == 0
    finally:
        await deliverer.close()


async def test_a_stored_uncanonical_url_fires_without_connecting_under_public(
    tmp_path: Path, listener: Listener
) -> None:
    """A row written before canonicalisation existed still never reaches loopback."""
    app = await _app(tmp_path, "public")
    try:
        key = await app.accounts.mint_key("eve@example.com")
        async with app.client(key.api_key) as api:
            cue = (await api.post("/v1/cues", json=_cue("https://example.com/hook"))).json()
        await app.aclose()
        spelled = f"https://①②⑦.⓪.⓪.①:{listener.port}/hook"
        with sqlite3.connect(tmp_path / "ssrf.db") as db:
            db.execute(
                "UPDATE cues SET callback = ? WHERE id = ?",
                (json.dumps({"url": spelled, "method": "POST", "headers": {}}), cue["id"]),
            )
        app = await _app(tmp_path, "public")
        async with app.client(key.api_key) as api:
            fired = await api.post(f"/v1/cues/{cue['id']}/fire", json={})
            await app.settle()
            execution = (await api.get(f"/v1/executions/{fired.json()['id']}")).json()
        assert execution["status"] in {"retrying", "failed"}
        assert "blocked address" in execution["error_message"]
        assert listener.accepted == 0
    finally:
        await app.aclose()


@pytest.mark.parametrize("field", ["callback", "on_failure"])
@pytest.mark.parametrize("value", [["http://127.0.0.1/"], {"url": "x"}, 7, True])
async def test_a_url_of_the_wrong_type_is_a_400_naming_the_field(
    api: Any, field: str, value: Any
) -> None:
    body = _cue("http://127.0.0.1:9999/hook")
    if field == "callback":
        body["callback"] = {"url": value}
        name = "callback.url"
    else:
        body["on_failure"] = {"webhook": value}
        name = "on_failure.webhook"
    response = await api.post("/v1/cues", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == name


@pytest.mark.parametrize("host", ["①②⑦.⓪.⓪.①", "2852039166", "169.254.169.254。"])
async def test_patch_me_checks_the_alert_webhook_url_like_a_callback(
    tmp_path: Path, host: str
) -> None:
    app = await _app(tmp_path, "public")
    try:
        key = await app.accounts.mint_key("eve@example.com")
        async with app.client(key.api_key) as api:
            response = await api.patch(
                "/v1/auth/me", json={"alert_webhook_url": f"https://{host}/"}
            )
            assert response.status_code == 422
            assert response.json()["error"]["details"][0]["field"] == "alert_webhook_url"
            stored = await api.patch(
                "/v1/auth/me", json={"alert_webhook_url": "https://ＯＰＳ.example.com/a"}
            )
            assert stored.json()["alert_webhook_url"] == "https://ops.example.com/a"
    finally:
        await app.aclose()


async def test_the_on_failure_webhook_is_stored_in_canonical_form(api: Any) -> None:
    body = _cue("http://127.0.0.1:9999/hook")
    body["on_failure"] = {"webhook": "http://ｅｘａｍｐｌｅ.com./alerts"}
    response = await api.post("/v1/cues", json=body)
    assert response.status_code == 201
    assert response.json()["on_failure"]["webhook"] == "http://example.com/alerts"
