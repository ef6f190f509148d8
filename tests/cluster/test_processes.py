"""Three `cueapi-lite serve` processes on one PostgreSQL database: a burst due at one
instant is sent once per execution, `kill -9` of a node mid-burst loses nothing and
leaves nothing stuck, a cue created on one node is fired on time by another, and claims
across nodes have one winner. Waits poll the database or the API against a deadline."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest

from cueapi_lite import CueApiLite, Settings
from cueapi_lite.cue_input import CueCreate, new_cue, read_cue_body
from cueapi_lite.services.cues import insert_cue
from cueapi_lite.testing import WebhookReceiver

from ..e2e.serve import ServeProcess

pytestmark = pytest.mark.e2e

LEASE_S = 2  # a killed node's work is taken over after this (plus a renewal period)
DELIVERY_CONCURRENCY = 32
# Generous bounds for a shared 2-core machine; the conditions are polled, not slept on.
BURST_S = 240.0
ON_TIME_MS = 1500


def until(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout_s} s: {what}")


@pytest.fixture
def url(pg_databases: Any) -> str:
    return str(pg_databases.new())


@pytest.fixture
def nodes(url: str) -> Iterator[list[ServeProcess]]:
    options = {
        "node_lease_s": str(LEASE_S),
        "delivery_concurrency": str(DELIVERY_CONCURRENCY),
        "rate_limit_per_minute": "0",
        "log_level": "warning",
    }
    started: list[ServeProcess] = []
    try:
        started.append(ServeProcess(url, **options))  # the first one creates the first key
        started += [ServeProcess(url, **options) for _ in range(2)]
        yield started
    finally:
        for node in started:
            if node.process.poll() is None:
                node.stop()


def statuses(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT status, COUNT(*) FROM executions GROUP BY status").fetchall()
    return {str(status): int(count) for status, count in rows}


def node_ids(url: str) -> dict[int, str]:
    with psycopg.connect(url) as conn:
        return {int(pid): str(i) for i, pid in conn.execute("SELECT id, pid FROM nodes")}


def create_burst(url: str, name: str, count: int, callback: str, lead_s: float) -> int:
    """`count` one-time cues due at one instant `lead_s` from now, written in one
    transaction by the cue rules of an offline instance (the nodes hear of them by
    `NOTIFY` when it commits); the instant, in epoch ms."""

    async def create() -> int:
        lite = CueApiLite(Settings(db=url))
        await lite.open_offline()
        try:
            key = await lite.accounts.mint_key(f"{name}@example.com")
            due_ms = (time.time_ns() // 1_000_000 // 1000 + int(lead_s)) * 1000
            at = datetime.fromtimestamp(due_ms / 1000, UTC).isoformat()
            now_ms = time.time_ns() // 1_000_000
            cues = [
                new_cue(key.user.id, read_cue_body({
                    "name": f"{name}-{n}", "schedule": {"type": "once", "at": at},
                    "callback": {"url": callback}, "payload": {"n": n},
                }, 1024, CueCreate), lite.policy, now_ms)
                for n in range(count)
            ]  # fmt: skip
            await lite.store.transact(lambda tx: [insert_cue(tx, cue, None) for cue in cues])
            assert time.time_ns() // 1_000_000 < due_ms - 1000, "the burst was not made in time"
            return due_ms
        finally:
            await lite.close_offline()

    return asyncio.run(create())


@pytest.mark.timeout(BURST_S + 60)
def test_a_burst_due_at_one_instant_is_sent_once_per_execution_by_every_node(
    url: str, nodes: list[ServeProcess]
) -> None:
    with WebhookReceiver() as receiver:
        create_burst(url, "burst", 5000, f"{receiver.url}/hook", lead_s=15)
        until(lambda: statuses(url).get("success", 0) >= 5000, BURST_S, "5,000 delivered")
        sent = collections.Counter(h.json()["execution_id"] for h in receiver.received)
    assert len(sent) == 5000
    assert set(sent.values()) == {1}  # exactly once per execution
    assert statuses(url) == {"success": 5000}
    with psycopg.connect(url) as conn:
        owners = conn.execute("SELECT owner, COUNT(*) FROM executions GROUP BY owner")
        shares = dict(owners.fetchall())
    assert set(shares) == set(node_ids(url).values()), shares  # every node took part


@pytest.mark.timeout(BURST_S + 60)
def test_a_node_killed_mid_burst_loses_no_execution_and_leaves_none_stuck(
    url: str, nodes: list[ServeProcess]
) -> None:
    with WebhookReceiver() as receiver:
        create_burst(url, "burst", 2000, f"{receiver.url}/hook", lead_s=10)
        until(lambda: len(receiver.received) >= 300, BURST_S, "the burst under way")
        killed = nodes[2]
        killed_id = node_ids(url)[killed.process.pid]
        killed.kill()
        # The survivors take its work over once its lease has run out.
        until(lambda: statuses(url).get("success", 0) >= 2000, BURST_S, "2,000 delivered")
        sent = collections.Counter(h.json()["execution_id"] for h in receiver.received)
    assert statuses(url) == {"success": 2000}  # none lost, none stuck
    assert len(sent) == 2000
    # Only attempts in flight on the killed node are sent again (at least once).
    assert set(sent.values()) <= {1, 2}
    assert sum(1 for times in sent.values() if times > 1) <= DELIVERY_CONCURRENCY
    assert killed_id not in node_ids(url).values()  # removed by a survivor


def test_a_cue_created_on_one_node_is_fired_on_time_by_another(
    url: str, nodes: list[ServeProcess]
) -> None:
    creator = nodes[0]
    headers = {"Authorization": f"Bearer {creator.api_key}"}
    ids = node_ids(url)
    arrived_ms: list[int] = []

    def respond(_hook: Any) -> tuple[int, Any]:
        arrived_ms.append(time.time_ns() // 1_000_000)
        return 200, {}

    with WebhookReceiver(respond) as receiver, httpx.Client(headers=headers) as api:
        due_ms = (time.time_ns() // 1_000_000 // 1000 + 3) * 1000
        at = datetime.fromtimestamp(due_ms / 1000, UTC).isoformat()
        created = api.post(
            f"{creator.base_url}/v1/cues",
            json={"name": "soon", "schedule": {"type": "once", "at": at},
                  "callback": {"url": f"{receiver.url}/soon"}},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        creator.process.send_signal(signal.SIGSTOP)  # the creator can fire nothing now
        try:
            receiver.wait_for(1, timeout=30)
        finally:
            creator.process.send_signal(signal.SIGCONT)
        late_ms = arrived_ms[0] - due_ms
        assert 0 <= late_ms < ON_TIME_MS, late_ms
        history = api.get(
            f"{nodes[1].base_url}/v1/executions", params={"cue_id": created.json()["id"]}
        ).json()
        assert [e["triggered_by"] for e in history["executions"]] == ["schedule"]
    with psycopg.connect(url) as conn:
        [(owner,)] = conn.execute("SELECT owner FROM executions").fetchall()
    assert owner in {ids[nodes[1].process.pid], ids[nodes[2].process.pid]}


def test_fifty_concurrent_claims_across_nodes_have_exactly_one_winner(
    nodes: list[ServeProcess],
) -> None:
    headers = {"Authorization": f"Bearer {nodes[0].api_key}"}
    with httpx.Client(base_url=nodes[0].base_url, headers=headers) as api:
        cue = api.post("/v1/cues", json={
            "name": "work", "schedule": {"type": "recurring", "cron": "0 0 1 1 *"},
            "transport": "worker", "payload": {"task": "sync"},
        }).json()  # fmt: skip
        execution_id = api.post(f"/v1/cues/{cue['id']}/fire").json()["id"]

    def claim(n: int) -> int:
        node = nodes[n % len(nodes)]
        with httpx.Client(base_url=node.base_url, headers=headers) as client:
            response = client.post(
                f"/v1/executions/{execution_id}/claim", json={"worker_id": f"w{n}"}
            )
            return response.status_code

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        codes = sorted(pool.map(claim, range(50)))
    assert codes == [200] + [409] * 49
