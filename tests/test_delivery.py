"""Scheduled fires and webhook delivery, driven by the manual clock (no sleeping)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cueapi import verify_webhook
from hypothesis import given, settings
from hypothesis import strategies as st

from cueapi_lite import CueApiLite, ManualClock, Settings, firing
from cueapi_lite.scheduler import RETRY_HANDLER_AFTER_MS
from cueapi_lite.services.accounts import NewKey
from cueapi_lite.webhooks import WebhookRequest, WebhookResponse, canonical_body, execution_body

from .conftest import FakeDeliverer, status, timeout, webhook_cue
from .helpers import iso_at


async def every_minute_cue(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = webhook_cue(schedule={"type": "recurring", "cron": "* * * * *"}, **fields)
    response = await api.post("/v1/cues", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def next_fire_ms(lite: CueApiLite, cue: dict[str, Any]) -> int:
    """The cue's next fire instant, as stored."""
    [stored] = await lite.store.cues.get_many([cue["id"]])
    assert stored.next_fire_at_ms is not None
    return stored.next_fire_at_ms


async def to_next_fire(clock: ManualClock, lite: CueApiLite, cue: dict[str, Any]) -> None:
    """Advance the clock to the cue's next fire and let everything due run."""
    clock.advance((await next_fire_ms(lite, cue) - clock.now_ms()) / 1000)
    await lite.settle()


