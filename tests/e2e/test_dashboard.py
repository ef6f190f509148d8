"""The dashboard in a real Chromium (Debian's /usr/bin/chromium, driven by Playwright)
against a real `cueapi-lite serve` on an ephemeral port.

Mandatory when CI=true; elsewhere skipped unless Chromium is installed
(`apt-get install chromium`; `pip install -e '.[test]'` brings Playwright).
The journey test also takes the README's screenshots: into a temporary directory, or
into the directory `CUEAPI_LITE_SCREENSHOTS_DIR` names (`docs` refreshes the README's).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cueapi_lite.testing import ReceivedWebhook, WebhookReceiver

from .conftest import ROOT, wait_until
from .serve import ServeProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
HOW_TO = (
    "browser tests need Chromium at /usr/bin/chromium (apt-get install chromium) and"
    " Playwright (pip install -e '.[test]'); they are mandatory when CI=true"
)
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
SCREENSHOTS_DIR = "CUEAPI_LITE_SCREENSHOTS_DIR"


def screenshots_dir(tmp_path: Path) -> Path:
    """Where the journey's screenshots go: a temporary directory unless asked for one
    (relative to the project), so a test run leaves the work tree as it was."""
    asked = os.environ.get(SCREENSHOTS_DIR)
    if not asked:
        return tmp_path
    folder = ROOT / asked
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _playwright() -> Any:
    missing = not Path(CHROMIUM).exists()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = True
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(HOW_TO)
        pytest.skip(HOW_TO)
    return sync_playwright


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_playwright = _playwright()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Site:
    """The running server, its first user's key, a second user, and a receiver whose
    answers the test releases one at a time (so a page can be seen mid-delivery)."""

    def __init__(self, serve: ServeProcess, receiver: WebhookReceiver, db: Path) -> None:
        self.serve = serve
        self.base = serve.base_url
        assert serve.api_key is not None
        self.api = httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {serve.api_key}"}, timeout=10
        )
        self.receiver = receiver
        self.db = db

    def create_cue(self, **fields: Any) -> dict[str, Any]:
        response = self.api.post("/v1/cues", json=fields)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def other_user_key(self) -> str:
        made = subprocess.run(
            [sys.executable, "-m", "cueapi_lite", "keys", "create", "--db", str(self.db),
             "--email", "bob@example.com", "--json"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return str(json.loads(made.stdout)["api_key"])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    _playwright()  # skip before starting anything
    release = threading.Event()

    def respond(hook: ReceivedWebhook) -> tuple[int, Any]:
        if hook.path == "/fail":
            return 500, {"error": "mailbox full"}
        return 200, {"success": True, "result": "brief sent", "external_id": "email:1042",
                     "result_url": "https://mail.example.com/sent/1042"}  # fmt: skip

    def delay(hook: ReceivedWebhook) -> float:
        if hook.path == "/held":
            release.wait(60)  # the test lets this one answer when it has seen "Running"
        return 0.0

    db = tmp_path_factory.mktemp("dashboard") / "cueapi-lite.db"
    with WebhookReceiver(respond, delay) as receiver, ServeProcess(db) as serve:
        found = Site(serve, receiver, db)
        found.release = release  # type: ignore[attr-defined]
        try:
            yield found
        finally:
            release.set()
            found.api.close()
            serve.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        yield context.new_page()
    finally:
        context.close()


def log_in(page: Any, site: Site) -> None:
    page.goto(site.base + "/")
    assert page.url.endswith("/login")
    page.fill("#api_key", site.serve.api_key)
    page.click("button:text('Log in')")
    page.wait_for_url(site.base + "/")


def test_a_new_user_steers_cues_from_the_dashboard(site: Site, page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    log_in(page, site)
    expect(page.locator("h1")).to_have_text("Overview")

    hook = site.receiver.url
    brief = site.create_cue(
        name="morning-brief",
        schedule={"type": "recurring", "cron": "0 9 * * *", "timezone": "America/Los_Angeles"},
        callback={"url": hook + "/held"},
        payload={"task": "daily_brief"},
        verification={"mode": "manual"},
    )
    flaky = site.create_cue(
        name="flaky-report",
        schedule={"type": "recurring", "cron": "*/30 * * * *", "timezone": "UTC"},
        callback={"url": hook + "/fail"},
        retry={"max_attempts": 1, "backoff_minutes": [1]},
        alerts={"consecutive_failures": 1, "missed_window_multiplier": 2},
        on_failure={"email": False},
    )
    site.create_cue(
        name="weekly-digest",
        schedule={"type": "recurring", "cron": "0 8 * * 1", "timezone": "Europe/Berlin"},
        callback={"url": hook + "/ok"},
    )
    site.create_cue(
        name="sync-data", transport="worker",
        schedule={"type": "recurring", "cron": "*/15 * * * *", "timezone": "UTC"},
    )  # fmt: skip

    # The cue list shows the API's cue, its schedule in words.
    page.click("nav >> text=Cues")
    row = page.locator("tr", has_text="morning-brief")
    expect(row).to_contain_text("every day at 09:00, America/Los_Angeles")
    expect(row.locator(".badge")).to_have_text("Healthy")

    # Fire from the page; the delivery is held, so the page first shows it running, then
    # the outcome arrives without a reload (the live script swaps the history in).
    row.locator("a", has_text="morning-brief").click()
    page.click("summary:text('Payload override')")
    page.fill("#payload_override", '{"note": "from the dashboard"}')
    page.click("button:text('Fire now')")
    page.wait_for_url(re.compile(r".*\?done=fired$"))
    history = page.locator("#history")
    expect(history).to_contain_text("Running")
    page.evaluate("window.notReloaded = true")
    site.release.set()  # type: ignore[attr-defined]
    expect(history).to_contain_text("Verification pending", timeout=20_000)
    assert page.evaluate("window.notReloaded") is True
    sent = site.receiver.received[0].json()
    assert sent["payload"] == {"task": "daily_brief", "note": "from the dashboard"}

    # Pause and resume.
    page.click("button:text('Pause')")
    expect(page.locator("h1 .badge")).to_have_text("paused")
    assert site.api.get(f"/v1/cues/{brief['id']}").json()["status"] == "paused"
    page.click("button:text('Resume')")
    expect(page.locator("h1 .badge")).to_have_text("active")

    # Edit the schedule.
    page.click("summary:text('Edit schedule')")
    page.fill("#cron", "30 7 * * 1-5")
    page.click("button:text('Save')")
    expect(page.locator(".fields")).to_contain_text("every weekday at 07:30, America/Los_Angeles")
    assert site.api.get(f"/v1/cues/{brief['id']}").json()["schedule"]["cron"] == "30 7 * * 1-5"

    # Verify the execution (manual verification).
    history.locator("a[href^='/executions/']").first.click()
    expect(page.locator("#evidence")).to_contain_text("email:1042")
    expect(page.locator("#evidence a")).to_have_attribute(
        "href", "https://mail.example.com/sent/1042"
    )
    page.click("button:text-is('Verify')")
    expect(page.locator("#summary")).to_contain_text("verified_success")

    # A failing cue raises an alert; acknowledge it from the alerts page.
    for _ in range(3):
        assert site.api.post(f"/v1/cues/{flaky['id']}/fire", json={}).status_code == 200
    for _ in range(4):
        assert site.api.post(f"/v1/cues/{brief['id']}/fire", json={}).status_code == 200
    wait_until(lambda: site.api.get("/v1/alerts").json()["total"] >= 1)
    # (Only the fired cues' runs: the worker cue's run, should the test cross a quarter
    # hour, waits for a claim.)
    fired = {brief["id"], flaky["id"]}
    wait_until(
        lambda: all(
            e["status"] in ("success", "failed")
            for e in site.api.get("/v1/executions", params={"limit": 100}).json()["executions"]
            if e["cue_id"] in fired
        )
    )
    page.click("nav >> text=Alerts")
    alert_row = page.locator("#alert-list tr", has_text="consecutive_failure").first
    expect(alert_row).to_contain_text("flaky-report")
    alert_row.locator("button:text('Acknowledge')").click()
    expect(page.locator(".notice")).to_have_text("Acknowledged.")
    assert site.api.get("/v1/alerts", params={"acknowledged": "true"}).json()["total"] >= 1

    # The screenshots the README shows.
    shots = screenshots_dir(tmp_path)
    page.click("nav >> text=Cues")
    expect(page.locator("tr", has_text="flaky-report").locator(".badge")).to_have_text("Failing")
    page.screenshot(path=str(shots / "dashboard-cues.png"), full_page=True)
    page.locator("a", has_text="morning-brief").click()
    history.locator("a[href^='/executions/']").last.click()
    expect(page.locator("#timeline")).to_contain_text("Outcome reported")
    page.screenshot(path=str(shots / "dashboard-execution.png"), full_page=True)
    for name in ("dashboard-cues.png", "dashboard-execution.png"):
        assert (shots / name).read_bytes().startswith(b"\x89PNG"), name

    # Log out: the pages need a login again, and another open tab stops its live
    # updates and says so.
    other = page.context.new_page()
    other.goto(site.base + "/cues")
    page.bring_to_front()
    page.click("button:text('Log out')")
    other.bring_to_front()
    expect(other.locator("#live-stopped")).to_contain_text("Live updates stopped")
    page.wait_for_url(re.compile(r".*/login$"))
    page.goto(site.base + "/cues")
    assert "/login" in page.url


def test_forms_from_another_site_or_without_their_token_are_refused(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    cue = site.create_cue(
        name="guarded",
        schedule={"type": "recurring", "cron": "0 6 * * *", "timezone": "UTC"},
        callback={"url": site.receiver.url + "/ok"},
    )
    log_in(page, site)

    # Another web site's page posts a form to the dashboard.
    evil = (
        f'<form method="post" action="{site.base}/cues/{cue["id"]}/pause">'
        '<input name="csrf" value="guess"><button>win a prize</button></form>'
    )
    page.route(
        "http://evil.example/",
        lambda route: route.fulfill(status=200, content_type="text/html", body=evil),
    )
    page.goto("http://evil.example/")
    page.click("button")
    expect(page.locator("body")).to_contain_text("Cross-site form posts are refused")

    # Our own page, with its form token removed.
    page.goto(f"{site.base}/cues/{cue['id']}")
    page.evaluate("document.querySelector('form[action$=\"/pause\"] input[name=csrf]').remove()")
    page.click("button:text('Pause')")
    expect(page.locator("body")).to_contain_text("This form has expired")

    assert site.api.get(f"/v1/cues/{cue['id']}").json()["status"] == "active"


def test_another_users_cue_page_is_not_found(site: Site, page: Any) -> None:
    from playwright.sync_api import expect

    with httpx.Client(
        base_url=site.base, headers={"Authorization": f"Bearer {site.other_user_key()}"}
    ) as bob:
        theirs = bob.post(
            "/v1/cues",
            json={
                "name": "bobs-secret",
                "schedule": {"type": "recurring", "cron": "0 1 * * *", "timezone": "UTC"},
                "callback": {"url": site.receiver.url + "/ok"},
            },
        ).json()
    log_in(page, site)
    response = page.goto(f"{site.base}/cues/{theirs['id']}")
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    page.goto(site.base + "/cues")
    expect(page.locator("#cue-list")).not_to_contain_text("bobs-secret")
