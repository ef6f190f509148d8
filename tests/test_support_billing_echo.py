"""Support tickets (E41-E43), billing on a self-hosted server (E38, E39) and the
quickstart echo (E46)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.services.accounts import NewKey
from cueapi_lite.webhooks import WebhookRequest, WebhookResponse

from .conftest import FakeDeliverer, webhook_cue

TICKET = {
    "subject": "Timezone not applied to cron",
    "message": "Cron with America/Los_Angeles fires at UTC time. Cue ID: cue_x7k9m2p4q8w1.",
    "severity": "high",
    "type": "bug",
}


def code_of(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


# --- support --------------------------------------------------------------------------------


async def test_a_ticket_is_filed_listed_and_read(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/support", json=TICKET)
    assert response.status_code == 201, response.text
    data = response.json()
    assert data["status"] == "received"
    assert data["ticket_status"] == "open"
    assert type(data["ticket_id"]) is int
    ticket = (await api.get(f"/v1/support/{data['ticket_id']}")).json()
    assert ticket["subject"] == TICKET["subject"]
    assert ticket["status"] == "open"
    assert ticket["created_at"].endswith("+00:00")
    listed = (await api.get("/v1/support")).json()
    assert listed["total"] == 1
    assert listed["limit"] == 20
    assert listed["offset"] == 0
    assert [t["ticket_id"] for t in listed["tickets"]] == [data["ticket_id"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"subject": "too short"}, "subject"),
        ({"subject": None}, "subject"),
        ({"message": "under thirty characters"}, "message"),
        ({"message": "x" * 10_001}, "message"),
        ({"severity": "urgent"}, "severity"),
        ({"type": "question"}, "type"),
    ],
)
async def test_ticket_fields_are_validated(
    api: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    response = await api.post("/v1/support", json={**TICKET, **change})
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == [field]
    assert (await api.get("/v1/support")).json()["total"] == 0


async def test_five_tickets_per_hour(api: httpx.AsyncClient, clock: ManualClock) -> None:
    for _ in range(5):
        assert (await api.post("/v1/support", json=TICKET)).status_code == 201
        clock.advance(60)
    refused = await api.post("/v1/support", json=TICKET)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) == 3600 - 5 * 60
    clock.advance(3600 - 5 * 60)
    assert (await api.post("/v1/support", json=TICKET)).status_code == 201


@pytest.mark.parametrize("ticket_id", ["999", "abc", "-1", "1" * 40])
async def test_unknown_tickets_are_404(api: httpx.AsyncClient, ticket_id: str) -> None:
    response = await api.get(f"/v1/support/{ticket_id}")
    assert response.status_code == 404
    assert code_of(response) == "ticket_not_found"


async def test_eligibility_rule_only_when_enabled(tmp_path: Any, clock: ManualClock) -> None:
    lite = CueApiLite(Settings(db=str(tmp_path / "s.db"), support_eligibility=True), clock=clock)
    await lite.start()
    try:
        key = await lite.accounts.mint_key("new@example.com")
        async with lite.client(key.api_key) as api:
            refused = await api.post("/v1/support", json=TICKET)
            assert refused.status_code == 403
            assert code_of(refused) == "support_not_eligible"
            await api.post("/v1/cues", json=webhook_cue())
            clock.advance(3600)
            assert (await api.post("/v1/support", json=TICKET)).status_code == 201
    finally:
        await lite.aclose()


# --- billing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/billing/checkout", {"plan": "pro", "interval": "monthly"}),
        ("/v1/billing/portal", None),
    ],
)
async def test_billing_is_not_available(api: httpx.AsyncClient, path: str, body: Any) -> None:
    response = await api.post(path, json=body) if body else await api.post(path)
    assert response.status_code == 404
    assert code_of(response) == "billing_not_available"
    assert response.json()["detail"]["error"]["message"] == (
        "Billing is not available on a self-hosted server."
    )


# --- echo -----------------------------------------------------------------------------------


async def test_echo_waits_then_shows_the_delivered_webhook(
    lite: CueApiLite, api: httpx.AsyncClient, deliverer: FakeDeliverer, clock: ManualClock
) -> None:
    token = "qs-0123456789abcdef"
    assert (await api.get(f"/v1/echo/{token}")).json() == {"status": "waiting"}

    # Deliver for real, into this very app, like the quickstart's loopback callback.
    async def into_the_app(request: WebhookRequest) -> WebhookResponse:
        async with lite.client() as client:
            response = await client.request(
                request.method, request.url, content=request.body, headers=request.headers
            )
        return WebhookResponse(response.status_code, response.content)

    deliverer.send = into_the_app  # type: ignore[method-assign]
    cue = (
        await api.post(
            "/v1/cues",
            json=webhook_cue(
                name="quickstart-test",
                schedule={"type": "once", "at": "2030-01-01T00:00:00Z"},
                callback={"url": f"http://cueapi-lite.test/v1/echo/{token}", "method": "POST"},
                payload={"message": "Your first cue!"},
            ),
        )
    ).json()
    await api.post(f"/v1/cues/{cue['id']}/fire")
    await lite.settle()
    data = (await api.get(f"/v1/echo/{token}")).json()
    assert data["status"] == "delivered"
    assert data["payload"]["cue_id"] == cue["id"]
    assert data["payload"]["payload"] == {"message": "Your first cue!"}
    assert data["headers"]["x-cueapi-cue-id"] == cue["id"]
    assert "authorization" not in data["headers"]

    # Only the cue's owner sees it.
    bob = await lite.accounts.mint_key("bob@example.com")
    async with lite.client(bob.api_key) as other:
        assert (await other.get(f"/v1/echo/{token}")).json() == {"status": "waiting"}

    clock.advance(301)
    assert (await api.get(f"/v1/echo/{token}")).json() == {"status": "waiting"}


async def test_echo_post_needs_no_key_and_a_long_token(lite: CueApiLite, user: NewKey) -> None:
    async with lite.client() as anonymous:
        stored = await anonymous.post("/v1/echo/qs-aaaaaaaaaaaaaaaa", json={"hello": "world"})
        assert stored.status_code == 200
        assert stored.json() == {"stored": True}
        short = await anonymous.post("/v1/echo/short", json={})
        assert short.status_code == 400
        assert code_of(short) == "invalid_token"
        big = await anonymous.post(
            "/v1/echo/qs-aaaaaaaaaaaaaaaa", content=b'{"x": "' + b"a" * (1024 * 1024) + b'"}'
        )
        assert big.status_code == 413
        assert (await anonymous.get("/v1/echo/qs-aaaaaaaaaaaaaaaa")).status_code == 401
    async with lite.client(user.api_key) as api:
        data = (await api.get("/v1/echo/qs-aaaaaaaaaaaaaaaa")).json()
        assert data["payload"] == {"hello": "world"}
