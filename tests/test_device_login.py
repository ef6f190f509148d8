"""Device-code login (CONTRACT §9, E31-E33): codes, polls, and every approval surface."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from click.testing import CliRunner, Result

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.cli import main
from cueapi_lite.services.accounts import NewKey

CODE = "ABCD-EFGH"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class FakeMailer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def send(self, to: str, subject: str, body: str) -> None:
        self.sent.append((to, subject, body))


@pytest.fixture
def mailer() -> FakeMailer:
    return FakeMailer()


@contextlib.asynccontextmanager
async def running(
    settings: Settings, clock: ManualClock, base_url: str = "http://127.0.0.1:8000"
) -> AsyncIterator[httpx.AsyncClient]:
    """A server with its own settings, and a client without a key at `base_url`."""
    lite = CueApiLite(settings, clock=clock)
    await lite.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=lite.asgi), base_url=base_url
        ) as client:
            yield client
    finally:
        await lite.aclose()


@pytest.fixture
async def browser(lite: CueApiLite) -> AsyncIterator[httpx.AsyncClient]:
    """What a person's browser on this machine sends: Host 127.0.0.1:8000, no key."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=lite.asgi), base_url="http://127.0.0.1:8000"
    ) as client:
        yield client


async def start(client: httpx.AsyncClient, code: str = CODE) -> dict[str, Any]:
    response = await client.post("/v1/auth/device-code", json={"device_code": code})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def poll(client: httpx.AsyncClient, code: str = CODE) -> dict[str, Any]:
    response = await client.post("/v1/auth/device-code/poll", json={"device_code": code})
    assert response.status_code == 200, response.text
    return dict(response.json())


def csrf_of(page: str) -> str:
    match = re.search(r"name=csrf value='([0-9a-f]{64})'", page)
    assert match, page
    return match.group(1)


async def approve_form(
    browser: httpx.AsyncClient, code: str = CODE, **fields: str
) -> httpx.Response:
    page = await browser.get("/auth/device", params={"code": code})
    assert page.status_code == 200, page.text
    data = {"code": code, "csrf": csrf_of(page.text), "email": "", "credential": ""}
    data.update(fields)
    return await browser.post("/auth/device", data=data)


# --- E31 / E33 ---------------------------------------------------------------------------


async def test_start_answers_201_with_a_verification_url_carrying_the_code(
    browser: httpx.AsyncClient,
) -> None:
    data = await start(browser)
    assert data == {
        "device_code": CODE,
        "verification_url": f"http://127.0.0.1:8000/auth/device?code={CODE}",
        "expires_in": 900,
    }


async def test_the_public_url_setting_builds_the_verification_url(
    tmp_path: Path, clock: ManualClock
) -> None:
    settings = Settings(db=str(tmp_path / "p.db"), public_url="https://cues.example.com/")
    async with running(settings, clock) as client:
        data = await start(client)
    assert data["verification_url"] == f"https://cues.example.com/auth/device?code={CODE}"


@pytest.mark.parametrize(
    "code", ["", "short", "x" * 129, "has space1", "semi;colon", "<script>", 12345678, None]
)
async def test_start_refuses_malformed_codes(browser: httpx.AsyncClient, code: Any) -> None:
    response = await browser.post("/v1/auth/device-code", json={"device_code": code})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_device_code"


