"""The dashboard over the in-process client: login, every page, every action, and the
refusals (no session, no form token, another site, another host, another user's ids)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.services.accounts import NewKey
from cueapi_lite.web.views import safe_link

from .conftest import FakeDeliverer, status, webhook_cue
from .helpers import iso_at, ms

BASE = "http://127.0.0.1:8000"


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    assert match, page
    return match.group(1)


async def log_in(client: httpx.AsyncClient, credential: str) -> httpx.Response:
    form = await client.get("/login")
    return await client.post(
        "/login", data={"csrf": csrf_of(form.text), "api_key": credential, "next": "/cues"}
    )


@pytest.fixture
async def web(lite: CueApiLite, user: NewKey) -> AsyncIterator[httpx.AsyncClient]:
    """A browser on this machine, logged in as alice."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=lite.asgi), base_url=BASE
    ) as client:
        response = await log_in(client, user.api_key)
        assert response.status_code == 303, response.text
        yield client


async def post_form(web: httpx.AsyncClient, path: str, page: str, **fields: Any) -> httpx.Response:
    """Post a form of the page at `page` (with that page's form token)."""
    token = csrf_of((await web.get(page)).text)
    return await web.post(path, data={"csrf": token, **fields})


async def new_cue(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await api.post("/v1/cues", json=webhook_cue(**fields))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def fire(lite: CueApiLite, api: httpx.AsyncClient, cue_id: str) -> str:
    response = await api.post(f"/v1/cues/{cue_id}/fire", json={})
    assert response.status_code == 200, response.text
    await lite.settle()
    return str(response.json()["id"])


# --- logging in and out -------------------------------------------------------------------


async def test_logged_out_pages_redirect_to_the_login_page(lite: CueApiLite) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=lite.asgi), base_url=BASE
    ) as client:
        home = await client.get("/")
        cues = await client.get("/cues?status=failing")
        action = await client.post("/cues/cue_x/pause", data={"csrf": "x"})
    assert (home.status_code, home.headers["location"]) == (303, "/login")
    assert cues.headers["location"] == "/login?next=%2Fcues%3Fstatus%3Dfailing"
    assert (action.status_code, action.headers["location"]) == (
        303,
        "/login?next=%2Fcues%2Fcue_x%2Fpause",
    )


async def test_login_sets_a_strict_httponly_session_cookie(lite: CueApiLite, user: NewKey) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=lite.asgi), base_url=BASE
    ) as client:
        response = await log_in(client, user.api_key)
        cookie = response.headers["set-cookie"]
        assert response.headers["location"] == "/cues"
        assert re.match(r"cueapi_session=cue_ses_[0-9a-f]+;", cookie)
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Secure" not in cookie  # plain http on loopback
        assert "Max-Age=604800" in cookie
        assert (await client.get("/cues")).status_code == 200
    # The cookie is a session token like the API's: it works as a Bearer token too.
    token = cookie.split(";")[0].split("=", 1)[1]
    async with lite.client(token) as api:
        assert (await api.get("/v1/auth/me")).json()["email"] == "alice@example.com"


async def test_cookie_is_secure_when_the_public_url_is_https(
    tmp_path: Path, clock: ManualClock
) -> None:
    settings = Settings(db=str(tmp_path / "x.db"), public_url="https://cues.example.com")
    lite = CueApiLite(settings, clock=clock, deliverer=FakeDeliverer())
    await lite.start()
    try:
        key = await lite.accounts.mint_key("alice@example.com")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=lite.asgi), base_url="https://cues.example.com"
        ) as client:
            response = await log_in(client, key.api_key)
        assert "Secure" in response.headers["set-cookie"]
    finally:
        await lite.aclose()


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "cues"])
async def test_login_never_redirects_off_the_site(
    lite: CueApiLite, user: NewKey, target: str
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=lite.asgi), base_url=BASE
    ) as client:
        form = await client.get("/login", params={"next": target})
        assert 'name="next" value="/"' in form.text
        response = await client.post(
            "/login", data={"csrf": csrf_of(form.text), "api_key": user.api_key, "next": target}
        )
    assert response.headers["location"] == "/"


