"""Property: no request body, however malformed, gets a 5xx or breaks a stored row.

Every route of the app is enumerated (so a new route is covered the day it is added) and
sent generated hostile bodies and query strings: deep nesting, lone
surrogates, huge and non-finite numbers, wrong types, huge strings, odd Unicode. Each
answer must be below 500, and an error must be the contract's envelope; after each
example the user's cues and executions must still list and render.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Mount, Route

from cueapi_lite import CueApiLite, ManualClock, Settings

from .conftest import FakeDeliverer

PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

# --- hostile values ---------------------------------------------------------------------

ODD_TEXT = st.sampled_from(
    [
        "\u202e\u0000\u0301",  # RTL override, NUL, a lone combining mark
        "①②⑦.⓪.⓪.①",
        "ｆｕｌｌｗｉｄｔｈ",
        "\U0001f600" * 50,
        "\ufeff",
        "x" * 100_000,
        "",
        " ",
        "null",
        "9999-12-31T23:00:00-12:00",
        "*/60 * * * *",
        "http://2130706433/",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    ODD_TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
# Raw JSON text a serialiser would never write: each goes where a value goes.
RAW_VALUES = st.sampled_from(
    [
        "NaN", "-Infinity", "1e400", "-1e400", "1" + "0" * 400, '"\\ud800"', '"a\\udfff"',
        '{"\\udc00": 1}', "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000,
        "9223372036854775808", "-9223372036854775809", "1.7976931348623157e309",
    ]
)  # fmt: skip

FIELDS = [
    "name", "schedule", "callback", "payload", "retry", "on_failure", "delivery", "alerts",
    "catch_up", "verification", "transport", "status", "description", "cron", "at",
    "timezone", "url", "success", "result", "error", "metadata", "artifacts", "external_id",
    "result_url", "payload_override", "merge_strategy", "worker_id", "handlers", "task",
    "valid", "reason", "email", "label", "token", "device_code", "subject", "message",
    "alert_webhook_url", "email_alerts", "limit", "offset",
]  # fmt: skip
NESTED = {
    "schedule": ["type", "cron", "at", "timezone"],
    "callback": ["url", "method", "headers"],
    "retry": ["max_attempts", "backoff_minutes"],
    "on_failure": ["email", "webhook", "pause"],
    "delivery": ["timeout_seconds", "outcome_deadline_seconds"],
}
VALID_CUE = {
    "name": "prop",
    "schedule": {"type": "recurring", "cron": "0 9 * * *", "timezone": "UTC"},
    "callback": {"url": "http://127.0.0.1:9/hook"},
    "payload": {"k": 1},
}


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """A request body: a valid-looking object with one field made hostile, or raw junk."""
    kind = draw(st.sampled_from(["field", "nested", "value", "raw", "bytes"]))
    if kind == "bytes":
        return draw(
            st.sampled_from([b"", b"{", b"\xff\xfe", b"\xed\xa0\x80", b"[]", b"null", b"1e400"])
        )
    if kind == "value":
        return json.dumps(draw(JSON_VALUES)).encode()
    hostile = draw(RAW_VALUES) if draw(st.booleans()) else json.dumps(draw(JSON_VALUES))
    if kind == "raw":
        return hostile.encode()
    field = draw(st.sampled_from(FIELDS))
    base = {k: v for k, v in VALID_CUE.items() if k != field}
    prefix = json.dumps(base)[:-1] + (", " if base else "")
    if kind == "nested" and field in NESTED:
        inner = draw(st.sampled_from(NESTED[field]))
        return f'{prefix}"{field}": {{"{inner}": {hostile}}}}}'.encode()
    return f'{prefix}"{field}": {hostile}}}'.encode()


QUERY_VALUES = st.one_of(
    st.sampled_from(
        ["9223372036854775808", "-1", "1e3", "0x10", "１２", "", "99999999999999999999"]
    ),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(max_size=20),
)

# --- the server ---------------------------------------------------------------------------


def route_table(routes: list[Any], prefix: str = "") -> list[tuple[str, list[str]]]:
    """Every (path, methods) the app serves, including routes inside mounted apps."""
    table: list[tuple[str, list[str]]] = []
    for route in routes:
        if isinstance(route, Route):
            table.append((prefix + route.path, sorted(route.methods or [])))
        elif isinstance(route, Mount):
            table += route_table(list(route.routes), prefix + route.path)
    return table


class Target:
    """The app in-process on an event loop of its own (Hypothesis calls are synchronous)."""

    def __init__(self, db: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        settings_ = Settings(db=str(db), rate_limit_per_minute=0, ip_rate_limit_per_minute=0)
        self.lite = CueApiLite(settings_, clock=ManualClock(), deliverer=FakeDeliverer())
        self.run(self.lite.start())
        key = self.run(self.lite.accounts.mint_key("prop@example.com"))
        self.client = self.lite.client(key.api_key)
        cue = self.request("POST", "/v1/cues", json=VALID_CUE).json()
        fired = self.request("POST", f"/v1/cues/{cue['id']}/fire", json={}).json()
        self.run(self.lite.settle())
        self.ids = {
            "cue_id": cue["id"],
            "execution_id": fired["id"],
            "key_id": "key_missing",
            "alert_id": "alert_missing",
            "ticket_id": "1",
            "token": "tok",
        }
        self.routes = route_table(self.lite.asgi.routes)

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self.run(self.client.request(method, path, **kwargs))
        return response

    def close(self) -> None:
        self.run(self.client.aclose())
        self.run(self.lite.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def path(self, template: str, garbage: str | None) -> str:
        def fill(match: re.Match[str]) -> str:
            return garbage if garbage is not None else self.ids.get(match.group(1), "x")

        return re.sub(r"\{(\w+)(?::\w+)?\}", fill, template)

    def check(self, response: httpx.Response) -> None:
        assert response.status_code < 500, (response.request.url, response.text[:500])
        if response.status_code >= 400 and response.headers.get("content-type", "").startswith(
            "application/json"
        ):
            error = response.json()["error"]
            assert set(error) >= {"code", "message", "status"}
            assert error["status"] == response.status_code
            assert response.json()["detail"]["error"]["code"] == error["code"]

    def rows_render(self) -> None:
        for path in ("/v1/cues?limit=100", "/v1/executions?limit=100", "/v1/alerts"):
            listed = self.request("GET", path)
            assert listed.status_code == 200, (path, listed.text[:500])
        for path in (
            f"/v1/cues/{self.ids['cue_id']}",
            f"/v1/executions/{self.ids['execution_id']}",
        ):
            got = self.request("GET", path)
            assert got.status_code in (200, 404), (path, got.text[:500])
        for cue in self.request("GET", "/v1/cues?limit=100").json()["cues"]:
            assert self.request("GET", f"/v1/cues/{cue['id']}").status_code == 200


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    target = Target(Path(tmp_path_factory.mktemp("prop")) / "prop.db")
    yield target
    target.close()


def test_every_route_is_enumerated(target: Target) -> None:
    """The property below reaches every route the app serves, including new ones."""
    paths = {path for path, _ in target.routes}
    assert {"/v1/cues", "/v1/cues/{cue_id}", "/v1/auth/session", "/v1/auth/me"} <= paths
    assert len(target.routes) >= 40


BODY_METHODS = ("POST", "PATCH", "PUT", "DELETE")


@PROPERTY_SETTINGS
@given(data=st.data(), body=bodies())
def test_no_body_gets_a_5xx_and_every_row_still_renders(
    target: Target, data: st.DataObject, body: bytes
) -> None:
    candidates = [(p, m) for p, methods in target.routes for m in methods if m in BODY_METHODS]
    path, method = data.draw(st.sampled_from(candidates))
    if method == "DELETE" or path.endswith("/regenerate"):
        path = target.path(path, "not-a-real-id")  # keep the fixture's cue and key alive
    else:
        path = target.path(path, None)
    content_type = data.draw(
        st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain"])
    )
    response = target.request(method, path, content=body, headers={"Content-Type": content_type})
    target.check(response)
    target.rows_render()


@PROPERTY_SETTINGS
@given(data=st.data(), value=QUERY_VALUES)
def test_no_query_parameter_or_path_id_gets_a_5xx(
    target: Target, data: st.DataObject, value: str
) -> None:
    candidates = [(p, m) for p, methods in target.routes for m in methods if m == "GET"]
    path, _ = data.draw(st.sampled_from(candidates))
    garbage = data.draw(st.sampled_from([None, quote(value, safe="") or "x"]))
    name = data.draw(st.sampled_from(["offset", "limit", "since", "status", "cue_id", "code"]))
    response = target.request("GET", target.path(path, garbage), params={name: value})
    target.check(response)
    target.rows_render()