async def test_a_code_in_use_cannot_be_started_again(
    browser: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    await start(browser)
    again = await browser.post("/v1/auth/device-code", json={"device_code": CODE})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "device_code_exists"
    clock.advance(901)  # an expired code may be reused
    await start(browser)


async def test_poll_pending_then_approved_once_then_claimed(
    browser: httpx.AsyncClient, lite: CueApiLite, user: NewKey
) -> None:
    await start(browser)
    assert await poll(browser) == {"status": "pending"}
    await lite.devices.approve(CODE, "alice@example.com", "cli", create_user=False)
    approved = await poll(browser)
    assert approved["status"] == "approved"
    assert approved["email"] == "alice@example.com"
    assert approved["api_key"].startswith("cue_sk_")
    assert approved["api_key"] != user.api_key
    assert approved["session_token"].startswith("cue_lt_")
    assert await poll(browser) == {"status": "claimed"}
    # A new named key; the existing key keeps working.
    async with lite.client(approved["api_key"]) as client:
        keys = (await client.get("/v1/auth/keys")).json()["keys"]
        assert sorted(k["label"] for k in keys) == ["default", f"device {CODE}"]
    async with lite.client(user.api_key) as client:
        assert (await client.get("/v1/cues")).status_code == 200


async def test_poll_says_expired_for_unknown_malformed_and_old_codes(
    browser: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    assert await poll(browser, "NEVER-SEEN") == {"status": "expired"}
    assert await poll(browser, "x") == {"status": "expired"}
    await start(browser)
    clock.advance(899)
    assert await poll(browser) == {"status": "pending"}
    clock.advance(1)
    assert await poll(browser) == {"status": "expired"}
    with pytest.raises(Exception, match="expired"):
        await lite.devices.approve(CODE, "x@example.com", "cli", create_user=True)


async def test_many_polls_per_code_are_not_throttled(browser: httpx.AsyncClient) -> None:
    await start(browser)
    for _ in range(45):  # the CLI polls every 2 s: 30 a minute (H25)
        assert await poll(browser) == {"status": "pending"}


async def test_auto_approve_logs_in_the_default_user_at_the_first_poll(
    tmp_path: Path, clock: ManualClock
) -> None:
    settings = Settings(db=str(tmp_path / "a.db"), auto_approve=True)
    async with running(settings, clock) as client:
        await start(client)
        approved = await poll(client)
        assert approved["status"] == "approved"
        assert approved["email"] == "admin@local"
        assert await poll(client) == {"status": "claimed"}
        # The worker's login also submits an email: the code is already approved.
        await start(client, "wrk12345")
        response = await client.post(
            "/v1/auth/device-code/submit-email",
            json={"device_code": "wrk12345", "email": "me@example.com"},
        )
        assert response.status_code == 200
        assert response.json() == {"status": "approved"}


# --- the approval page -------------------------------------------------------------------


async def test_page_shows_the_code_and_forbids_framing(browser: httpx.AsyncClient) -> None:
    await start(browser)
    page = await browser.get("/auth/device", params={"code": CODE})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert CODE in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "cueapi-lite device approve" in page.text
    asked = await browser.get("/auth/device")
    assert asked.status_code == 200
    assert "name=code" in asked.text


async def test_page_approves_a_new_email_when_registration_is_open(
    browser: httpx.AsyncClient, lite: CueApiLite
) -> None:
    await start(browser)
    response = await approve_form(browser, email="new@example.com")
    assert response.status_code == 200, response.text
    assert "Approved for new@example.com" in response.text
    approved = await poll(browser)
    assert approved["email"] == "new@example.com"


async def test_page_needs_a_key_of_an_existing_account(
    browser: httpx.AsyncClient, lite: CueApiLite, user: NewKey
) -> None:
    await start(browser)
    anonymous = await approve_form(browser, email="alice@example.com")
    assert anonymous.status_code == 403
    assert "already has an account" in anonymous.text
    assert await poll(browser) == {"status": "pending"}

    wrong = await approve_form(browser, email="alice@example.com", credential="cue_sk_" + "0" * 32)
    assert wrong.status_code == 403
    assert await poll(browser) == {"status": "pending"}

    other = await lite.accounts.mint_key("bob@example.com")
    mismatch = await approve_form(browser, email="alice@example.com", credential=other.api_key)
    assert mismatch.status_code == 403
    assert "another account" in mismatch.text

    good = await approve_form(browser, email="alice@example.com", credential=user.api_key)
    assert good.status_code == 200, good.text
    assert (await poll(browser))["email"] == "alice@example.com"


async def test_page_with_only_a_key_approves_for_its_owner(
    browser: httpx.AsyncClient, user: NewKey
) -> None:
    await start(browser)
    response = await approve_form(browser, credential=user.api_key)
    assert response.status_code == 200
    assert (await poll(browser))["email"] == "alice@example.com"


async def test_admin_token_approves_any_email(tmp_path: Path, clock: ManualClock) -> None:
    settings = Settings(db=str(tmp_path / "t.db"), admin_token="s3cret-admin-token",
                        registration="off")  # fmt: skip
    async with running(settings, clock) as browser:
        await start(browser)
        refused = await approve_form(browser, email="ops@example.com")
        assert refused.status_code == 403
        assert "Registration is off" in refused.text
        bad = await approve_form(browser, email="ops@example.com", credential="s3cret-admin")
        assert bad.status_code == 403
        ok = await approve_form(browser, email="ops@example.com", credential="s3cret-admin-token")
        assert ok.status_code == 200, ok.text
        assert (await poll(browser))["email"] == "ops@example.com"


async def test_page_refuses_forged_and_cross_site_posts(
    browser: httpx.AsyncClient, lite: CueApiLite
) -> None:
    await start(browser)
    page = await browser.get("/auth/device", params={"code": CODE})
    good = {"code": CODE, "csrf": csrf_of(page.text), "email": "new@example.com"}
    attempts = [
        ({**good, "csrf": "0" * 64}, {}),
        ({**good, "csrf": "é" * 64}, {}),  # not ASCII: refused, not a 500
        ({k: v for k, v in good.items() if k != "csrf"}, {}),
        (good, {"Origin": "https://evil.example"}),
        (good, {"Origin": "null"}),
        (good, {"Sec-Fetch-Site": "cross-site"}),
        (good, {"Host": "evil.example"}),  # DNS rebinding arrives with the attacker's name
    ]
    for data, headers in attempts:
        response = await browser.post("/auth/device", data=data, headers=headers)
        assert response.status_code in (400, 403), (headers, response.text)
    json_post = await browser.post("/auth/device", json=good)
    assert json_post.status_code == 400
    assert await poll(browser) == {"status": "pending"}
    same_origin = await browser.post(
        "/auth/device", data=good, headers={"Origin": "http://127.0.0.1:8000"}
    )
    assert same_origin.status_code == 200, same_origin.text


async def test_page_for_unknown_expired_and_used_codes(
    browser: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    assert (await browser.get("/auth/device", params={"code": "NOPE-NOPE"})).status_code == 404
    assert (await browser.get("/auth/device", params={"code": "<b>"})).status_code == 400
    await start(browser)
    await approve_form(browser, email="new@example.com")
    used = await browser.get("/auth/device", params={"code": CODE})
    assert "already approved" in used.text
    await start(browser, "LATE-CODE")
    clock.advance(901)
    assert (await browser.get("/auth/device", params={"code": "LATE-CODE"})).status_code == 410


async def test_page_escapes_what_it_shows(browser: httpx.AsyncClient) -> None:
    await start(browser)
    response = await approve_form(browser, email="<script>alert(1)</script>@x")
    assert response.status_code == 422
    assert "<script>alert" not in response.text
    assert "&lt;script&gt;" in response.text


# --- the magic link (E32) ------------------------------------------------------------------


async def test_magic_link_approves_after_confirmation(
    browser: httpx.AsyncClient, lite: CueApiLite, mailer: FakeMailer
) -> None:
    await start(browser, "wrk12345")
    response = await browser.post(
        "/v1/auth/device-code/submit-email",
        json={"device_code": "wrk12345", "email": "me@example.com"},
    )
    assert response.status_code == 200
    assert response.json() == {"status": "email_sent"}
    [(to, subject, text)] = mailer.sent
    assert to == "me@example.com"
    assert "wrk12345" in subject
    link = re.search(r"http://\S+/v1/auth/verify\?\S+", text)
    assert link, text
    target = urlsplit(link.group(0))
    query = {k: v[0] for k, v in parse_qs(target.query).items()}

    # Following the link only shows a confirmation (a mail scanner's GET approves nothing).
    page = await browser.get(target.path, params=query)
    assert page.status_code == 200
    assert "me@example.com" in page.text
    assert await poll(browser, "wrk12345") == {"status": "pending"}
    forged = await browser.get(target.path, params={**query, "token": "forged-token-value"})
    assert forged.status_code == 403

    confirm = await browser.post(
        "/v1/auth/verify",
        data={"device_code": "wrk12345", "token": query["token"], "csrf": csrf_of(page.text)},
    )
    assert confirm.status_code == 200, confirm.text
    approved = await poll(browser, "wrk12345")
    assert approved["status"] == "approved"
    assert approved["email"] == "me@example.com"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"device_code": "unknown1", "email": "me@example.com"}, 404),
        ({"device_code": "wrk12345", "email": "nope"}, 422),
        ({"device_code": "bad code", "email": "me@example.com"}, 400),
    ],
)
async def test_submit_email_errors(
    browser: httpx.AsyncClient, body: dict[str, str], status: int
) -> None:
    await start(browser, "wrk12345")
    response = await browser.post("/v1/auth/device-code/submit-email", json=body)
    assert response.status_code == status


