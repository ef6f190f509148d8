"""Every MCP tool over both transports, with the `mcp` SDK's own client, against a live
server on a manual clock: streamable HTTP at `/mcp` on an ephemeral port, and stdio by
spawning `cueapi-lite mcp` as a subprocess that calls the server's API."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from cueapi_lite.mcp import TOOLS
from cueapi_lite.services.accounts import NewKey
from cueapi_lite.testing import LiveServer, WebhookReceiver, manual_clock

pytestmark = pytest.mark.e2e
CUEAPI_LITE = Path(sys.executable).parent / "cueapi-lite"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(str(tmp_path / "mcp.db"), clock=manual_clock()) as live:
        yield live


@pytest.fixture
def key(server: LiveServer) -> NewKey:
    return server.mint_key("agent@example.com")


@pytest.fixture
def receiver(key: NewKey) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=key.user.webhook_secret) as hooks:
        yield hooks


@asynccontextmanager
async def connect(transport: str, server: LiveServer, api_key: str) -> AsyncIterator[Client]:
    if transport == "stdio":
        command = StdioServerParameters(
            command=str(CUEAPI_LITE), args=["mcp", "--url", server.base_url, "--key", api_key]
        )
        async with Client(command) as client:
            yield client
        return
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {api_key}"})
    transport_ = streamable_http_client(f"{server.base_url}/mcp", http_client=http)
    async with http, Client(transport_) as client:
        yield client


async def call(client: Client, tool: str, **arguments: Any) -> Any:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, (tool, result.content)
    return json.loads(result.content[0].text)  # type: ignore[union-attr]


async def fails(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, tool
    return str(result.content[0].text)  # type: ignore[union-attr]


@pytest.mark.parametrize("transport", ["streamable_http", "stdio"])
async def test_every_tool_over_the_transport(
    transport: str, server: LiveServer, key: NewKey, receiver: WebhookReceiver
) -> None:
    advance = asyncio.to_thread  # the server's clock moves in its own thread
    called: set[str] = set()

    async def use(tool: str, **arguments: Any) -> Any:
        called.add(tool)
        return await call(mcp, tool, **arguments)

    async with connect(transport, server, key.api_key) as mcp:
        listed = (await mcp.list_tools()).tools
        assert sorted(t.name for t in listed) == sorted(t.name for t in TOOLS)

        # A webhook cue created through MCP fires from the server when its time comes.
        receiver.answer_outcome(success=True, result="posted")
        soon = await use("cueapi_create_cue", name="soon", at=server.now().isoformat(),
                         callback_url=receiver.url, payload={"task": "post"})  # fmt: skip
        await advance(server.advance)
        [hook] = receiver.assert_received(1)
        assert (hook.json()["cue_id"], hook.payload) == (soon["id"], {"task": "post"})
        [execution] = (await use("cueapi_list_executions", cue_id=soon["id"]))["executions"]
        fetched = await use("cueapi_get_execution", execution_id=execution["id"])
        assert (fetched["status"], fetched["outcome_state"]) == ("success", "reported_success")

        # The life of a recurring cue.
        daily = await use("cueapi_create_cue", name="daily", cron="0 9 * * *",
                          timezone="Europe/Paris", callback_url=receiver.url,
                          payload={"task": "brief", "lang": "fr"})  # fmt: skip
        renamed = await use("cueapi_update_cue", cue_id=daily["id"], name="daily-brief")
        assert renamed["name"] == "daily-brief"
        assert (await use("cueapi_pause_cue", cue_id=daily["id"]))["status"] == "paused"
        assert (await use("cueapi_resume_cue", cue_id=daily["id"]))["status"] == "active"
        active = (await use("cueapi_list_cues", status="active"))["cues"]
        assert [cue["name"] for cue in active] == ["daily-brief"]  # "soon" ran: completed
        assert (await use("cueapi_get_cue", cue_id=daily["id"]))["schedule"]["cron"] == (
            "0 9 * * *"
        )
        await use("cueapi_fire_cue", cue_id=daily["id"], payload_override={"lang": "en"})
        await advance(server.advance)
        assert receiver.assert_received(2)[1].payload == {"task": "brief", "lang": "en"}
        assert (await use("cueapi_delete_cue", cue_id=daily["id"]))["deleted"] is True
        assert await fails(mcp, "cueapi_get_cue", cue_id=daily["id"]) == (
            "Cue not found (cue_not_found, HTTP 404)"
        )

        # Worker work: claim, heartbeat, report; and claim-next by task.
        sync = await use("cueapi_create_cue", name="sync", cron="0 3 * * *", worker=True,
                         payload={"task": "sync_data"})  # fmt: skip
        first = await use("cueapi_fire_cue", cue_id=sync["id"])
        [waiting] = (await use("cueapi_list_claimable_executions", task_name="sync_data"))[
            "executions"
        ]
        assert waiting["execution_id"] == first["id"]
        claimed = await use("cueapi_claim_execution", execution_id=first["id"], worker_id="mini")
        assert claimed["claimed"] is True
        await use("cueapi_execution_heartbeat", execution_id=first["id"], worker_id="mini")
        await use("cueapi_report_outcome", execution_id=first["id"], success=True,
                  external_id="rows:120", summary="synced 120 rows")  # fmt: skip
        assert (await call(mcp, "cueapi_get_execution", execution_id=first["id"]))["status"] == (
            "success"
        )
        second = await use("cueapi_fire_cue", cue_id=sync["id"])
        next_claim = await use("cueapi_claim_next_execution", worker_id="mini",
                               task_name="sync_data")  # fmt: skip
        assert next_claim["execution_id"] == second["id"]

        # Alerts: a delivered run with no outcome by its deadline raises one.
        async with httpx.AsyncClient(
            base_url=server.base_url, headers={"Authorization": f"Bearer {key.api_key}"}
        ) as api:
            watched = (await api.post("/v1/cues", json={
                "name": "watched", "cron": "0 9 * * *", "callback": receiver.url,
                "delivery": {"outcome_deadline_seconds": 60}, "on_failure": {"email": False},
            })).json()  # fmt: skip
        receiver.answer(200, {})
        await use("cueapi_fire_cue", cue_id=watched["id"])
        await advance(server.advance, 60)
        [alert] = (await use("cueapi_list_alerts", cue_id=watched["id"]))["alerts"]
        assert alert["alert_type"] == "outcome_timeout"
        assert (await use("cueapi_acknowledge_alert", alert_id=alert["id"]))["acknowledged"]

        preview = await use("cueapi_explain_schedule", cron="30 2 * * *",
                            timezone="Europe/Berlin", **{"from": "2027-03-27T12:00:00"},
                            count=1)  # fmt: skip
        assert preview["fires"][0]["local"] == "2027-03-28T03:00:00+02:00"

        assert "invalid_schedule" in await fails(
            mcp, "cueapi_create_cue", name="bad", cron="61 * * * *", callback_url=receiver.url
        )
    assert called == {tool.name for tool in TOOLS}

    other = server.mint_key("someone-else@example.com")
    async with connect(transport, server, other.api_key) as theirs:
        assert "HTTP 404" in await fails(theirs, "cueapi_get_cue", cue_id=sync["id"])
        assert "HTTP 404" in await fails(theirs, "cueapi_get_execution", execution_id=first["id"])
        assert (await call(theirs, "cueapi_list_cues"))["total"] == 0


@pytest.mark.parametrize("transport", ["streamable_http", "stdio"])
async def test_a_wrong_key_gets_the_apis_answer(transport: str, server: LiveServer) -> None:
    wrong = "cue_sk_" + "0" * 32
    if transport == "streamable_http":
        async with httpx.AsyncClient() as http:
            response = await http.post(f"{server.base_url}/mcp", json={})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
        return
    async with connect(transport, server, wrong) as mcp:
        assert "invalid_api_key" in await fails(mcp, "cueapi_list_cues")


async def test_the_stdio_server_says_when_the_server_is_unreachable(tmp_path: Path) -> None:
    with LiveServer(str(tmp_path / "gone.db")) as gone:
        url = gone.base_url  # a port nobody listens on once this server stops
    command = StdioServerParameters(
        command=str(CUEAPI_LITE), args=["mcp", "--url", url + "/v1", "--key", "cue_sk_x"]
    )
    async with Client(command) as mcp:
        assert len((await mcp.list_tools()).tools) == len(TOOLS)
        message = await fails(mcp, "cueapi_list_cues")
    assert message.startswith(f"cannot reach the cueapi-lite server at {url}")
    assert "server_unreachable" in message