async def test_a_wrong_key_does_not_log_in(lite: CueApiLite) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=lite.asgi), base_url=BASE
    ) as client:
        response = await log_in(client, "cue_sk_" + "0" * 32)
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert "not valid" in response.text


async def test_a_session_token_logs_in_too(lite: CueApiLite, user: NewKey) -> None:
    session = await lite.accounts.open_session(user.user)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=lite.asgi), base_url=BASE
    ) as client:
        assert (await log_in(client, session.token)).status_code == 303
        assert (await client.get("/")).status_code == 200


async def test_the_login_form_refuses_a_missing_token(lite: CueApiLite, user: NewKey) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=lite.asgi), base_url=BASE
    ) as client:
        response = await client.post("/login", data={"api_key": user.api_key})
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


async def test_logging_out_ends_the_session(web: httpx.AsyncClient) -> None:
    cookie = web.cookies["cueapi_session"]
    response = await post_form(web, "/logout", "/")
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    assert 'cueapi_session=""' in response.headers["set-cookie"]
    web.cookies.set("cueapi_session", cookie)  # a copy kept by someone is dead too
    assert (await web.get("/cues")).status_code == 303


async def test_an_expired_session_goes_back_to_the_login_page(
    web: httpx.AsyncClient, clock: ManualClock
) -> None:
    clock.advance(3601)  # a dashboard login outlives an API session token (1 h)...
    assert (await web.get("/")).status_code == 200
    clock.advance(7 * 86400)  # ...and ends after DASHBOARD_SESSION_S
    assert (await web.get("/")).headers["location"] == "/login"


# --- pages ----------------------------------------------------------------------------


async def test_overview_counts_cues_executions_alerts_and_failures(
    lite: CueApiLite, api: httpx.AsyncClient, web: httpx.AsyncClient, deliverer: FakeDeliverer
) -> None:
    good = await new_cue(api, name="good")
    bad = await new_cue(
        api, name="bad", retry={"max_attempts": 1}, alerts={"consecutive_failures": 1}
    )
    paused = await new_cue(api, name="resting")
    await api.patch(f"/v1/cues/{paused['id']}", json={"status": "paused"})
    await fire(lite, api, good["id"])
    deliverer.answer(status(500))
    await fire(lite, api, bad["id"])

    page = (await web.get("/")).text
    assert re.search(r"<strong>3</strong> cues", page)
    assert re.search(r"<strong>2</strong> active", page)
    assert re.search(r"<strong>1</strong> paused", page)
    assert re.search(r"<strong>1</strong> failing", page)
    assert re.search(r"<strong>1</strong> open alerts", page)
    assert 'Executions, last 24 hours <span class="muted">(2)</span>' in page
    assert "1 success, 1 failure" in page  # the chart's description of the hour
    assert 'href="/cues/' + bad["id"] + '">bad</a>' in page  # a recent failure


async def test_cue_list_shows_health_schedule_in_words_and_the_strip(
    lite: CueApiLite,
    api: httpx.AsyncClient,
    web: httpx.AsyncClient,
    deliverer: FakeDeliverer,
    clock: ManualClock,
) -> None:
    cue = await new_cue(
        api,
        name="morning-brief",
        schedule={"type": "recurring", "cron": "0 9 * * *", "timezone": "America/Los_Angeles"},
        retry={"max_attempts": 1},
    )
    await fire(lite, api, cue["id"])
    clock.advance(60)
    deliverer.answer(status(503))
    await fire(lite, api, cue["id"])
    page = (await web.get("/cues")).text
    assert "every day at 09:00, America/Los_Angeles" in page
    assert 'badge-failing">Failing' in page
    strip = re.search(r'<ol class="strip".*?</ol>', page, re.S)
    assert strip is not None
    assert re.findall(r"cell fill-(\w+)", strip.group(0)) == ["success", "failure"]


