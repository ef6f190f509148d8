"""Schemathesis hooks for `test_spec_fuzz.py` (loaded through SCHEMATHESIS_HOOKS).

Authenticates every request with the key in CUEAPI_FUZZ_KEY and follows it when a
generated `POST /v1/auth/key/regenerate` replaces it; makes half the positive cue creates
valid so stateful chains have ids to follow; checks that every error answer is the JSON
envelope (pages for people answer their errors as pages); lets a revoked key be used
after its DELETE (a soft delete).
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis
from hypothesis import strategies as st

KEY = {"value": os.environ.get("CUEAPI_FUZZ_KEY", "")}
PAGES = ("/docs", "/auth/device", "/v1/auth/verify")


@schemathesis.auth(refresh_interval=None)
class CurrentKey:
    def get(self, case: Any, context: Any) -> str:
        return KEY["value"]

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


# A cue body that passes the server's own rules (cron, zone, callback policy): random
# strings rarely do, and without created cues the stateful phase has no ids to follow.
VALID_CUE = {
    "schedule": {"type": "recurring", "cron": "*/5 * * * *", "timezone": "UTC"},
    "callback": {"url": "http://127.0.0.1:9/hook"},
}


@schemathesis.hook
def flatmap_case(context: Any, case: Any) -> Any:
    """Half the positive cue creates get a valid schedule and callback (and a fresh name)."""
    meta = case.meta
    if (
        case.operation.method.upper() != "POST"
        or case.operation.path != "/v1/cues"
        or not isinstance(case.body, dict)
        or meta is None
        or not meta.generation.mode.is_positive
    ):
        return st.just(case)

    def valid(number: int) -> Any:
        # Each draw gets its own case from the strategy, so changing it here is safe.
        case.body = {**case.body, **VALID_CUE, "name": f"fuzz-{number}"}
        return case

    return st.one_of(st.just(case), st.integers(0, 10**12).map(valid))


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    if case.operation.path == "/v1/auth/key/regenerate" and response.status_code == 200:
        KEY["value"] = response.json()["api_key"]


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """A revoked key stays listed (and may be renamed) for 30 days, as the contract's
    "soft-delete" says: using it after its DELETE is not a use after free."""
    return not (failure.code == "ST301" and case.operation.path.startswith("/v1/auth/keys"))


@schemathesis.check
def error_envelope(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx is `{"error": {code, message, status}, "detail": {"error": same}}`."""
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    if content_type.startswith("text/html") and case.operation.path in PAGES:
        return None
    assert content_type == "application/json", f"error answered as {content_type!r}"
    body = json.loads(response.content)
    error = body["error"]
    assert isinstance(error["code"], str), "error.code missing"
    assert error["code"], "error.code empty"
    assert isinstance(error["message"], str), "error.message missing"
    assert error["message"], "error.message empty"
    assert error["status"] == response.status_code, "error.status is not the HTTP status"
    assert body["detail"]["error"] == error, "detail.error is not a copy of error"
    return True
