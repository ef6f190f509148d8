"""Several nodes on one PostgreSQL database, in one process with a manual clock: every
occurrence fired once, a stopped node's deliveries taken over, fire instants shared,
claims and alert sends atomic across nodes."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.cli import main
from cueapi_lite.models import Alert
from cueapi_lite.services.accounts import NewKey
from cueapi_lite.store import Tx
from cueapi_lite.store.postgres import PostgresStore

from ..conftest import FakeDeliverer, status
from ..helpers import iso_at, ms
from ..test_restart import HangingDeliverer
from ..test_workers import claim, fire, worker_cue
from .conftest import NODES

# Notifications cross a real connection: wait for them against a deadline, not a sleep.
ARRIVAL_S = 20.0


async def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + ARRIVAL_S
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {ARRIVAL_S} s: {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def alice(nodes: list[CueApiLite]) -> NewKey:
    return await nodes[0].accounts.mint_key("alice@example.com")


def sent(app: CueApiLite) -> list[str]:
    assert isinstance(app.deliverer, FakeDeliverer)
    return [r.headers["X-CueAPI-Execution-Id"] for r in app.deliverer.requests]


async def executions_of(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await api.get("/v1/executions", params={"limit": 100})
    assert response.status_code == 200
    return list(response.json()["executions"])


def to_next_hour(clock: ManualClock) -> None:
    clock.advance((3_600_000 - clock.now_ms() % 3_600_000) / 1000)


async def settle_all(apps: list[CueApiLite]) -> None:
    await asyncio.gather(*(app.settle() for app in apps))


async def hourly(api: httpx.AsyncClient, name: str, **fields: Any) -> dict[str, Any]:
    response = await api.post(
        "/v1/cues",
        json={"name": name, "schedule": {"type": "recurring", "cron": "0 * * * *"},
              "callback": {"url": "http://127.0.0.1:9/hook"}, **fields},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_every_node_plans_the_burst_and_each_occurrence_is_fired_and_sent_once(
    nodes: list[CueApiLite], alice: NewKey, clock: ManualClock
) -> None:
    before = [len(app.scheduler) for app in nodes]
    async with nodes[0].client(alice.api_key) as api:
        for n in range(60):
            await hourly(api, f"cue-{n}")
    # The other nodes learn every new fire instant from the commits that set them.
    for index in (1, 2):
        await eventually(
            lambda i=index: len(nodes[i].scheduler) >= before[i] + 60, f"node {index} heard"
        )
    to_next_hour(clock)
    await settle_all(nodes)
    clock.advance(1)  # cues another node held are looked at again (and found fired)
    await settle_all(nodes)
    async with nodes[1].client(alice.api_key) as api:
        stored = await executions_of(api)
    assert len(stored) == 60
    assert {(e["status"], e["triggered_by"]) for e in stored} == {("success", "schedule")}
    deliveries = collections.Counter(e for app in nodes for e in sent(app))
    assert sorted(deliveries) == sorted(e["id"] for e in stored)
    assert set(deliveries.values()) == {1}
    # Each execution is owned by the node that sent it (whose work a survivor adopts).
    with psycopg.connect(nodes[0].settings.db) as conn:
        owners = dict(conn.execute("SELECT id, owner FROM executions").fetchall())
    for app in nodes:
        assert app.store.nodes is not None
        assert {owners[e] for e in sent(app)} <= {app.store.nodes.node_id}


async def test_a_due_cue_another_node_is_firing_is_skipped_and_looked_at_again(
    nodes: list[CueApiLite], alice: NewKey, clock: ManualClock, cluster_settings: Settings
) -> None:
    async with nodes[0].client(alice.api_key) as api:
        cue = await hourly(api, "held")
    others, node = nodes[1:], nodes[0]
    for app in others:
        await app.aclose()
    taken, release = threading.Event(), threading.Event()

    def firing(tx: Tx) -> None:  # another node's fire, under way
        assert tx.take_due([cue["id"]]) == {cue["id"]}
        taken.set()
        release.wait(ARRIVAL_S)

    other = PostgresStore(cluster_settings.db)
    await asyncio.to_thread(other.open)
    holder = asyncio.create_task(other.transact(firing))
    try:
        await asyncio.to_thread(taken.wait, ARRIVAL_S)
        to_next_hour(clock)
        await node.settle()
        assert sent(node) == []  # skipped, not waited for
    finally:
        release.set()
        await holder
        await asyncio.to_thread(other.close)
    clock.advance(1)  # the other node wrote nothing (it failed): fired here
    await node.settle()
    async with node.client(alice.api_key) as api:
        [execution] = await executions_of(api)
    assert execution["cue_id"] == cue["id"]
    assert execution["triggered_by"] == "schedule"  # on time: within the grace
    assert sent(node) == [execution["id"]]


async def test_a_due_cue_whose_row_another_write_holds_is_fired_once_it_is_free(
    nodes: list[CueApiLite], alice: NewKey, clock: ManualClock, cluster_settings: Settings
) -> None:
    async with nodes[0].client(alice.api_key) as api:
        cue = await hourly(api, "busy")
    for app in nodes[1:]:
        await app.aclose()
    node = nodes[0]
    with psycopg.connect(cluster_settings.db) as conn:  # e.g. a run of the cue finishing
        conn.execute("SELECT id FROM cues WHERE id = %s FOR UPDATE", (cue["id"],))
        to_next_hour(clock)
        settling = asyncio.create_task(node.settle())
        await asyncio.sleep(0.2)  # the fire now waits for the row
        assert not settling.done()
    await settling  # released: fired without moving the clock
    assert len(sent(node)) == 1


async def test_a_node_whose_lease_ran_out_has_its_cut_off_attempt_sent_by_a_survivor(
    cluster_settings: Settings, clock: ManualClock
) -> None:
    # The first node never renews during the test; its attempt never answers.
    stuck = CueApiLite(
        cluster_settings.replace(node_lease_s=3600), clock=clock, deliverer=HangingDeliverer()
    )
    survivor = CueApiLite(cluster_settings, clock=clock, deliverer=FakeDeliverer())
    await stuck.start()
    await survivor.start()
    try:
        alice = await stuck.accounts.mint_key("alice@example.com")
        async with stuck.client(alice.api_key) as api:
            cue = await hourly(api, "cut-off")
            execution_id = (await api.post(f"/v1/cues/{cue['id']}/fire")).json()["id"]
        assert isinstance(stuck.deliverer, HangingDeliverer)
        await asyncio.wait_for(stuck.deliverer.sent.wait(), ARRIVAL_S)
        assert survivor.store.nodes is not None
        assert stuck.store.nodes is not None
        with psycopg.connect(cluster_settings.db, autocommit=True) as conn:
            conn.execute(
                "UPDATE nodes SET lease_expires_ms = 0 WHERE id = %s", (stuck.store.nodes.node_id,)
            )
        assert survivor.cluster is not None
        assert stuck.cluster is not None
        await survivor.cluster.tick()
        await survivor.settle()
        assert sent(survivor) == [execution_id]
        request = survivor.deliverer.requests[0]  # type: ignore[attr-defined]
        assert request.headers["X-CueAPI-Attempt"] == "1"  # the cut-off attempt, again
        async with survivor.client(alice.api_key) as api:
            stored = (await api.get(f"/v1/executions/{execution_id}")).json()
        assert (stored["status"], stored["attempts"]) == ("success", 1)
        # The stuck node finds its row gone at its next renewal and joins again.
        await stuck.cluster.tick()
        live = {n.id for n in await survivor.store.nodes.nodes() if n.alive}
        assert live == {stuck.store.nodes.node_id, survivor.store.nodes.node_id}
    finally:
        await stuck.aclose()
        await survivor.aclose()


async def test_a_node_that_stops_leaves_its_queued_deliveries_to_the_others(
    cluster_settings: Settings, nodes: list[CueApiLite], alice: NewKey, clock: ManualClock
) -> None:
    """The leaving node has one delivery worker: of the two cues due together, the first
    attempt begins with its fire and the second waits for the worker, still `pending`,
    when the node stops. The staying node sends the waiting one; the leaving one never
    sent it."""
    for app in nodes:  # the fixture's nodes stop: only the leaving node fires
        await app.aclose()
    leaving = CueApiLite(
        dataclasses.replace(cluster_settings, delivery_concurrency=1),
        clock=clock, deliverer=HangingDeliverer(),
    )  # fmt: skip
    staying = CueApiLite(cluster_settings, clock=clock, deliverer=FakeDeliverer())
    await leaving.start()
    try:
        async with leaving.client(alice.api_key) as api:
            await hourly(api, "in-flight")
            await hourly(api, "queued")
        to_next_hour(clock)
        await leaving.scheduler.tick(clock.now_ms())  # both fired; one sent, one waits
        assert isinstance(leaving.deliverer, HangingDeliverer)
        await asyncio.wait_for(leaving.deliverer.sent.wait(), ARRIVAL_S)
        async with leaving.client(alice.api_key) as api:
            rows = {e["id"]: e["status"] for e in await executions_of(api)}
        in_flight = sent(leaving)
        assert sorted(rows.values()) == ["delivering", "pending"]
        assert rows[in_flight[0]] == "delivering"
    finally:
        await leaving.aclose()
    await staying.start()
    try:
        await staying.settle()
        async with staying.client(alice.api_key) as api:
            after = await executions_of(api)
    finally:
        await staying.aclose()
    assert sent(leaving) == in_flight  # the waiting attempt was never sent by the leaver
    assert sorted(sent(staying)) == sorted(rows)  # both, the cut-off one again
    assert [e["status"] for e in after] == ["success", "success"]


async def test_a_cue_created_on_one_node_is_fired_by_another(
    nodes: list[CueApiLite], alice: NewKey, clock: ManualClock
) -> None:
    creator, firer = nodes[0], nodes[1]
    await nodes[2].aclose()
    before = len(firer.scheduler)
    async with creator.client(alice.api_key) as api:
        at = clock.now_ms() + 2000
        response = await api.post(
            "/v1/cues",
            json={"name": "soon", "schedule": {"type": "once", "at": iso_at(at)},
                  "callback": {"url": "http://127.0.0.1:9/hook"}},
        )  # fmt: skip
        assert response.status_code == 201, response.text
    await creator.aclose()  # the creator is gone before the cue is due
    await eventually(lambda: len(firer.scheduler) > before, "the fire instant reached node 1")
    clock.advance(2)
    await firer.settle()
    async with firer.client(alice.api_key) as api:
        [execution] = await executions_of(api)
    assert execution["triggered_by"] == "schedule"
    assert sent(firer) == [execution["id"]]


async def test_fifty_concurrent_claims_across_nodes_have_exactly_one_winner(
    nodes: list[CueApiLite], alice: NewKey
) -> None:
    clients = [app.client(alice.api_key) for app in nodes]
    try:
        cue = await worker_cue(clients[0])
        execution_id = await fire(clients[0], cue)
        responses = await asyncio.gather(
            *(claim(clients[n % NODES], execution_id, f"w{n}") for n in range(50))
        )
    finally:
        for client in clients:
            await client.aclose()
    assert sorted(r.status_code for r in responses) == [200] + [409] * 49


async def test_doctor_lists_the_nodes_and_whose_lease_ran_out(
    nodes: list[CueApiLite], cluster_settings: Settings
) -> None:
    ids = [app.store.nodes.node_id for app in nodes if app.store.nodes is not None]
    with psycopg.connect(cluster_settings.db, autocommit=True) as conn:
        conn.execute("UPDATE nodes SET lease_expires_ms = 0 WHERE id = %s", (ids[2],))
    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["doctor", "--db", cluster_settings.db]
    )
    lines = result.output.splitlines()
    assert any(line.startswith("✓ schema version: ") for line in lines), result.output
    [listed] = [line for line in lines if line.startswith("✓ nodes: 2 live: ")]
    assert all(f"{node_id} (pid " in listed for node_id in ids)
    assert listed.count("lease ran out") == 1


async def test_nodes_on_one_host_move_shared_deadlines_once_when_the_clock_is_set_back(
    nodes: list[CueApiLite], alice: NewKey, clock: ManualClock
) -> None:
    assert isinstance(nodes[0].deliverer, FakeDeliverer)
    nodes[0].deliverer.answer(status(503), status(200))
    for app in nodes[1:]:
        await app.aclose()  # the first node fires and fails the first attempt
    async with nodes[0].client(alice.api_key) as api:
        cue = await hourly(api, "retried", retry={"max_attempts": 2, "backoff_minutes": [5]})
        to_next_hour(clock)
        await nodes[0].settle()
        for app in nodes[1:]:
            await app.start()
        [before] = await executions_of(api)
        clock.jump(-3600)  # the host's clock is set back an hour: every node sees it
        await settle_all(nodes)
        [after] = await executions_of(api)
    assert before["status"] == after["status"] == "retrying"
    assert after["cue_id"] == cue["id"]
    retry_ms = [ms(e["next_retry"]) for e in (before, after)]
    assert retry_ms[1] - retry_ms[0] == -3600_000  # moved once, not once per node


async def test_nodes_asking_for_the_alert_outbox_at_once_each_get_other_rows(
    nodes: list[CueApiLite], alice: NewKey, clock: ManualClock
) -> None:
    async with nodes[0].client(alice.api_key) as api:
        cue = await hourly(api, "alerting")
    now_ms = clock.now_ms()
    alert = Alert("al1", alice.user.id, cue["id"], None, "outcome_timeout", "warning", "m", {},
                  None, now_ms)  # fmt: skip
    targets = [("webhook", f"http://127.0.0.1:9/alert/{n}") for n in range(60)]
    await nodes[0].store.transact(lambda tx: tx.insert_alert(alert, targets))
    taken = await asyncio.gather(*(app.store.alerts.outbox_due(now_ms, 25) for app in nodes))
    ids = [item.id for items in taken for item in items]
    assert len(ids) == len(set(ids)) == 60  # every row to one node, none to two


async def test_the_node_that_begins_an_attempt_owns_the_execution_from_then_on(
    nodes: list[CueApiLite], alice: NewKey
) -> None:
    assert isinstance(nodes[0].deliverer, FakeDeliverer)
    nodes[0].deliverer.answer(status(503))
    async with nodes[0].client(alice.api_key) as api:
        cue = await hourly(api, "moved", retry={"max_attempts": 3, "backoff_minutes": [5]})
        execution_id = (await api.post(f"/v1/cues/{cue['id']}/fire")).json()["id"]
        await nodes[0].settle()
        assert (await api.get(f"/v1/executions/{execution_id}")).json()["status"] == "retrying"
    sender = nodes[1].store
    assert sender.nodes is not None
    assert await sender.executions.begin_attempts([execution_id, execution_id], 0) == [2, None]
    with psycopg.connect(nodes[0].settings.db) as conn:
        [(owner,)] = conn.execute("SELECT owner FROM executions").fetchall()
    assert owner == sender.nodes.node_id


async def test_an_attempt_begun_with_its_fire_stays_with_its_live_node(
    cluster_settings: Settings, nodes: list[CueApiLite], alice: NewKey, clock: ManualClock
) -> None:
    """A scheduled fire writes its execution `delivering` when a worker is free: the row
    is the firing node's from that write on, so no other live node takes it over and
    sends it a second time while the first attempt is still out."""
    for app in nodes:
        await app.aclose()
    pair = [CueApiLite(cluster_settings, clock=clock, deliverer=HangingDeliverer())
            for _ in range(2)]  # fmt: skip
    for app in pair:
        await app.start()
    try:
        async with pair[0].client(alice.api_key) as api:
            await hourly(api, "long-running")
        to_next_hour(clock)
        await eventually(lambda: sum(map(len, map(sent, pair))) == 1, "one node sent it")
        [firer] = [app for app in pair if sent(app)]
        for app in pair:
            assert app.cluster is not None
            await app.cluster.tick()  # a takeover sweep on each node
        with psycopg.connect(cluster_settings.db) as conn:
            [row] = conn.execute("SELECT status, attempts, owner FROM executions").fetchall()
        assert firer.store.nodes is not None
        assert row == ("delivering", 1, firer.store.nodes.node_id)
        assert sum(map(len, map(sent, pair))) == 1
    finally:
        for app in pair:
            await app.aclose()