async def test_cue_list_filters_searches_and_pages(
    lite: CueApiLite, api: httpx.AsyncClient, web: httpx.AsyncClient
) -> None:
    for n in range(55):
        await new_cue(api, name=f"report-{n:02d}")
    await new_cue(api, name="worker-sync", transport="worker", callback=None)
    paused = await new_cue(api, name="paused-one")
    await api.patch(f"/v1/cues/{paused['id']}", json={"status": "paused"})

    first = (await web.get("/cues")).text
    assert first.count("<tr>") - 1 == 50
    assert "Page 1 of 2" in first
    second = (await web.get("/cues?page=2")).text
    assert second.count("<tr>") - 1 == 7
    search = (await web.get("/cues?q=REPORT-5")).text
    assert re.findall(r">(report-\d\d)</a>", search) == [f"report-{n}" for n in range(54, 49, -1)]
    assert ">worker-sync</a>" in (await web.get("/cues?transport=worker")).text
    only_paused = (await web.get("/cues?status=paused")).text
    assert re.findall(r'/cues/cue_\w+">([\w-]+)</a>', only_paused) == ["paused-one"]


async def test_cue_page_shows_next_fires_with_dst_notes(
    lite: CueApiLite, api: httpx.AsyncClient, web: httpx.AsyncClient, clock: ManualClock
) -> None:
    clock.advance((ms("2026-03-07T12:00:00+00:00") - clock.now_ms()) / 1000)
    cue = await new_cue(
        api,
        name="early",
        schedule={"type": "recurring", "cron": "30 2 * * *", "timezone": "America/New_York"},
    )
    page = (await web.get(f"/cues/{cue['id']}")).text
    fires = re.search(r'<ol class="fires">(.*?)</ol>', page, re.S)
    assert fires is not None
    items = re.findall(r"<li>(.*?)</li>", fires.group(1), re.S)
    assert len(items) == 10
    assert "Sat 2026-03-07 02:30 EST" in items[0] or "Sun 2026-03-08" in items[0]
    assert "02:30 does not exist (DST gap); fires at 03:00" in fires.group(1)
    assert "every day at 02:30, America/New_York" in page


async def test_execution_page_shows_timeline_evidence_and_a_safe_result_link(
    lite: CueApiLite, api: httpx.AsyncClient, web: httpx.AsyncClient
) -> None:
    cue = await new_cue(api, name="agent")
    execution_id = await fire(lite, api, cue["id"])
    reported = await api.post(
        f"/v1/executions/{execution_id}/outcome",
        json={"success": True, "result": "<b>done</b>", "external_id": "email:7",
              "result_url": "https://mail.example.com/sent?id=7&x=<y>"},
    )  # fmt: skip
    assert reported.status_code == 200, reported.text
    page = (await web.get(f"/executions/{execution_id}")).text
    for step in ("Scheduled", "Fired", "First attempt", "Latest attempt", "Delivered",
                 "Outcome reported"):  # fmt: skip
        assert f"<strong>{step}</strong>" in page
    assert "email:7" in page
    assert "&lt;b&gt;done&lt;/b&gt;" in page  # escaped, never markup
    assert 'href="https://mail.example.com/sent?id=7&amp;x=&lt;y&gt;"' in page


async def test_a_worker_execution_shows_its_claim_and_outcome(
    lite: CueApiLite, api: httpx.AsyncClient, web: httpx.AsyncClient
) -> None:
    created = await api.post(
        "/v1/cues",
        json={"name": "sync", "transport": "worker", "payload": {"task": "sync"},
              "schedule": {"type": "recurring", "cron": "0 0 1 1 *"}},
    )  # fmt: skip
    execution_id = await fire(lite, api, created.json()["id"])
    claimed = await api.post(f"/v1/executions/{execution_id}/claim", json={"worker_id": "mac-mini"})
    assert claimed.status_code == 200, claimed.text
    page = (await web.get(f"/executions/{execution_id}")).text
    assert "<strong>Claimed</strong>" in page
    assert "by worker mac-mini" in page
    assert "<strong>Outcome reported</strong>" not in page
    await api.post(
        f"/v1/executions/{execution_id}/outcome",
        json={"success": False, "error": "disk full"},
        headers={"X-Worker-Id": "mac-mini"},
    )
    page = (await web.get(f"/executions/{execution_id}")).text
    assert "<strong>Outcome reported</strong>" in page
    assert "disk full" in page
    assert "fill-failure" in page


