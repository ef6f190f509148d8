"""The rules a finished execution applies to its cue (`runs.after_run`), and the failure
streak (`alerts.failure_streak`): plain functions, checked without a database."""

from __future__ import annotations

import pytest

from cueapi_lite.alerts import failure_streak
from cueapi_lite.models import DEFAULT_ALERTS, DEFAULT_DELIVERY, OnFailure
from cueapi_lite.runs import after_run
from cueapi_lite.store import CueState


def state(status: str = "active", kind: str = "recurring", pause: bool = False) -> CueState:
    return CueState(
        id="cue_1", user_id="usr_1", name="c", status=status, schedule_type=kind,
        on_failure=OnFailure(pause=pause), alerts=DEFAULT_ALERTS, delivery=DEFAULT_DELIVERY,
        next_fire_at_ms=9_000, last_run_ms=5_000, watch_from_ms=100,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("cue", "triggered_by", "succeeded", "status", "next_fire_ms"),
    [
        (state(), "schedule", True, "active", 9_000),
        (state(), "schedule", False, "active", 9_000),
        (state(pause=True), "schedule", False, "paused", None),
        (state(pause=True), "manual_fire", False, "paused", None),
        (state(pause=True), "schedule", True, "active", 9_000),
        (state(kind="once"), "schedule", True, "completed", 9_000),
        (state(kind="once"), "catch_up", False, "failed", 9_000),
        (state(kind="once", pause=True), "schedule", False, "failed", 9_000),
        (state(kind="once"), "manual_fire", True, "active", 9_000),
        (state(status="paused", kind="once"), "schedule", True, "paused", 9_000),
        (state(status="paused", pause=True), "schedule", False, "paused", 9_000),
    ],
)
def test_a_finished_run_decides_the_cues_status(
    cue: CueState, triggered_by: str, succeeded: bool, status: str, next_fire_ms: int | None
) -> None:
    change = after_run(cue, triggered_by, succeeded, run_ms=6_000, now_ms=7_000)
    assert (change.status, change.next_fire_at_ms) == (status, next_fire_ms)


def test_last_run_never_moves_back_and_only_a_success_restarts_the_window() -> None:
    older = after_run(state(), "schedule", True, run_ms=4_000, now_ms=7_000)
    assert (older.last_run_ms, older.watch_from_ms) == (5_000, 7_000)
    failed = after_run(state(), "schedule", False, run_ms=6_000, now_ms=7_000)
    assert (failed.last_run_ms, failed.watch_from_ms) == (6_000, 100)


def test_the_streak_is_the_failures_before_the_newest_success() -> None:
    latest = [
        ("e4", "failed", None),
        ("e3", "success", "reported_failure"),
        ("e2", "success", None),
        ("e1", "failed", None),
    ]
    assert failure_streak(latest) == ["e4", "e3"]
    assert failure_streak([("e1", "success", "verified_success")]) == []
    assert failure_streak([]) == []
