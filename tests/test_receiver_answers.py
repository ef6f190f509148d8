"""Whatever a webhook receiver answers, the attempt ends in a recorded state: an answer
that cannot be stored is not an outcome (and the execution says so), and a restart never
sends the same attempt again and again."""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
import pytest

from cueapi_lite import CueApiLite, ManualClock, Settings, delivery
from cueapi_lite.services.accounts import NewKey
from cueapi_lite.store import AttemptResult
from cueapi_lite.webhooks import WebhookResponse

from .conftest import FakeDeliverer, webhook_cue
from .helpers import iso_at

DEEP = b'{"success": true, "metadata": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}"
HOSTILE = {
    "nan": b'{"success": true, "metadata": {"x": NaN}}',
    "infinity": b'{"success": true, "metadata": {"x": -Infinity}}',
    "overflow": b'{"success": true, "metadata": {"x": 1e400}}',
    "huge_integer": b'{"success": true, "metadata": {"x": ' + b"9" * 5000 + b"}}",
    "deep": DEEP,
    "surrogate": b'{"success": true, "result": "\\ud800"}',
    "surrogate_key": b'{"success": true, "metadata": {"\\udfff": 1}}',
    "broken": b'{"success": true,',
}


async def fire(api: httpx.AsyncClient) -> dict[str, Any]:
    cue = (await api.post("/v1/cues", json=webhook_cue())).json()
    fired = await api.post(f"/v1/cues/{cue['id']}/fire", json={})
    assert fired.status_code == 200
    return dict(fired.json())


@pytest.mark.parametrize("answer", list(HOSTILE.values()), ids=list(HOSTILE))
async def test_an_unstorable_2xx_answer_is_delivered_without_an_outcome_and_noted(
    api: httpx.AsyncClient, lite: CueApiLite, deliverer: FakeDeliverer, answer: bytes
) -> None:
    deliverer.answer(WebhookResponse(200, answer))
    fired = await fire(api)
    await lite.settle()
    response = await api.get(f"/v1/executions/{fired['id']}")
    assert response.status_code == 200
    execution = response.json()
    assert execution["status"] == "success"
    assert execution["outcome"] is None
    assert "not recorded as an outcome" in execution["error_message"]
    # Not wedged: a finished execution can be replayed, and lists still render.
    replay = await api.post(f"/v1/executions/{fired['id']}/replay", json={})
    assert replay.status_code == 200, replay.text
    assert (await api.get("/v1/executions")).status_code == 200


async def test_a_good_answer_still_records_its_outcome(
    api: httpx.AsyncClient, lite: CueApiLite, deliverer: FakeDeliverer
) -> None:
    deliverer.answer(WebhookResponse(200, b'{"success": true, "metadata": {"x": 1.5}}'))
    fired = await fire(api)
    await lite.settle()
    execution = (await api.get(f"/v1/executions/{fired['id']}")).json()
    assert execution["outcome"]["metadata"] == {"x": 1.5}
    assert execution["error_message"] is None


async def test_an_unstorable_answer_does_not_cost_the_answers_finished_with_it_theirs(
    api: httpx.AsyncClient, lite: CueApiLite, deliverer: FakeDeliverer, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Attempts that end together are recorded in one write; when one of them cannot be
    stored, that write is undone and each is recorded on its own: the others as they
    were, the one that failed without its outcome."""
    finish = delivery.finish_attempt

    def fussy_store(tx: Any, result: AttemptResult, now_ms: int) -> Any:
        if result.outcome is not None and result.outcome.result == "unstorable":
            raise sqlite3.DataError("the outcome cannot be stored")
        return finish(tx, result, now_ms)

    monkeypatch.setattr(delivery, "finish_attempt", fussy_store)
    deliverer.script = lambda request: WebhookResponse(
        200, b'{"success": true, "result": "%s"}'
        % (b"unstorable" if b'"name": "bad"' in (request.body or b"") else b"fine"),
    )  # fmt: skip
    once = {"type": "once", "at": iso_at(clock.now_ms() + 60_000)}
    for name in ["ok-1", "bad", "ok-2"]:
        await api.post("/v1/cues", json=webhook_cue(name=name, schedule=once))
    transact = lite.store.transact
    writes: list[str] = []

    async def recorded(work: Any) -> Any:
        try:
            result = await transact(work)
        except sqlite3.DataError:
            writes.append("failed")
            raise
        writes.append(f"{len(result)} finished" if isinstance(result, list) else "fire")
        return result

    lite.store.transact = recorded  # type: ignore[method-assign]
    clock.advance(60)
    await lite.settle()
    # The batch, then each on its own, then the failed one again without its outcome.
    assert writes[:2] == ["fire", "failed"]
    assert sorted(writes[2:]) == ["1 finished"] * 3 + ["failed"]
    listed = (await api.get("/v1/executions")).json()["executions"]
    by_cue = {cue["id"]: cue["name"] for cue in (await api.get("/v1/cues")).json()["cues"]}
    found = {by_cue[execution["cue_id"]]: execution for execution in listed}
    assert {execution["status"] for execution in found.values()} == {"success"}
    assert found["ok-1"]["outcome"]["result"] == found["ok-2"]["outcome"]["result"] == "fine"
    assert found["bad"]["outcome"] is None
    assert "not recorded as an outcome" in found["bad"]["error_message"]


async def test_a_deliverer_that_crashes_still_ends_the_attempt(
    api: httpx.AsyncClient, lite: CueApiLite, deliverer: FakeDeliverer
) -> None:
    deliverer.answer(RuntimeError("a bug in a transport"))
    fired = await fire(api)
    await lite.settle()
    execution = (await api.get(f"/v1/executions/{fired['id']}")).json()
    assert execution["status"] == "retrying"
    assert execution["error_message"] == "The attempt failed inside the server"


@pytest.mark.sqlite_file
async def test_a_wedged_attempt_is_finished_once_after_a_restart_and_never_resent(
    settings: Settings, clock: ManualClock, lite: CueApiLite, user: NewKey,
    deliverer: FakeDeliverer,
) -> None:  # fmt: skip
    """A row left `delivering` (as the answer `NaN` used to leave it) is sent once more
    after a restart, ends `success`, and later restarts send nothing."""
    async with lite.client(user.api_key) as api:
        fired = await fire(api)
    await lite.aclose()
    with sqlite3.connect(settings.db) as db:
        db.execute(
            "UPDATE executions SET status = 'delivering', attempts = 1 WHERE id = ?",
            (fired["id"],),
        )
    deliverer.requests.clear()
    deliverer.answer(WebhookResponse(200, HOSTILE["nan"]))
    for _ in range(2):
        app = CueApiLite(settings, clock=clock, deliverer=deliverer)
        await app.start()
        await app.settle()
        async with app.client(user.api_key) as api:
            execution = (await api.get(f"/v1/executions/{fired['id']}")).json()
        await app.aclose()
        assert execution["status"] == "success"
        assert execution["attempts"] == 1
    assert len(deliverer.requests) == 1