def test_only_http_links_are_made_clickable() -> None:
    assert safe_link("https://example.com/r") == "https://example.com/r"
    assert safe_link("javascript:alert(1)") is None
    assert safe_link("JAVASCRIPT:alert(1)") is None
    assert safe_link("data:text/html,x") is None


async def test_alert_and_worker_pages(
    lite: CueApiLite, api: httpx.AsyncClient, web: httpx.AsyncClient, deliverer: FakeDeliverer
) -> None:
    cue = await new_cue(api, name="flaky", retry={"max_attempts": 1},
                        alerts={"consecutive_failures": 1})  # fmt: skip
    deliverer.answer(status(500))
    await fire(lite, api, cue["id"])
    await api.post("/v1/worker/heartbeat", json={"worker_id": "mac-mini", "handlers": ["sync"]})
    alerts = (await web.get("/alerts")).text
    assert "consecutive_failure" in alerts
    assert ">flaky</a>" in alerts
    assert "No alerts match" in (await web.get("/alerts?type=missed_window")).text
    workers = (await web.get("/workers")).text
    assert "<code>mac-mini</code>" in workers
    assert ">active<" in workers
    assert "<code>sync</code>" in workers


async def test_every_page_forbids_framing_and_foreign_scripts(web: httpx.AsyncClient) -> None:
    for path in ("/", "/cues", "/alerts", "/workers"):
        response = await web.get(path)
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"


async def test_static_assets_are_served_from_the_package(web: httpx.AsyncClient) -> None:
    page = (await web.get("/")).text
    css = re.search(r'href="(/static/dashboard\.css\?v=[0-9a-f]{12})"', page)
    assert css is not None
    response = await web.get(css.group(1))
    assert response.headers["content-type"].startswith("text/css")
    assert "prefers-color-scheme: dark" in response.text
    assert "immutable" in response.headers["cache-control"]
    assert (await web.get("/static/missing.js")).status_code == 404


# --- actions ----------------------------------------------------------------------------


async def test_fire_with_a_payload_override_pause_resume_and_delete(
    lite: CueApiLite, api: httpx.AsyncClient, web: httpx.AsyncClient, deliverer: FakeDeliverer
) -> None:
    cue = await new_cue(api, name="brief")
    page = f"/cues/{cue['id']}"
    fired = await post_form(web, f"{page}/fire", page, payload_override='{"note": "hi"}')
    assert fired.headers["location"] == f"{page}?done=fired"
    await lite.settle()
    sent = json.loads(deliverer.requests[-1].body or b"{}")
    assert sent["payload"] == {"task": "report", "note": "hi"}
    assert "Fired: the new execution" in (await web.get(fired.headers["location"])).text

    await post_form(web, f"{page}/pause", page)
    assert (await api.get(f"/v1/cues/{cue['id']}")).json()["status"] == "paused"
    await post_form(web, f"{page}/resume", page)
    assert (await api.get(f"/v1/cues/{cue['id']}")).json()["status"] == "active"

    unconfirmed = await post_form(web, f"{page}/delete", f"{page}/delete")
    assert unconfirmed.status_code == 422
    deleted = await post_form(web, f"{page}/delete", f"{page}/delete", confirm="yes")
    assert deleted.headers["location"] == "/cues?done=deleted"
    assert (await api.get(f"/v1/cues/{cue['id']}")).status_code == 404


