"""Logs a person can follow: the line for each fire, attempt, retry, outcome, alert, lease
expiry and catch-up decision, a WARNING for each failure, and the JSON format."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import httpx
import pytest

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.logs import configure, event

from .conftest import FakeDeliverer, status, timeout, webhook_cue


def lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and r.name.startswith(
        "cueapi_lite")]  # fmt: skip


async def every_minute(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    fields.setdefault("schedule", {"type": "recurring", "cron": "* * * * *"})
    body = webhook_cue(**fields)
    response = await api.post("/v1/cues", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_a_fire_and_a_delivered_attempt_are_one_info_line_each(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO)
    cue = await every_minute(api, name="digest", callback={"url": "http://hooks.local:9/h"})
    deliverer.answer(status(200, {"success": True}))
    clock.advance(60)
    await lite.settle()
    [execution] = (await api.get("/v1/executions")).json()["executions"]
    info = lines(caplog)
    fire = [line for line in info if line.startswith("fire:")]
    assert fire == [
        f"fire: cue digest ({cue['id']}) execution {execution['id']} scheduled for"
        f" {execution['scheduled_for']}, {clock.now_ms() - _ms(execution['scheduled_for'])} ms"
        " late (schedule)"
    ]
    [attempt] = [line for line in info if line.startswith("delivery:")]
    assert f"execution {execution['id']} (cue digest) attempt 1 of 3 to hooks.local: 200" in attempt
    assert attempt.endswith(" ms")
    assert f"outcome: execution {execution['id']} reported_success (webhook answer)" in info
    assert not lines(caplog, logging.WARNING)


def _ms(text: str) -> int:
    from .helpers import ms

    return ms(text)


async def test_every_failed_attempt_is_a_warning_naming_the_retry_then_the_end(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO)
    await every_minute(api, name="flaky", retry={"max_attempts": 2, "backoff_minutes": [1]})
    await lite.cues.update(*(await _owner_and_cue(lite)), {"status": "paused"})
    deliverer.answer(status(503), timeout())
    await api.post(f"/v1/cues/{(await _owner_and_cue(lite))[1]}/fire", json={})
    await lite.settle()
    clock.advance(60)
    await lite.settle()
    warnings = lines(caplog, logging.WARNING)
    assert len(warnings) == 2
    first, second = warnings
    assert "(cue flaky) attempt 1 of 2 to 127.0.0.1: Webhook endpoint returned 503" in first
    assert "; retry 2 of 2 at " in first
    assert "(cue flaky) attempt 2 of 2 to 127.0.0.1: Timed out after 30s" in second
    assert second.endswith("; no attempts left: execution failed")


async def _owner_and_cue(lite: CueApiLite) -> tuple[Any, str]:
    user = await lite.store.users.by_email("alice@example.com")
    assert user is not None
    cues, _ = await lite.store.cues.page(user.id, None, 1, 0)
    return user, cues[0].id


async def test_an_alert_is_a_warning_with_its_type_and_cue(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, deliverer: FakeDeliverer,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO)
    await every_minute(api, name="broken", retry={"max_attempts": 1},
                       alerts={"consecutive_failures": 2}, on_failure={"email": True})  # fmt: skip
    deliverer.answer(status(500))
    for _ in range(2):
        clock.advance(60)
        await lite.settle()
    warnings = lines(caplog, logging.WARNING)
    assert (
        "alert: consecutive_failure (critical) for cue broken: 2 consecutive executions failed"
        in warnings
    )
    # No SMTP server is set: the email is recorded as skipped, and the log says so.
    assert any("via email: skipped" in line for line in lines(caplog))


async def test_a_catch_up_decision_is_one_warning_per_cue(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cue = await every_minute(
        api, name="minutely", schedule={"type": "recurring", "cron": "*/5 * * * *"}
    )
    [stored] = await lite.store.cues.get_many([cue["id"]])
    assert stored.next_fire_at_ms is not None
    await lite.aclose()
    # Ten occurrences fall due while the server is down, the newest 61 s ago.
    clock.advance((stored.next_fire_at_ms - clock.now_ms()) / 1000 + 9 * 300 + 61)
    restarted = CueApiLite(lite.settings, clock=clock, deliverer=FakeDeliverer())
    await restarted.start()
    try:
        await restarted.settle()
    finally:
        await restarted.aclose()
    [decision] = [line for line in lines(caplog, logging.WARNING) if "catch-up" in line]
    assert decision.startswith(f"catch-up: cue minutely ({cue['id']}) missed 10 occurrence(s) from")
    assert decision.endswith(
        "(server_down); catch_up=run_once_if_missed: runs 1, records 9 as missed"
    )


async def test_a_lease_expiry_is_a_warning(
    api: httpx.AsyncClient, lite: CueApiLite, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = await api.post("/v1/cues", json={
        "name": "sync", "schedule": {"type": "recurring", "cron": "0 0 1 1 *"},
        "transport": "worker", "payload": {"task": "sync"}})  # fmt: skip
    fired = await api.post(f"/v1/cues/{response.json()['id']}/fire", json={})
    execution_id = fired.json()["id"]
    await api.post(f"/v1/executions/{execution_id}/claim", json={"worker_id": "ghost"})
    assert f"claim: execution {execution_id} by worker ghost" in " ".join(lines(caplog))
    clock.advance(900)
    await lite.settle()
    assert f"lease expired: execution {execution_id}, its worker went silent; now pending" in lines(
        caplog, logging.WARNING
    )


def test_json_format_writes_one_object_per_line_with_the_event_fields() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure("info", "json", stream)
        logging.getLogger("cueapi_lite.delivery").warning(
            "delivery failed: %s", "boom", extra={"event": "delivery_attempt", "status": 503}
        )
        logging.getLogger("cueapi_lite.delivery").debug("not shown at info")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "WARNING"
    assert record["logger"] == "cueapi_lite.delivery"
    assert record["message"] == "delivery failed: boom"
    assert record["event"] == "delivery_attempt"
    assert record["status"] == 503
    assert record["time"].endswith("+00:00")


@pytest.mark.parametrize(
    ("change", "message"),
    [({"log_format": "xml"}, "log_format"), ({"log_level": "loud"}, "log_level")],
)
def test_bad_log_settings_are_refused(change: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(**change)  # type: ignore[arg-type]


def test_log_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "CUEAPI_LITE_LOG_FORMAT": "json",
            "CUEAPI_LITE_LOG_LEVEL": "warning",
            "CUEAPI_LITE_ACCESS_LOG": "true",
        }
    )
    assert (settings.log_format, settings.log_level, settings.access_log) == (
        "json", "warning", True,
    )  # fmt: skip


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


async def test_lines_logged_on_the_loop_are_flushed_together_after_the_callback() -> None:
    import asyncio

    from cueapi_lite.logs import LoopFlushHandler

    stream = CountingStream()
    logger = logging.getLogger("cueapi_lite.test_flush")
    handler = LoopFlushHandler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for n in range(100):
            logger.warning("line %d", n)
        assert stream.flushes == 0  # written, not yet flushed: still in this callback
        await asyncio.sleep(0)
        assert stream.flushes == 1
        assert stream.getvalue().splitlines()[-1] == "line 99"
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def test_without_a_running_loop_every_line_is_flushed_at_once() -> None:
    from cueapi_lite.logs import LoopFlushHandler

    stream = CountingStream()
    handler = LoopFlushHandler(stream)
    handler.emit(logging.LogRecord("x", logging.WARNING, "", 0, "stopping", None, None))
    assert stream.flushes == 1


@pytest.fixture
def root_logger() -> Any:
    """The root logger, its handlers and level put back after the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_an_event_line_written_straight_to_the_handler_reads_as_through_logging(
    fmt: str, root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("time.time", lambda: 1764669600.0429)
    fields = {"event": "delivery_attempt", "execution_id": "x1", "status": 200,
              "error": None, "duration_ms": 2.1}  # fmt: skip
    logger = logging.getLogger("cueapi_lite.delivery")
    message = "delivery: execution x1 (cue d) attempt 1 of 3 to h: 200 in 2.1 ms 100%"
    records: list[logging.LogRecord] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        records.append(factory(*args, **kwargs))
        return records[-1]

    monkeypatch.setattr(logging, "_logRecordFactory", counting)
    straight, through = io.StringIO(), io.StringIO()
    configure("info", fmt, straight)
    event(logger, logging.INFO, message, fields)
    assert records == []  # no LogRecord was built
    configure("info", fmt, through)
    root_logger.handlers[0].addFilter(lambda record: True)  # a filter: logging's own path
    event(logger, logging.INFO, message, fields)
    assert len(records) == 1
    assert straight.getvalue() == through.getvalue()
    [line] = straight.getvalue().splitlines()
    if fmt == "json":
        assert json.loads(line) == {
            "time": "2025-12-02T10:00:00.042+00:00", "level": "INFO",
            "logger": "cueapi_lite.delivery", "message": message, **fields,
        }  # fmt: skip
    else:
        assert line.endswith(f",042 INFO cueapi_lite.delivery {message}")


def test_an_event_reaches_every_handler_when_another_is_attached(
    root_logger: logging.Logger,
) -> None:
    stream = io.StringIO()
    configure("info", "text", stream)
    seen: list[logging.LogRecord] = []
    other = logging.Handler()
    other.emit = seen.append  # type: ignore[method-assign]
    root_logger.addHandler(other)
    event(logging.getLogger("cueapi_lite.firing"), logging.INFO, "fire: one", {"event": "fire"})
    event(logging.getLogger("cueapi_lite.firing"), logging.DEBUG, "not shown", {})
    assert stream.getvalue().endswith(" INFO cueapi_lite.firing fire: one\n")
    [record] = seen
    assert (record.getMessage(), record.event) == ("fire: one", "fire")  # type: ignore[attr-defined]
