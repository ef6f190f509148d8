"""`load`: one definition checks a body and names the first bad field, with the API's
codes (CONTRACT §2.3); the same shapes feed `/openapi.json`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cueapi_lite.errors import ApiError
from cueapi_lite.outcomes import clean_evidence
from cueapi_lite.request_shapes import (
    Claim,
    CueBody,
    DeviceCodeBody,
    Fire,
    OutcomeReport,
    SupportTicket,
    WorkerHeartbeat,
    load,
)


@pytest.mark.parametrize(
    ("shape", "body", "status", "code", "message"),
    [
        (CueBody, {"name": ""}, 422, "validation_error", "name: must not be empty"),
        (CueBody, {"name": 5}, 422, "validation_error", "name: must be a string"),
        (CueBody, {"retry": {"max_attempts": 11}}, 422, "validation_error",
         "retry.max_attempts: must be between 1 and 10"),
        (CueBody, {"retry": {"backoff_minutes": [5, 0]}}, 422, "validation_error",
         "retry.backoff_minutes: must be between 1 and 1440"),
        (CueBody, {"retry": {"max_attempts": True}}, 422, "validation_error",
         "retry.max_attempts: must be an integer"),
        (CueBody, {"schedule": {"type": "daily"}}, 400, "invalid_schedule",
         "schedule.type: must be one of once, recurring"),
        (CueBody, {"schedule": {"at": 1700000000}}, 400, "invalid_schedule",
         "schedule.at: must be a string"),
        (CueBody, {"schedule": {"timezone": ["UTC"]}}, 422, "invalid_timezone",
         "schedule.timezone: must be a string"),
        (CueBody, {"callback": {"url": ["http://x"]}}, 400, "invalid_callback_url",
         "callback.url: must be a string"),
        (CueBody, {"callback": 5}, 422, "validation_error",
         "callback: must be a string or an object"),
        (CueBody, {"callback": {"headers": {"X-A": 1}}}, 422, "validation_error",
         "callback.headers: must be a string"),
        (CueBody, {"payload": [1]}, 422, "validation_error", "payload: must be an object"),
        (CueBody, {"callback": {"headers": {"Bad Name": "x"}}}, 422, "validation_error",
         "callback.headers: has a name that is not an HTTP header name"),
        (CueBody, {"callback": {"headers": {"X-A": "a\r\nX-B: b"}}}, 422, "validation_error",
         "callback.headers: has a value with a line break or NUL"),
        (CueBody, {"name": "   "}, 422, "validation_error", "name: must not be blank"),
        (OutcomeReport, {}, 422, "validation_error", "success: is required"),
        (OutcomeReport, {"success": "true"}, 422, "validation_error",
         "success: must be true or false"),
        (OutcomeReport, {"success": True, "result": "x" * 8001}, 422, "validation_error",
         "result: must have at most 8,000 characters"),
        (OutcomeReport, {"success": True, "result_url": "ftp://x"}, 422, "validation_error",
         "result_url: must be an absolute http(s) URL"),
        (Claim, {"worker_id": "   "}, 422, "validation_error", "worker_id: must not be blank"),
        (WorkerHeartbeat, {"worker_id": "w", "handlers": ["a"] * 201}, 422,
         "validation_error", "handlers: must have at most 200 items"),
        (DeviceCodeBody, {"device_code": "abc"}, 400, "invalid_device_code",
         "device_code: 6 to 128 characters, letters, digits, '-' or '_'"),
        (Fire, {"merge_strategy": "deep"}, 422, "validation_error",
         "merge_strategy: must be one of merge, replace"),
        (SupportTicket, {"subject": "s" * 10, "message": "m" * 30, "severity": "low"}, 422,
         "validation_error", "type: is required"),
    ],
)  # fmt: skip
def test_a_bad_field_is_named_with_the_api_code(
    shape: Any, body: dict[str, Any], status: int, code: str, message: str
) -> None:
    with pytest.raises(ApiError) as caught:
        load(body, shape)
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        status, code, message
    )  # fmt: skip
    field = message.split(":")[0]
    assert caught.value.details == [{"field": field, "message": message.split(": ", 1)[1]}]


def test_the_quirky_bodies_of_the_official_clients_load() -> None:
    # SDK update(timezone=...) alone sends {} (H18); PATCH sends partial schedules and a
    # callback with only a url; C sends partial on_failure; MCP-style flat bodies.
    for body in (
        {},
        {"schedule": {"type": "recurring", "cron": "*/5 * * * *"}},
        {"callback": {"url": "http://127.0.0.1:9/h"}, "description": None},
        {"on_failure": {"pause": True}},
        {"name": "flat", "cron": "0 9 * * *", "timezone": "UTC", "callback": "http://x/h"},
        {"name": "n", "unknown_field": {"ignored": True}},
    ):
        load(body, CueBody)
    assert load({"success": False, "metadata": None}, OutcomeReport).metadata is None


def test_webhook_answers_keep_the_good_evidence_and_drop_the_bad() -> None:
    kept = clean_evidence(
        {"success": True, "result": "ok", "external_id": 5, "summary": "s" * 501,
         "result_url": "https://example.com/r", "artifacts": "not a list"}
    )  # fmt: skip
    assert kept == {"result": "ok", "result_url": "https://example.com/r"}


async def test_the_api_answers_with_the_named_field(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/cues",
        json={"name": "x", "schedule": {"type": "recurring", "cron": "* * * * *"},
              "callback": {"url": "http://127.0.0.1:9/h"}, "retry": {"max_attempts": 0}},
    )  # fmt: skip
    assert response.status_code == 422
    assert response.json()["detail"]["error"]["details"][0]["field"] == "retry.max_attempts"