async def test_a_bad_payload_override_fires_nothing(
    lite: CueApiLite, api: httpx.AsyncClient, web: httpx.AsyncClient
) -> None:
    cue = await new_cue(api, name="brief")
    page = f"/cues/{cue['id']}"
    response = await post_form(web, f"{page}/fire", page, payload_override="[1, 2]")
    assert response.status_code == 422
    assert "must be a JSON object" in response.text
    assert (await api.get("/v1/executions")).json()["total"] == 0


def edit_fields(**changes: str) -> dict[str, str]:
    fields = {
        "cron": "0 9 * * *", "timezone": "UTC", "callback_url": "http://127.0.0.1:9999/hook",
        "callback_method": "POST", "payload": '{"task": "report"}', "max_attempts": "3",
        "backoff_minutes": "1, 5, 15", "consecutive_failures": "3",
        "missed_window_multiplier": "2", "on_failure_email": "on", "on_failure_webhook": "",
        "verification_mode": "none",
    }  # fmt: skip
    fields.update(changes)
    return fields


async def test_edit_changes_schedule_payload_retry_alerts_and_verification(
    api: httpx.AsyncClient, web: httpx.AsyncClient
) -> None:
    cue = await new_cue(api, name="brief")
    page = f"/cues/{cue['id']}"
    response = await post_form(
        web, f"{page}/edit", page,
        **edit_fields(cron="30 7 * * 1-5", timezone="Europe/Paris", payload='{"n": 2}',
                      max_attempts="5", backoff_minutes="2,4", consecutive_failures="4",
                      verification_mode="manual", on_failure_email=""),
    )  # fmt: skip
    assert response.headers["location"] == f"{page}?done=saved"
    stored = (await api.get(f"/v1/cues/{cue['id']}")).json()
    assert stored["schedule"] == {"type": "recurring", "cron": "30 7 * * 1-5", "at": None,
                                  "timezone": "Europe/Paris"}  # fmt: skip
    assert stored["payload"] == {"n": 2}
    assert stored["retry"] == {"max_attempts": 5, "backoff_minutes": [2, 4]}
    assert stored["alerts"]["consecutive_failures"] == 4
    assert stored["verification"] == {"mode": "manual"}
    assert stored["on_failure"]["email"] is False
    assert "every weekday at 07:30, Europe/Paris" in (await web.get(page)).text


async def test_editing_a_one_time_cue_keeps_its_instant_unless_changed(
    api: httpx.AsyncClient, web: httpx.AsyncClient, clock: ManualClock
) -> None:
    at_ms = clock.now_ms() + 3_600_000
    cue = await new_cue(api, name="once", schedule={"type": "once", "at": iso_at(at_ms)})
    page = f"/cues/{cue['id']}"
    html = (await web.get(page)).text
    shown = re.search(r'name="at" value="([^"]+)"', html)
    assert shown is not None
    fields = edit_fields(at=shown.group(1), payload='{"n": 1}')
    del fields["cron"]
    clock.advance(7200)  # the instant has passed meanwhile: unchanged, it is kept
    edited = await post_form(web, f"{page}/edit", page, **fields)
    assert edited.status_code == 303, re.findall(r"role=\"alert\">(.*?)<", edited.text)
    stored = (await api.get(f"/v1/cues/{cue['id']}")).json()["schedule"]
    assert stored == {"type": "once", "cron": None, "at": iso_at(at_ms),
                      "timezone": "UTC"}  # fmt: skip
    assert (await api.get(f"/v1/cues/{cue['id']}")).json()["payload"] == {"n": 1}
    fields["at"] = "2020-01-01T00:00:00Z"
    refused = await post_form(web, f"{page}/edit", page, **fields)
    assert refused.status_code == 400
    assert "in the past" in refused.text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cron": "not a cron"}, "Invalid cron expression"),
        ({"timezone": "Mars/Olympus"}, "Unknown timezone"),
        ({"max_attempts": "many"}, "retry.max_attempts: must be a whole number"),
        ({"payload": "{"}, "payload: must be a JSON object"),
        ({"callback_url": "http://169.254.169.254/"}, "169.254.169.254"),
    ],
)
async def test_a_bad_edit_changes_nothing_and_says_why(
    api: httpx.AsyncClient, web: httpx.AsyncClient, changes: dict[str, str], message: str
) -> None:
    cue = await new_cue(api, name="brief")
    page = f"/cues/{cue['id']}"
    response = await post_form(web, f"{page}/edit", page, **edit_fields(**changes))
    assert response.status_code in (400, 422)
    assert message in response.text
    assert f'href="{page}"' in response.text  # the way back
    assert (await api.get(f"/v1/cues/{cue['id']}")).json() == {
        **cue,
        "executions": [],
        "execution_total": 0,
        "execution_limit": 10,
        "execution_offset": 0,
        "warning": None,
    }