async def test_submit_email_for_an_approved_or_expired_code_is_400(
    browser: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    await start(browser, "wrk12345")
    await lite.devices.approve("wrk12345", "a@example.com", "cli", create_user=True)
    body = {"device_code": "wrk12345", "email": "me@example.com"}
    assert (await browser.post("/v1/auth/device-code/submit-email", json=body)).status_code == 400
    await start(browser, "wrk99999")
    clock.advance(901)
    body["device_code"] = "wrk99999"
    assert (await browser.post("/v1/auth/device-code/submit-email", json=body)).status_code == 400


async def test_magic_links_per_address_are_limited(
    browser: httpx.AsyncClient, mailer: FakeMailer
) -> None:
    await start(browser, "wrk12345")
    body = {"device_code": "wrk12345", "email": "victim@example.com"}
    for _ in range(5):
        assert (
            await browser.post("/v1/auth/device-code/submit-email", json=body)
        ).status_code == 200
    flooded = await browser.post("/v1/auth/device-code/submit-email", json=body)
    assert flooded.status_code == 429
    assert int(flooded.headers["Retry-After"]) > 0
    assert len(mailer.sent) == 5


# --- cueapi-lite device approve / list -----------------------------------------------------


async def cli(*args: str) -> Result:
    """The command in a thread: it runs its own event loop, beside the server's."""
    return await asyncio.to_thread(CliRunner().invoke, main, list(args))


async def test_cli_approves_on_the_database_of_a_running_server(
    browser: httpx.AsyncClient, lite: CueApiLite, settings: Settings
) -> None:
    await start(browser)
    listed = await cli("device", "list", "--db", settings.db)
    assert listed.exit_code == 0
    assert CODE in listed.output
    result = await cli("device", "approve", CODE, "--email", "ops@example.com", "--db", settings.db)
    assert result.exit_code == 0, result.output
    assert "Approved ABCD-EFGH for ops@example.com" in result.output
    approved = await poll(browser)
    assert approved["email"] == "ops@example.com"
    again = await cli("device", "approve", CODE, "--email", "ops@example.com", "--db", settings.db)
    assert again.exit_code == 1
    assert "already approved" in again.output
    unknown = await cli(
        "device", "approve", "ZZZZ-ZZZZ", "--email", "a@example.com", "--db", settings.db
    )
    assert unknown.exit_code == 1
    assert "Unknown login code" in unknown.output
    empty = await cli("device", "list", "--db", settings.db, "--json")
    assert empty.output.strip() == "[]"


async def test_cli_code_lookup_ignores_case(browser: httpx.AsyncClient, settings: Settings) -> None:
    await start(browser)
    result = await cli(
        "device", "approve", CODE.lower(), "--email", "o@example.com", "--db", settings.db
    )
    assert result.exit_code == 0, result.output
    assert (await poll(browser))["status"] == "approved"


async def test_page_behind_a_tls_proxy_accepts_its_published_origin(
    tmp_path: Path, clock: ManualClock
) -> None:
    settings = Settings(db=str(tmp_path / "proxy.db"), public_url="https://cues.example.com",
                        registration="on")  # fmt: skip
    async with running(settings, clock, "http://cues.example.com") as proxied:
        await start(proxied)
        page = await proxied.get("/auth/device", params={"code": CODE})
        assert page.status_code == 200
        data = {"code": CODE, "csrf": csrf_of(page.text), "email": "me@example.com"}
        origin = {"Origin": "https://cues.example.com"}
        response = await proxied.post("/auth/device", data=data, headers=origin)
        assert response.status_code == 200, response.text
        rebound = await proxied.get(
            "/auth/device", params={"code": CODE}, headers={"Host": "evil.example"}
        )
        assert rebound.status_code == 403
