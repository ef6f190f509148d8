"""What a finished execution does to its cue: the rules of run counting.

A finished run is counted and moves `last_run` forward (never back); a success starts a
new missed window; a `once` cue completes or fails with its scheduled run; a recurring
cue whose `on_failure.pause` asks for it is paused by a failure. Plain functions: the
store only writes what they decide.
"""

from __future__ import annotations

from .models import CueStatus, TriggeredBy
from .store import CueAfterRun, CueState, ExecutionRef, Tx

__all__ = ["SCHEDULED", "after_run", "count_run", "count_runs", "fail_unrun_once_cue"]

# Executions that stand for an occurrence of the schedule (not manual fires or replays).
SCHEDULED = frozenset({TriggeredBy.SCHEDULE.value, TriggeredBy.CATCH_UP.value})


def after_run(
    cue: CueState, triggered_by: str, succeeded: bool, run_ms: int, now_ms: int
) -> CueAfterRun:
    """The cue's columns after one of its executions finished (`run_ms` is the
    execution's scheduled time)."""
    status, next_fire_ms = cue.status, cue.next_fire_at_ms
    if cue.status == CueStatus.ACTIVE:
        if cue.schedule_type == "once":
            if triggered_by in SCHEDULED:
                status = CueStatus.COMPLETED.value if succeeded else CueStatus.FAILED.value
        elif not succeeded and cue.on_failure.pause:
            status, next_fire_ms = CueStatus.PAUSED.value, None
    return CueAfterRun(
        last_run_ms=max(cue.last_run_ms or 0, run_ms),
        watch_from_ms=now_ms if succeeded else cue.watch_from_ms,
        status=status,
        next_fire_at_ms=next_fire_ms,
    )


def count_run(tx: Tx, ref: ExecutionRef, succeeded: bool, now_ms: int) -> str | None:
    """Count a finished execution on its cue; the cue's new status (None: cue gone)."""
    cue = tx.cue_state(ref.cue_id)
    if cue is None:
        return None
    change = after_run(cue, ref.triggered_by, succeeded, ref.scheduled_for_ms, now_ms)
    tx.count_run(cue.id, change, now_ms)
    return change.status


def count_runs(
    tx: Tx, refs: list[ExecutionRef], cues: list[CueState | None], now_ms: int
) -> list[str | None]:
    """`count_run` for successful executions whose cues' states were read with them; a
    cue that appears twice is counted again from its state after the first count."""
    statuses: list[str | None] = []
    changes: dict[str, CueAfterRun] = {}
    seen: set[str] = set()
    for ref, cue in zip(refs, cues, strict=True):
        if cue is None:
            statuses.append(None)
        elif cue.id in seen:  # the state read is out of date: count on what is written
            tx.count_runs(list(changes.items()), now_ms)
            changes.clear()
            statuses.append(count_run(tx, ref, True, now_ms))
        else:
            seen.add(cue.id)
            change = after_run(cue, ref.triggered_by, True, ref.scheduled_for_ms, now_ms)
            changes[cue.id] = change
            statuses.append(change.status)
    tx.count_runs(list(changes.items()), now_ms)
    return statuses


def fail_unrun_once_cue(tx: Tx, ref: ExecutionRef, now_ms: int) -> None:
    """A `once` cue whose scheduled execution will never run (missed, unclaimed) has
    failed: it has no other occurrence."""
    if ref.triggered_by not in SCHEDULED:
        return
    cue = tx.cue_state(ref.cue_id)
    if cue is not None and cue.schedule_type == "once":
        tx.set_cue_status(cue.id, CueStatus.ACTIVE, CueStatus.FAILED, now_ms, stop_firing=False)