async def test_verify_reject_and_replay(
    lite: CueApiLite, api: httpx.AsyncClient, web: httpx.AsyncClient
) -> None:
    cue = await new_cue(api, name="agent", verification={"mode": "manual"})
    first = await fire(lite, api, cue["id"])
    second = await fire(lite, api, cue["id"])
    for execution_id in (first, second):
        await api.post(f"/v1/executions/{execution_id}/outcome", json={"success": True})
    page = f"/executions/{first}"
    assert ">Verify</button>" in (await web.get(page)).text
    await post_form(web, f"{page}/verify", page, valid="true")
    assert (await api.get(page.replace("/executions", "/v1/executions"))).json()[
        "outcome_state"
    ] == "verified_success"
    assert ">Verify</button>" not in (await web.get(page)).text

    other = f"/executions/{second}"
    await post_form(web, f"{other}/verify", other, valid="false", reason="no email in outbox")
    rejected = (await api.get(f"/v1/executions/{second}")).json()
    assert (rejected["outcome_state"], rejected["verification_reason"]) == (
        "verification_failed", "no email in outbox",
    )  # fmt: skip

    replayed = await post_form(web, f"{page}/replay", page)
    new_id = replayed.headers["location"].split("/")[2].split("?")[0]
    assert (await api.get(f"/v1/executions/{new_id}")).json()["replayed_from"] == first


async def test_acknowledge_one_alert_or_all_shown(
    lite: CueApiLite,
    api: httpx.AsyncClient,
    web: httpx.AsyncClient,
    deliverer: FakeDeliverer,
    clock: ManualClock,
) -> None:
    deliverer.answer(status(500))
    for name in ("a", "b", "c"):
        cue = await new_cue(api, name=name, retry={"max_attempts": 1},
                            alerts={"consecutive_failures": 1})  # fmt: skip
        await fire(lite, api, cue["id"])
    alerts = (await api.get("/v1/alerts")).json()["alerts"]
    assert len(alerts) == 3
    one = await post_form(web, "/alerts/acknowledge", "/alerts", alert_id=alerts[0]["id"],
                          acknowledged="no")  # fmt: skip
    assert one.headers["location"] == "/alerts?acknowledged=no&done=acknowledged"
    assert (await api.get("/v1/alerts?acknowledged=false")).json()["total"] == 2
    page = (await web.get("/alerts")).text
    assert page.count('name="alert_id"') == 2 * 2  # each row's own form and the "all" form
    shown = re.findall(r'name="alert_id" value="([^"]+)"', page)
    await web.post("/alerts/acknowledge", data={"csrf": csrf_of(page), "alert_id": shown})
    assert (await api.get("/v1/alerts?acknowledged=false")).json()["total"] == 0


# --- refusals -----------------------------------------------------------------------------