async def executions(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await api.get("/v1/executions", params=params)
    assert response.status_code == 200
    return list(response.json()["executions"])


async def test_a_due_cue_delivers_a_signed_webhook_the_sdk_accepts(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer,
    user: NewKey,
) -> None:  # fmt: skip
    cue = await every_minute_cue(api, payload={"task": "report", "name": "Zoë", "n": 1.5})
    await to_next_fire(clock, lite, cue)
    assert len(deliverer.requests) == 1
    request = deliverer.requests[0]
    [execution] = await executions(api, cue_id=cue["id"])
    headers = request.headers
    assert request.method == "POST"
    assert request.url == "http://127.0.0.1:9999/hook"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "CueAPI/1.0"
    assert headers["X-CueAPI-Cue-Id"] == cue["id"]
    assert headers["X-CueAPI-Execution-Id"] == execution["id"]
    assert headers["X-CueAPI-Scheduled-For"] == execution["scheduled_for"]
    assert headers["X-CueAPI-Attempt"] == "1"
    assert headers["X-CueAPI-Timestamp"] == str(clock.now_ms() // 1000)
    assert request.body is not None
    body = json.loads(request.body)
    assert body == {
        "execution_id": execution["id"],
        "cue_id": cue["id"],
        "name": cue["name"],
        "scheduled_for": execution["scheduled_for"],
        "attempt": 1,
        "payload": {"task": "report", "name": "Zoë", "n": 1.5},
    }
    secret = user.user.webhook_secret
    for form in (request.body, request.body.decode(), body):
        assert verify_webhook(
            form, headers["X-CueAPI-Signature"], secret, headers["X-CueAPI-Timestamp"]
        )
    assert not verify_webhook(
        request.body,
        headers["X-CueAPI-Signature"],
        "whsec_" + "0" * 64,
        headers["X-CueAPI-Timestamp"],
    )
    assert execution["status"] == "success"
    assert execution["http_status"] == 200
    assert execution["attempts"] == 1
    assert execution["triggered_by"] == "schedule"
    assert execution["delivered_at"] is not None
    detail = (await api.get(f"/v1/cues/{cue['id']}")).json()
    assert detail["run_count"] == 1
    assert detail["fired_count"] == 1
    assert detail["last_run"] == execution["scheduled_for"]


# Any text a JSON body can carry, lone surrogates included.
ANY_TEXT = st.text(st.characters(blacklist_categories=()))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None, database=None)
@given(
    ids=st.tuples(ANY_TEXT, ANY_TEXT, ANY_TEXT, ANY_TEXT),
    attempt=st.integers(min_value=1, max_value=10**6),
    payload=st.dictionaries(ANY_TEXT, JSON, max_size=6),
)
def test_an_execution_body_is_the_canonical_json_the_sdk_rebuilds(
    ids: tuple[str, str, str, str], attempt: int, payload: dict[str, Any]
) -> None:
    """The body written field by field is byte for byte what `json.dumps(sort_keys=True)`
    makes of the same fields, which is what `verify_webhook` signs again."""
    execution_id, cue_id, name, scheduled_for = ids
    fields = {
        "execution_id": execution_id, "cue_id": cue_id, "name": name,
        "scheduled_for": scheduled_for, "attempt": attempt, "payload": payload,
    }  # fmt: skip
    body = execution_body(execution_id, cue_id, name, scheduled_for, attempt, payload)
    assert body == canonical_body(fields) == json.dumps(fields, sort_keys=True).encode()


async def test_nothing_fires_before_its_time(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    cue = await every_minute_cue(api)
    due = await next_fire_ms(lite, cue)
    clock.advance((due - clock.now_ms() - 1) / 1000)
    await lite.settle()
    assert deliverer.requests == []
    assert await executions(api, cue_id=cue["id"]) == []


async def test_each_occurrence_fires_once_and_next_run_moves_on(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    cue = await every_minute_cue(api)
    for _ in range(3):
        await to_next_fire(clock, lite, cue)
        await lite.settle()  # settling twice changes nothing
    found = await executions(api, cue_id=cue["id"])
    assert len(found) == 3
    assert len({e["scheduled_for"] for e in found}) == 3
    assert len(deliverer.requests) == 3
    detail = (await api.get(f"/v1/cues/{cue['id']}")).json()
    assert detail["next_run"] > found[0]["scheduled_for"]


async def test_runs_answered_together_are_each_counted_on_their_cues(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    # Answers that arrive together are written together: three runs of one cue (fired by
    # hand at once) and one run each of two others, all in one batch.
    busy = await every_minute_cue(api, name="busy")
    others = [await every_minute_cue(api, name=f"other-{n}") for n in range(2)]
    fires = [api.post(f"/v1/cues/{busy['id']}/fire", json={}) for _ in range(3)]
    fires += [api.post(f"/v1/cues/{cue['id']}/fire", json={}) for cue in others]
    assert [r.status_code for r in await asyncio.gather(*fires)] == [200] * 5
    await lite.settle()
    assert len(deliverer.requests) == 5
    assert {e["status"] for e in await executions(api)} == {"success"}
    counted = {c["name"]: (c["run_count"], c["fired_count"], c["status"])
               for c in (await api.get("/v1/cues")).json()["cues"]}  # fmt: skip
    assert counted == {
        "busy": (3, 3, "active"), "other-0": (1, 1, "active"), "other-1": (1, 1, "active"),
    }  # fmt: skip


async def test_failed_attempts_retry_on_the_backoff_schedule_then_fail(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    deliverer.answer(status(503, {"error": "busy"}))
    response = await api.post(
        "/v1/cues",
        json=webhook_cue(
            schedule={"type": "once", "at": iso_at(clock.now_ms() + 10_000)},
            retry={"max_attempts": 3, "backoff_minutes": [1, 5]},
        ),
    )
    cue = response.json()
    clock.advance(10)
    await lite.settle()
    [execution] = await executions(api, cue_id=cue["id"])
    assert execution["status"] == "retrying"
    assert execution["attempts"] == 1
    assert execution["http_status"] == 503
    assert execution["error_message"] == "Webhook endpoint returned 503"
    assert execution["response_body"] == '{"error": "busy"}'
    first_retry = execution["next_retry"]
    assert first_retry == iso_at(clock.now_ms() + 60_000)

    clock.advance(59)
    await lite.settle()
    assert len(deliverer.requests) == 1  # not yet
    clock.advance(1)
    await lite.settle()
    assert len(deliverer.requests) == 2
    assert deliverer.requests[1].headers["X-CueAPI-Attempt"] == "2"
    # Each attempt is signed anew with a fresh timestamp (H26).
    assert (
        deliverer.requests[1].headers["X-CueAPI-Timestamp"]
        != deliverer.requests[0].headers["X-CueAPI-Timestamp"]
    )
    [execution] = await executions(api, cue_id=cue["id"])
    assert execution["status"] == "retrying"
    assert execution["next_retry"] == iso_at(clock.now_ms() + 5 * 60_000)

    clock.advance(5 * 60)
    await lite.settle()
    [execution] = await executions(api, cue_id=cue["id"])
    assert execution["status"] == "failed"
    assert execution["attempts"] == 3
    assert execution["next_retry"] is None
    assert len(deliverer.requests) == 3
    detail = (await api.get(f"/v1/cues/{cue['id']}")).json()
    assert detail["status"] == "failed"  # a once cue whose only run failed
    assert detail["run_count"] == 1


async def test_timeout_then_success_on_retry(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    deliverer.answer(timeout(), status(204))
    cue = await every_minute_cue(api, retry={"max_attempts": 2, "backoff_minutes": [1]})
    await to_next_fire(clock, lite, cue)
    [execution] = await executions(api, cue_id=cue["id"])
    assert execution["status"] == "retrying"
    assert execution["http_status"] is None
    assert execution["error_message"] == "Timed out after 30s"
    clock.advance(60)
    await lite.settle()
    found = await executions(api, cue_id=cue["id"])
    retried = next(e for e in found if e["id"] == execution["id"])
    assert retried["status"] == "success"
    assert retried["attempts"] == 2
    assert retried["http_status"] == 204
    assert retried["error_message"] is None


async def test_redirects_are_failed_attempts(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    deliverer.answer(status(302))
    cue = await every_minute_cue(api, retry={"max_attempts": 1, "backoff_minutes": [1]})
    await to_next_fire(clock, lite, cue)
    [execution] = await executions(api, cue_id=cue["id"])
    assert execution["status"] == "failed"
    assert "302" in execution["error_message"]


async def test_the_response_body_becomes_the_outcome(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    deliverer.answer(status(200, {"success": True, "result": "sent 3", "external_id": "b-1",
                                  "result_type": "x" * 101}))  # fmt: skip
    cue = await every_minute_cue(api)
    await to_next_fire(clock, lite, cue)
    [execution] = await executions(api, cue_id=cue["id"])
    assert execution["outcome_state"] == "reported_success"
    assert execution["outcome_success"] is True
    assert execution["outcome"]["result"] == "sent 3"
    assert execution["outcome"]["external_id"] == "b-1"
    assert execution["outcome"]["result_type"] is None  # too long: dropped, not fatal
    late = await api.post(f"/v1/executions/{execution['id']}/outcome", json={"success": False})
    assert late.status_code == 409


async def test_readme_style_outcome_word_is_understood(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    deliverer.answer(status(200, {"outcome": "failure"}))
    cue = await every_minute_cue(api)
    await to_next_fire(clock, lite, cue)
    [execution] = await executions(api, cue_id=cue["id"])
    assert execution["status"] == "success"  # delivery worked
    assert execution["outcome_state"] == "reported_failure"  # the work did not
    assert execution["outcome_success"] is False


async def test_a_2xx_without_outcome_leaves_the_outcome_open(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    deliverer.answer(status(200, ["not", "an", "object"]))
    cue = await every_minute_cue(api)
    await to_next_fire(clock, lite, cue)
    [execution] = await executions(api, cue_id=cue["id"])
    assert execution["outcome"] is None
    assert execution["outcome_state"] is None
    assert execution["outcome_deadline"] is not None
    reported = await api.post(f"/v1/executions/{execution['id']}/outcome", json={"success": True})
    assert reported.status_code == 200
    assert reported.json()["outcome_state"] == "reported_success"


async def test_get_callbacks_carry_no_body_and_custom_headers_are_sent(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    cue = await every_minute_cue(
        api, callback={"url": "http://127.0.0.1:9999/get", "method": "get",
                       "headers": {"X-Team": "ops", "User-Agent": "mine"}},
    )  # fmt: skip
    await to_next_fire(clock, lite, cue)
    [request] = deliverer.requests
    assert request.method == "GET"
    assert request.body is None
    assert request.headers["X-Team"] == "ops"
    assert request.headers["User-Agent"] == "mine"


async def test_on_failure_pause_pauses_a_recurring_cue(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    deliverer.answer(status(500))
    cue = await every_minute_cue(
        api, retry={"max_attempts": 1, "backoff_minutes": [1]}, on_failure={"pause": True}
    )
    await to_next_fire(clock, lite, cue)
    detail = (await api.get(f"/v1/cues/{cue['id']}")).json()
    assert detail["status"] == "paused"
    assert detail["next_run"] is None
    clock.advance(600)
    await lite.settle()
    assert len(deliverer.requests) == 1


async def test_paused_cues_do_not_fire_and_resumed_ones_do(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    cue = await every_minute_cue(api)
    await api.patch(f"/v1/cues/{cue['id']}", json={"status": "paused"})
    clock.advance(300)
    await lite.settle()
    assert deliverer.requests == []
    await api.patch(f"/v1/cues/{cue['id']}", json={"status": "active"})
    await to_next_fire(clock, lite, cue)
    assert len(deliverer.requests) == 1
    [execution] = await executions(api, cue_id=cue["id"])
    assert execution["triggered_by"] == "schedule"


async def test_changing_the_schedule_replaces_the_pending_fire(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    cue = await every_minute_cue(api)
    await api.patch(f"/v1/cues/{cue['id']}", json={"schedule": {"cron": "0 0 1 1 *"}})
    clock.advance(600)
    await lite.settle()
    assert deliverer.requests == []


async def test_a_deleted_cue_stops_retrying(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    deliverer.answer(status(503))
    cue = await every_minute_cue(api)
    await to_next_fire(clock, lite, cue)
    assert len(deliverer.requests) == 1
    await api.delete(f"/v1/cues/{cue['id']}")
    clock.advance(3600)
    await lite.settle()
    assert len(deliverer.requests) == 1


async def test_worker_cues_are_never_pushed_to_their_callback(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    response = await api.post(
        "/v1/cues",
        json=webhook_cue(transport="worker", schedule={"type": "recurring", "cron": "* * * * *"}),
    )
    cue = response.json()
    await to_next_fire(clock, lite, cue)
    assert deliverer.requests == []
    [execution] = await executions(api, cue_id=cue["id"])
    assert execution["status"] == "pending"


async def burst(api: httpx.AsyncClient, burst_at: int, count: int, **fields: Any) -> None:
    """`count` one-time cues named burst-N due at `burst_at` (with `fields`)."""
    once = {"type": "once", "at": iso_at(burst_at)}
    for n in range(count):
        await api.post("/v1/cues", json=webhook_cue(name=f"burst-{n}", schedule=once, **fields))


async def burst_and_unrelated(
    api: httpx.AsyncClient, burst_at: int, count: int, unrelated_after_ms: int, **fields: Any
) -> None:
    """`burst`, and one cue named "unrelated" due `unrelated_after_ms` later."""
    await burst(api, burst_at, count, **fields)
    later = {"type": "once", "at": iso_at(burst_at + unrelated_after_ms)}
    await api.post("/v1/cues", json=webhook_cue(name="unrelated", schedule=later, **fields))


@contextlib.asynccontextmanager
async def own_server(
    tmp_path: Path, clock: ManualClock, deliverer: FakeDeliverer | None, **settings: Any
) -> AsyncIterator[tuple[CueApiLite, httpx.AsyncClient]]:
    """A started server with settings of the test's own, and a user's client (`deliverer`
    None: the real HTTP client)."""
    lite = CueApiLite(
        Settings(db=str(tmp_path / "own.db"), **settings), clock=clock, deliverer=deliverer
    )
    await lite.start()
    try:
        key = await lite.accounts.mint_key("alice@example.com")
        async with lite.client(key.api_key) as api:
            yield lite, api
    finally:
        await lite.aclose()


async def test_a_cue_due_during_a_burst_is_not_sent_after_the_whole_burst(
    tmp_path: Path, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    """Attempts wait in one lane per instant, taken in turn: with one worker, the lone
    attempt of another instant goes out among the first, not after the burst's five."""
    async with own_server(tmp_path, clock, deliverer, delivery_concurrency=1) as (lite, api):
        await burst_and_unrelated(api, clock.now_ms() + 60_000, 5, 1)
        clock.advance(60)
        await lite.scheduler.tick(clock.now_ms())  # the burst fires: its attempts wait
        clock.advance(0.001)
        await lite.settle()  # the unrelated cue fires behind them, and all are sent
    names = [json.loads(request.body or b"{}")["name"] for request in deliverer.requests]
    assert len(names) == 6
    assert names.index("unrelated") <= 2  # one queue would send it last


async def fill_the_pool_then_fire_unrelated(
    lite: CueApiLite, clock: ManualClock, seen: Callable[[int], Awaitable[None]], workers: int
) -> None:
    """The burst of `burst_and_unrelated` falls due and its requests take all `workers`;
    then the unrelated cue falls due, and one more request arrives."""
    clock.advance(60)
    await lite.scheduler.tick(clock.now_ms())
    await seen(workers)  # every worker holds a burst request
    clock.advance(0.001)
    await lite.scheduler.tick(clock.now_ms())
    await seen(workers + 1)


class GatedDeliverer(FakeDeliverer):
    """Holds every request whose body names a burst cue until `gate` opens; `seen(n)`
    waits until n requests have arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self._arrived = asyncio.Condition()

    async def send(self, request: WebhookRequest) -> WebhookResponse:
        async with self._arrived:
            self._arrived.notify_all()
        response = await super().send(request)
        if b'"name": "burst-' in (request.body or b""):
            await self.gate.wait()
        return response

    async def seen(self, count: int) -> None:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.requests) >= count), 5)


async def test_a_cue_due_during_a_burst_is_sent_while_every_worker_is_busy_with_it(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Two workers, both held by the burst's attempts: the attempt of a cue due a moment
    later is sent at once, beside them, not when one of them ends."""
    deliverer = GatedDeliverer()
    async with own_server(tmp_path, clock, deliverer, delivery_concurrency=2) as (lite, api):
        try:
            await burst_and_unrelated(api, clock.now_ms() + 60_000, 6, 1)
            await fill_the_pool_then_fire_unrelated(lite, clock, deliverer.seen, 2)
            names = [json.loads(r.body or b"{}")["name"] for r in deliverer.requests]
            assert names[2] == "unrelated"
            assert len(names) == 3  # the burst's other four still wait for a worker
            deliverer.gate.set()
            await lite.settle()
            assert len(deliverer.requests) == 7
        finally:
            deliverer.gate.set()


class HoldingReceiver:
    """A receiver on a real socket that holds every request of a burst cue until `gate`
    opens and answers any other at once; `seen(n)` waits until n requests arrived."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.gate = asyncio.Event()
        self._arrived = asyncio.Condition()
        self.url = ""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))  # fmt: skip
                name = json.loads(await reader.readexactly(length))["name"]
                async with self._arrived:
                    self.names.append(name)
                    self._arrived.notify_all()
                if name.startswith("burst-"):
                    await self.gate.wait()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        writer.close()

    async def seen(self, count: int) -> None:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.names) >= count), 10)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[HoldingReceiver]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
        try:
            yield self
        finally:
            self.gate.set()
            server.close()


async def test_over_http_a_cue_due_during_a_burst_does_not_wait_for_a_connection(
    tmp_path: Path, clock: ManualClock
) -> None:
    """The same with the real HTTP client and receiver: while every worker of the pool
    (ten) holds a request the receiver has not answered, the attempt started beside them
    reaches the receiver; the HTTP client has no smaller limit of its own to wait at."""
    async with (
        HoldingReceiver().running() as receiver,
        own_server(tmp_path, clock, None, delivery_concurrency=10) as (lite, api),
    ):
        callback = {"url": receiver.url}
        await burst_and_unrelated(api, clock.now_ms() + 60_000, 12, 1, callback=callback)
        await fill_the_pool_then_fire_unrelated(lite, clock, receiver.seen, 10)
        assert receiver.names[10] == "unrelated"
        receiver.gate.set()
        await lite.settle()
        assert len(receiver.names) == 13


async def test_a_bursts_own_later_slices_wait_for_the_pool(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only another instant's attempt starts beside a busy pool: the burst's own attempts
    of later slices wait for its workers, so at most the pool's attempts are in flight."""
    monkeypatch.setattr(firing, "FIRE_SLICE", 2)
    deliverer = GatedDeliverer()
    async with own_server(tmp_path, clock, deliverer, delivery_concurrency=2) as (lite, api):
        try:
            await burst(api, clock.now_ms() + 60_000, 6)
            clock.advance(60)
            await lite.scheduler.tick(clock.now_ms())  # three slices, the first two sent
            await deliverer.seen(2)
            await lite.firing.drain()  # the later slices are written
            assert (lite.delivery.in_flight, lite.delivery.queued) == (2, 4)
            deliverer.gate.set()
            await lite.settle()
            assert len(deliverer.requests) == 6
        finally:
            deliverer.gate.set()


async def test_a_cue_due_while_a_burst_is_written_fires_at_its_time(
    tmp_path: Path, clock: ManualClock, deliverer: FakeDeliverer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst's first slice is written when it falls due, the rest beside the
    scheduler's loop: a cue due half a second later fires at its time while the burst's
    later slices still wait for the writer (here: slices of one, held until released)."""
    monkeypatch.setattr(firing, "FIRE_SLICE", 1)
    async with own_server(tmp_path, clock, deliverer) as (lite, api):
        await burst_and_unrelated(api, clock.now_ms() + 60_000, 3, 500)
        transact = lite.store.transact
        held = asyncio.Event()

        async def later_slices_held(work: Any, urgent: bool = False) -> Any:
            if not urgent:  # a burst's later slices, and attempts' results
                await held.wait()
            return await transact(work, urgent)

        def fired() -> list[str]:
            rows = lite.store.db.fetchall(
                "SELECT c.name FROM executions e JOIN cues c ON c.id = e.cue_id ORDER BY e.rowid"
            )
            return [row[0] for row in rows]

        lite.store.transact = later_slices_held  # type: ignore[method-assign]
        try:
            clock.advance(60)
            await asyncio.wait_for(lite.scheduler.tick(clock.now_ms()), 10)
            assert fired() == ["burst-0"]
            clock.advance(0.5)
            await asyncio.wait_for(lite.scheduler.tick(clock.now_ms()), 10)
            assert fired() == ["burst-0", "unrelated"]
        finally:
            held.set()
        await lite.settle()
        assert fired() == ["burst-0", "unrelated", "burst-1", "burst-2"]
    assert len(deliverer.requests) == 4


class WatchingDeliverer(FakeDeliverer):
    """Notes, as each request goes out, how many writes the server had committed and
    what the execution's row said."""

    def __init__(self) -> None:
        super().__init__()
        self.lite: CueApiLite | None = None
        self.seen_at_send: list[tuple[int, str, int, int | None]] = []

    async def send(self, request: WebhookRequest) -> WebhookResponse:
        assert self.lite is not None
        row = await self.lite.store.executions.get_any(request.headers["X-CueAPI-Execution-Id"])
        assert row is not None
        self.seen_at_send.append(
            (self.lite.store.db.writer.operations, row.status, row.attempts, row.started_at_ms)
        )
        return await super().send(request)


async def test_a_fire_with_a_free_worker_sends_after_one_write(
    tmp_path: Path, clock: ManualClock
) -> None:
    """The execution is written `delivering` (attempt 1, started at its fire) in its
    fire's own transaction, so the request goes out after that one write rather than
    after a second one that begins the attempt."""
    deliverer = WatchingDeliverer()
    async with own_server(tmp_path, clock, deliverer) as (lite, api):
        deliverer.lite = lite
        once = {"type": "once", "at": iso_at(clock.now_ms() + 60_000)}
        await api.post("/v1/cues", json=webhook_cue(name="solo", schedule=once))
        clock.advance(60)
        writes_before = lite.store.db.writer.operations
        await lite.settle()
        [(writes, status, attempts, started_ms)] = deliverer.seen_at_send
        assert (writes - writes_before, status, attempts) == (1, "delivering", 1)
        assert started_ms == clock.now_ms()
        [execution] = await executions(api)
    assert (execution["status"], execution["attempts"]) == ("success", 1)


async def test_an_attempt_waiting_for_a_worker_stays_pending_until_one_takes_it(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Only attempts with a worker free at their fire begin with it: with two workers,
    the third of three cues due together reads `pending` (no attempt, no start) until a
    worker is free, and is then sent as attempt 1."""
    deliverer = GatedDeliverer()
    async with own_server(tmp_path, clock, deliverer, delivery_concurrency=2) as (lite, api):
        try:
            await burst(api, clock.now_ms() + 60_000, 3)
            clock.advance(60)
            await lite.scheduler.tick(clock.now_ms())
            await deliverer.seen(2)
            rows = sorted((e["status"], e["attempts"], e["started_at"] is None)
                          for e in await executions(api))  # fmt: skip
            assert rows == [("delivering", 1, False)] * 2 + [("pending", 0, True)]
            deliverer.gate.set()
            await lite.settle()
        finally:
            deliverer.gate.set()
        done = [(e["status"], e["attempts"]) for e in await executions(api)]
    assert done == [("success", 1)] * 3
    assert sorted(r.headers["X-CueAPI-Attempt"] for r in deliverer.requests) == ["1"] * 3


async def test_a_worker_reserved_by_a_fire_that_was_not_written_is_given_back(
    tmp_path: Path, clock: ManualClock, deliverer: FakeDeliverer
) -> None:
    """One worker. The first fire's write fails and the second loses its compare-and-set
    (the cue moved meanwhile): each time the worker its attempt had reserved is free
    again, and the cue is sent once it is fired for good."""
    async with own_server(tmp_path, clock, deliverer, delivery_concurrency=1) as (lite, api):
        once = {"type": "once", "at": iso_at(clock.now_ms() + 60_000)}
        cue = (await api.post("/v1/cues", json=webhook_cue(name="solo", schedule=once))).json()
        transact = lite.store.transact
        calls = 0

        async def failing_then_racing(work: Any, urgent: bool = False) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("disk I/O error")
            if calls == 2:  # its owner moves it a second later just before
                later = {"type": "once", "at": iso_at(clock.now_ms() + 1000)}
                moved = await api.patch(f"/v1/cues/{cue['id']}", json={"schedule": later})
                assert moved.status_code == 200, moved.text
            return await transact(work, urgent)

        lite.store.transact = failing_then_racing  # type: ignore[method-assign]
        clock.advance(60)
        await lite.scheduler.tick(clock.now_ms())  # the write fails: tried again in 1 s
        assert (lite.delivery.in_flight, deliverer.requests) == (0, [])
        clock.advance(RETRY_HANDLER_AFTER_MS / 1000)
        await lite.scheduler.tick(clock.now_ms())  # the compare-and-set is lost
        assert (lite.delivery.in_flight, deliverer.requests) == (0, [])
        assert await executions(api) == []
        clock.advance(1)
        await lite.settle()
        [execution] = await executions(api)
    assert (execution["status"], execution["attempts"]) == ("success", 1)
    assert len(deliverer.requests) == 1


async def test_a_bursts_later_slice_that_could_not_be_written_is_fired_a_moment_later(
    tmp_path: Path, clock: ManualClock, deliverer: FakeDeliverer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(firing, "FIRE_SLICE", 1)
    async with own_server(tmp_path, clock, deliverer) as (lite, api):
        await burst(api, clock.now_ms() + 60_000, 2)
        transact = lite.store.transact
        failures = 1

        async def second_slice_fails_once(work: Any, urgent: bool = False) -> Any:
            nonlocal failures
            if not urgent and failures:
                failures -= 1
                raise RuntimeError("disk I/O error")
            return await transact(work, urgent)

        lite.store.transact = second_slice_fails_once  # type: ignore[method-assign]
        clock.advance(60)
        await lite.settle()
        assert [e["status"] for e in await executions(api)] == ["success"]
        clock.advance(RETRY_HANDLER_AFTER_MS / 1000)
        await lite.settle()
        names = sorted(json.loads(r.body or b"{}")["name"] for r in deliverer.requests)
    assert names == ["burst-0", "burst-1"]


async def test_a_burst_is_written_in_smaller_slices_while_another_cue_is_about_to_fall_due(
    tmp_path: Path, clock: ManualClock, deliverer: FakeDeliverer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slices of 4, or of 2 while a deadline is less than a second away: a burst of 12
    alone is written in three fire transactions; with a cue due half a second after it,
    in five (its first slice, then four small ones)."""
    monkeypatch.setattr(firing, "FIRE_SLICE", 4)
    monkeypatch.setattr(firing, "FIRE_SLICE_NEAR", 2)
    fires = 0
    apply_fires = firing.apply_fires

    def counted(*args: Any) -> Any:
        nonlocal fires
        fires += 1
        return apply_fires(*args)

    monkeypatch.setattr(firing, "apply_fires", counted)
    writes = []
    for unrelated in (False, True):
        folder = tmp_path / ("with-unrelated" if unrelated else "alone")
        folder.mkdir()
        async with own_server(folder, clock, deliverer) as (lite, api):
            burst_at = clock.now_ms() + 60_000
            if unrelated:
                await burst_and_unrelated(api, burst_at, 12, 500)
            else:
                await burst(api, burst_at, 12)
            fires = 0
            clock.advance(60)
            await lite.scheduler.tick(clock.now_ms())
            await lite.firing.drain()
            writes.append(fires)
            clock.advance(1)
            await lite.settle()
            assert len(await executions(api, limit=100)) == 12 + unrelated
    assert writes == [3, 5]
