"""The MCP endpoint of the server, driven by the `mcp` SDK's own client in-process (no
sockets) on a manual clock: the tools act on the server's state as the authenticated user,
under the API's rate limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.mcp import TOOLS
from cueapi_lite.services.accounts import NewKey

from .conftest import FakeDeliverer

HOOK = "http://127.0.0.1:9999/hook"
OFFICIAL_TOOLS = {
    "cueapi_create_cue",
    "cueapi_list_cues",
    "cueapi_get_cue",
    "cueapi_fire_cue",
    "cueapi_update_cue",
    "cueapi_pause_cue",
    "cueapi_resume_cue",
    "cueapi_delete_cue",
    "cueapi_list_executions",
    "cueapi_get_execution",
    "cueapi_list_claimable_executions",
    "cueapi_claim_execution",
    "cueapi_claim_next_execution",
    "cueapi_execution_heartbeat",
    "cueapi_report_outcome",
}
OWN_TOOLS = {"cueapi_explain_schedule", "cueapi_list_alerts", "cueapi_acknowledge_alert"}


@asynccontextmanager
async def mcp_client(lite: CueApiLite, api_key: str) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=lite.asgi),
        headers={"Authorization": f"Bearer {api_key}"},
    )
    transport = streamable_http_client("http://cueapi-lite.test/mcp", http_client=http)
    async with http, Client(transport) as client:
        yield client


async def call(client: Client, tool: str, **arguments: Any) -> Any:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return json.loads(result.content[0].text)  # type: ignore[union-attr]


async def fails(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    return str(result.content[0].text)  # type: ignore[union-attr]


@pytest.fixture
def connect(lite: CueApiLite, user: NewKey) -> Any:
    """Opens an MCP client as `user` (entered and left in the test's own task, as the
    SDK's task groups require)."""
    return lambda: mcp_client(lite, user.api_key)


async def test_the_tools_are_the_official_ones_plus_ours_with_honest_hints(connect: Any) -> None:
    async with connect() as mcp:
        listed = {tool.name: tool for tool in (await mcp.list_tools()).tools}
        assert set(listed) == OFFICIAL_TOOLS | OWN_TOOLS
        destructive = {name for name, tool in listed.items() if tool.annotations.destructive_hint}  # type: ignore[union-attr]
        read_only = {name for name, tool in listed.items() if tool.annotations.read_only_hint}  # type: ignore[union-attr]
        assert destructive == {"cueapi_delete_cue", "cueapi_update_cue"}
        assert read_only == {
            "cueapi_list_cues",
            "cueapi_get_cue",
            "cueapi_list_executions",
            "cueapi_get_execution",
            "cueapi_list_claimable_executions",
            "cueapi_explain_schedule",
            "cueapi_list_alerts",
        }
        create = listed["cueapi_create_cue"].input_schema
        assert create["required"] == ["name"]
        assert set(create["properties"]) == {
            "name",
            "cron",
            "at",
            "callback_url",
            "worker",
            "timezone",
            "payload",
            "description",
        }


async def test_a_cue_created_through_mcp_fires_on_time_from_the_server(
    connect: Any, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    async with connect() as mcp:
        cue = await call(
            mcp,
            "cueapi_create_cue",
            name="hourly",
            cron="0 * * * *",
            callback_url=HOOK,
            payload={"task": "report"},
        )
        due_ms = clock.now_ms() - clock.now_ms() % 3_600_000 + 3_600_000
        clock.advance((due_ms - clock.now_ms()) / 1000 - 1)
        await lite.settle()
        assert deliverer.requests == []
        clock.advance(1)
        await lite.settle()
        [request] = deliverer.requests
        assert request.url == HOOK
        assert json.loads(request.body)["payload"] == {"task": "report"}
        page = await call(mcp, "cueapi_list_executions", cue_id=cue["id"])
        assert [(e["status"], e["triggered_by"]) for e in page["executions"]] == [
            ("success", "schedule")
        ]


async def test_tools_act_on_the_same_state_as_the_json_api(
    connect: Any, api: httpx.AsyncClient
) -> None:
    async with connect() as mcp:
        created = await call(
            mcp,
            "cueapi_create_cue",
            name="brief",
            cron="0 9 * * *",
            timezone="Europe/Berlin",
            callback_url=HOOK,
        )
        stored = (await api.get(f"/v1/cues/{created['id']}")).json()
        assert {name: stored[name] for name in created} == created
        assert (
            await call(mcp, "cueapi_get_cue", cue_id=created["id"])
            == (await api.get(f"/v1/cues/{created['id']}")).json()
        )
        assert await call(mcp, "cueapi_list_cues") == (await api.get("/v1/cues")).json()
        zone_only = await call(
            mcp, "cueapi_update_cue", cue_id=created["id"], timezone="Asia/Tokyo"
        )
        assert zone_only["schedule"] == {
            "type": "recurring",
            "cron": "0 9 * * *",
            "at": None,
            "timezone": "Asia/Tokyo",
        }


async def test_a_worker_cue_goes_from_fire_to_claim_to_outcome(connect: Any) -> None:
    async with connect() as mcp:
        cue = await call(
            mcp,
            "cueapi_create_cue",
            name="sync",
            cron="0 3 * * *",
            worker=True,
            payload={"task": "sync_data"},
        )
        assert cue["transport"] == "worker"
        started = await call(mcp, "cueapi_fire_cue", cue_id=cue["id"], payload_override={"n": 2})
        [waiting] = (await call(mcp, "cueapi_list_claimable_executions", task_name="sync_data"))[
            "executions"
        ]
        assert (waiting["execution_id"], waiting["payload"]) == (
            started["id"],
            {"task": "sync_data", "n": 2},
        )
        assert await call(
            mcp, "cueapi_claim_next_execution", worker_id="w1", task_name="other"
        ) == {
            "claimed": False,
            "reason": "no_executions_for_task",
            "task_name": "other",
        }
        claimed = await call(
            mcp, "cueapi_claim_next_execution", worker_id="w1", task_name="sync_data"
        )
        assert (claimed["claimed"], claimed["execution_id"]) == (True, started["id"])
        assert "already" in await fails(
            mcp, "cueapi_claim_execution", execution_id=started["id"], worker_id="w2"
        )
        beat = await call(
            mcp, "cueapi_execution_heartbeat", execution_id=started["id"], worker_id="w1"
        )
        assert beat["acknowledged"] is True
        assert "not_execution_owner" in await fails(
            mcp, "cueapi_execution_heartbeat", execution_id=started["id"], worker_id="w2"
        )
        recorded = await call(
            mcp,
            "cueapi_report_outcome",
            execution_id=started["id"],
            success=True,
            external_id="sync:42",
            summary="synced",
        )
        assert recorded["outcome_state"] == "reported_success"
        execution = await call(mcp, "cueapi_get_execution", execution_id=started["id"])
        assert (execution["status"], execution["outcome"]["external_id"]) == ("success", "sync:42")
        assert "outcome_already_recorded" in await fails(
            mcp, "cueapi_report_outcome", execution_id=started["id"], success=False
        )


async def test_pause_resume_and_delete(connect: Any) -> None:
    async with connect() as mcp:
        cue = await call(mcp, "cueapi_create_cue", name="x", cron="*/5 * * * *", callback_url=HOOK)
        paused = await call(mcp, "cueapi_pause_cue", cue_id=cue["id"])
        assert (paused["status"], paused["next_run"]) == ("paused", None)
        resumed = await call(mcp, "cueapi_resume_cue", cue_id=cue["id"])
        assert resumed["status"] == "active"
        assert resumed["next_run"] is not None
        assert await call(mcp, "cueapi_delete_cue", cue_id=cue["id"]) == {
            "deleted": True,
            "cue_id": cue["id"],
        }
        gone = await fails(mcp, "cueapi_get_cue", cue_id=cue["id"])
        assert gone == "Cue not found (cue_not_found, HTTP 404)"


async def test_alerts_are_listed_and_acknowledged(
    connect: Any, api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock
) -> None:
    async with connect() as mcp:
        body = {
            "name": "a",
            "cron": "0 9 * * *",
            "callback": HOOK,
            "delivery": {"outcome_deadline_seconds": 60},
            "on_failure": {"email": False},
        }
        cue = (await api.post("/v1/cues", json=body)).json()
        await call(mcp, "cueapi_fire_cue", cue_id=cue["id"])
        await lite.settle()
        clock.advance(60)
        await lite.settle()
        [alert] = (await call(mcp, "cueapi_list_alerts", acknowledged=False))["alerts"]
        assert (alert["alert_type"], alert["cue_id"]) == ("outcome_timeout", cue["id"])
        acknowledged = await call(mcp, "cueapi_acknowledge_alert", alert_id=alert["id"])
        assert acknowledged["acknowledged"] is True
        assert (await call(mcp, "cueapi_list_alerts", acknowledged=False))["alerts"] == []
        assert (await call(mcp, "cueapi_list_alerts", since="2000-01-01T00:00:00Z"))["total"] == 1
        assert "since" in await fails(mcp, "cueapi_list_alerts", since="yesterday")
        assert "alert_not_found" in await fails(mcp, "cueapi_acknowledge_alert", alert_id="nope")


async def test_explain_schedule_shows_the_dst_decisions(connect: Any) -> None:
    async with connect() as mcp:
        preview = await call(
            mcp,
            "cueapi_explain_schedule",
            cron="30 2 * * *",
            timezone="America/New_York",
            **{"from": "2026-03-07T12:00:00"},
            count=2,
        )
        assert [(f["local"], f["note"] is not None) for f in preview["fires"]] == [
            ("2026-03-08T03:00:00-04:00", True),
            ("2026-03-09T02:30:00-04:00", False),
        ]
        assert "invalid_timezone" in await fails(
            mcp, "cueapi_explain_schedule", cron="0 9 * * *", timezone="Mars/Olympus"
        )


async def test_errors_come_back_as_tool_errors_with_the_api_message(connect: Any) -> None:
    async with connect() as mcp:
        assert "invalid_schedule" in await fails(
            mcp, "cueapi_create_cue", name="bad", cron="not cron", callback_url=HOOK
        )
        await call(mcp, "cueapi_create_cue", name="dup", cron="0 9 * * *", callback_url=HOOK)
        again = await fails(
            mcp, "cueapi_create_cue", name="dup", cron="0 9 * * *", callback_url=HOOK
        )
        assert again == "A cue named 'dup' already exists (duplicate_cue_name, HTTP 409)"
        assert "limit" in await fails(mcp, "cueapi_list_cues", limit=0)
        assert "cue_id" in await fails(mcp, "cueapi_get_cue")
        assert "Additional properties" in await fails(mcp, "cueapi_get_cue", cue_id="x", extra=1)
        assert "Unknown tool" in await fails(mcp, "cueapi_no_such_tool")
        deep: dict[str, object] = {}
        for _ in range(200):
            deep = {"d": deep}
        too_deep = await fails(mcp, "cueapi_create_cue", name="deep", cron="0 9 * * *",
                               callback_url=HOOK, payload=deep)  # fmt: skip
        assert "invalid_json" in too_deep
        assert (await call(mcp, "cueapi_list_cues"))["total"] == 1  # only "dup"


async def test_another_users_ids_are_not_found(connect: Any, lite: CueApiLite) -> None:
    async with connect() as mcp:
        other = await lite.accounts.mint_key("mallory@example.com")
        cue = await call(
            mcp,
            "cueapi_create_cue",
            name="mine",
            cron="0 9 * * *",
            worker=True,
            payload={"task": "t"},
        )
        started = await call(mcp, "cueapi_fire_cue", cue_id=cue["id"])
        async with mcp_client(lite, other.api_key) as theirs:
            for tool, arguments in [
                ("cueapi_get_cue", {"cue_id": cue["id"]}),
                ("cueapi_update_cue", {"cue_id": cue["id"], "name": "theirs"}),
                ("cueapi_pause_cue", {"cue_id": cue["id"]}),
                ("cueapi_delete_cue", {"cue_id": cue["id"]}),
                ("cueapi_fire_cue", {"cue_id": cue["id"]}),
                ("cueapi_get_execution", {"execution_id": started["id"]}),
                ("cueapi_claim_execution", {"execution_id": started["id"], "worker_id": "m"}),
                ("cueapi_report_outcome", {"execution_id": started["id"], "success": True}),
            ]:
                assert "HTTP 404" in await fails(theirs, tool, **arguments), tool
            assert (await call(theirs, "cueapi_list_cues"))["total"] == 0
            assert (await call(theirs, "cueapi_list_claimable_executions"))["executions"] == []
        assert (await call(mcp, "cueapi_get_cue", cue_id=cue["id"]))["name"] == "mine"


async def test_the_endpoint_needs_an_api_key(lite: CueApiLite) -> None:
    async with lite.client() as anonymous:
        response = await anonymous.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    async with lite.client("cue_sk_" + "0" * 32) as wrong:
        assert (await wrong.post("/mcp", json={})).status_code == 401


async def test_the_api_rate_limit_covers_mcp_requests(tmp_path: Path) -> None:
    settings = Settings(db=str(tmp_path / "limited.db"), rate_limit_per_minute=5)
    lite = CueApiLite(settings, clock=ManualClock(), deliverer=FakeDeliverer())
    await lite.start()
    try:
        key = await lite.accounts.mint_key("busy@example.com")
        async with lite.client(key.api_key) as api:
            for _ in range(5):
                assert (await api.get("/v1/cues")).status_code == 200
            response = await api.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    finally:
        await lite.aclose()
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(response.headers["retry-after"]) >= 1


def test_every_tool_has_a_description_and_a_closed_schema() -> None:
    for tool in TOOLS:
        assert tool.description.endswith("."), tool.name
        assert tool.input_schema["additionalProperties"] is False
        assert set(tool.required) <= set(tool.properties)