async def test_another_users_cue_and_execution_are_404_pages(
    lite: CueApiLite, api: httpx.AsyncClient, web: httpx.AsyncClient
) -> None:
    bob = await lite.accounts.mint_key("bob@example.com")
    async with lite.client(bob.api_key) as bobs:
        theirs = await new_cue(bobs, name="bobs")
        execution_id = await fire(lite, bobs, theirs["id"])
    token = csrf_of((await web.get("/")).text)
    for path in (f"/cues/{theirs['id']}", f"/cues/{theirs['id']}/delete",
                 f"/executions/{execution_id}"):  # fmt: skip
        response = await web.get(path)
        assert response.status_code == 404, path
        assert "<h1>Not found</h1>" in response.text
    for path in (f"/cues/{theirs['id']}/pause", f"/cues/{theirs['id']}/fire",
                 f"/executions/{execution_id}/replay"):  # fmt: skip
        assert (await web.post(path, data={"csrf": token})).status_code == 404, path
    async with lite.client(bob.api_key) as bobs:
        assert (await bobs.get(f"/v1/cues/{theirs['id']}")).json()["status"] == "active"
        assert (await bobs.get("/v1/executions")).json()["total"] == 1


async def test_a_form_without_its_token_is_refused(
    api: httpx.AsyncClient, web: httpx.AsyncClient
) -> None:
    cue = await new_cue(api, name="brief")
    for data in ({"note": "x"}, {"csrf": "0" * 64}, {"csrf": "é"}):
        response = await web.post(f"/cues/{cue['id']}/pause", data=data)
        assert response.status_code == 403
        assert "This form has expired" in response.text
    assert (await web.post(f"/cues/{cue['id']}/pause")).status_code == 400  # not a form
    assert (await api.get(f"/v1/cues/{cue['id']}")).json()["status"] == "active"


async def test_another_sites_form_post_is_refused(
    lite: CueApiLite, api: httpx.AsyncClient, web: httpx.AsyncClient
) -> None:
    cue = await new_cue(api, name="brief")
    token = csrf_of((await web.get(f"/cues/{cue['id']}")).text)
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        response = await web.post(f"/cues/{cue['id']}/pause", data={"csrf": token},
                                  headers=headers)  # fmt: skip
        assert response.status_code == 403
        assert "Cross-site form posts are refused" in response.text
    assert (await api.get(f"/v1/cues/{cue['id']}")).json()["status"] == "active"


async def test_an_unknown_host_name_is_refused(web: httpx.AsyncClient) -> None:
    """A DNS-rebinding page reaches the server under the attacker's name."""
    response = await web.get("/cues", headers={"Host": "rebind.evil.example:8000"})
    assert response.status_code == 403
    assert "Open this page at" in response.text


async def test_pages_count_against_the_rate_limit(tmp_path: Path, clock: ManualClock) -> None:
    settings = Settings(db=str(tmp_path / "x.db"), rate_limit_per_minute=3)
    lite = CueApiLite(settings, clock=clock, deliverer=FakeDeliverer())
    await lite.start()
    try:
        key = await lite.accounts.mint_key("alice@example.com")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=lite.asgi), base_url=BASE
        ) as client:
            await log_in(client, key.api_key)  # counted against the key
            answers = [(await client.get("/cues")).status_code for _ in range(4)]
        assert answers == [200, 200, 200, 429]  # the session's own window
    finally:
        await lite.aclose()


# --- live updates -------------------------------------------------------------------------


async def test_live_poll_is_204_until_something_changes(
    lite: CueApiLite, api: httpx.AsyncClient, web: httpx.AsyncClient, clock: ManualClock
) -> None:
    cue = await new_cue(api, name="brief")
    page = await web.get("/cues")
    version = page.headers["x-live-version"]
    assert f'<meta name="live-version" content="{version}">' in page.text
    unchanged = await web.get("/cues", headers={"X-Live-Version": version})
    assert (unchanged.status_code, unchanged.content) == (204, b"")

    await fire(lite, api, cue["id"])
    changed = await web.get("/cues", headers={"X-Live-Version": version})
    assert changed.status_code == 200
    assert "fill-success" in changed.text  # the strip is read afresh
    # The health of every cue was read under 2 s ago and is reused: the page keeps the
    # older version, so the next poll asks again...
    assert changed.headers["x-live-version"] == version
    clock.advance(2)
    fresh = await web.get("/cues", headers={"X-Live-Version": version})
    # ...and then gets everything fresh, with the new version.
    assert fresh.headers["x-live-version"] != version
    assert (
        await web.get("/cues", headers={"X-Live-Version": fresh.headers["x-live-version"]})
    ).status_code == 204


# --- the forms read JSON and payloads as the API does ------------------------------------


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ('{"n": NaN}', "payload.n: NaN is not a JSON number"),
        ('{"n": 1e400}', "payload.n: the number is out of range"),
        ('{"n": 123456789012345678901}', "payload.n: the number is out of range"),
        ('{"s": "\\ud800"}', "payload.s: holds a lone UTF-16 surrogate"),
        ('{"deep": ' + "[" * 200 + "]" * 200 + "}", "payload.deep: nested more than 128"),
    ],
)
async def test_an_edit_refuses_the_json_the_api_refuses(
    api: httpx.AsyncClient, web: httpx.AsyncClient, payload: str, message: str
) -> None:
    cue = await new_cue(api, name="brief")
    page = f"/cues/{cue['id']}"
    response = await post_form(web, f"{page}/edit", page, **edit_fields(payload=payload))
    assert response.status_code == 422, response.text
    assert message in response.text
    stored = (await api.get(f"/v1/cues/{cue['id']}")).json()
    assert stored["payload"] == cue["payload"]


async def test_a_fire_refuses_the_json_the_api_refuses(
    api: httpx.AsyncClient, web: httpx.AsyncClient
) -> None:
    cue = await new_cue(api, name="brief")
    page = f"/cues/{cue['id']}"
    response = await post_form(web, f"{page}/fire", page, payload_override='{"n": Infinity}')
    assert response.status_code == 422, response.text
    assert "payload_override.n: Infinity is not a JSON number" in response.text
    assert (await api.get("/v1/executions")).json()["total"] == 0


async def test_a_cue_with_a_large_payload_can_be_edited_and_fired(
    lite: CueApiLite, api: httpx.AsyncClient, web: httpx.AsyncClient, deliverer: FakeDeliverer
) -> None:
    """The forms carry any payload the API accepts (here 200 KB), not just small ones."""
    payload = {"task": "report", "items": [{"id": i, "note": "x" * 90} for i in range(2000)]}
    cue = await new_cue(api, name="big", payload=payload)
    page = f"/cues/{cue['id']}"
    shown = json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True)
    saved = await post_form(
        web, f"{page}/edit", page, **edit_fields(cron="5 9 * * *", payload=shown)
    )
    assert saved.headers.get("location") == f"{page}?done=saved", saved.text
    stored = (await api.get(f"/v1/cues/{cue['id']}")).json()
    assert (stored["schedule"]["cron"], stored["payload"]) == ("5 9 * * *", payload)
    fired = await post_form(web, f"{page}/fire", page, payload_override=json.dumps({"more": shown}))
    assert fired.headers.get("location") == f"{page}?done=fired", fired.text
    await lite.settle()
    assert json.loads(deliverer.requests[-1].body or b"{}")["payload"]["more"] == shown


async def test_failed_logins_count_against_the_address_rate_limit(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Guessing keys on the login form is limited like guessing them on the API."""
    settings = Settings(db=str(tmp_path / "x.db"), ip_rate_limit_per_minute=3)
    lite = CueApiLite(settings, clock=clock, deliverer=FakeDeliverer())
    await lite.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=lite.asgi), base_url=BASE
        ) as client:
            first = await log_in(client, "cue_sk_guess1")  # the page and the post: 2 of 3
            second = await log_in(client, "cue_sk_guess2")  # the page: 3 of 3; the post: 4
        assert first.status_code == 401
        assert second.status_code == 429
        assert "Rate limit exceeded" in second.text
        assert int(second.headers["retry-after"]) >= 1
    finally:
        await lite.aclose()
