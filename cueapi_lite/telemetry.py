"""What happened, said once: each domain event becomes a log line and a metric sample.

The domain calls one method per event (a fire, a delivery attempt, a retry, an outcome,
an alert, a claim, a lease expiry, a catch-up decision); this module writes the line a
person reads in the log and bumps the plain counters `/metrics` reads at scrape time. It
decides nothing. On the burst path it stays cheap: a counter bump, and a log line only
when its level is enabled, written by `logs.event`.
"""

from __future__ import annotations

import bisect
import functools
import logging
import time
from collections import Counter
from collections.abc import Sequence
from urllib.parse import urlsplit

from .logs import event
from .models import Alert, Cue, Execution, iso

__all__ = ["Histogram", "Telemetry", "stopwatch"]

fire_log = logging.getLogger("cueapi_lite.firing")
delivery_log = logging.getLogger("cueapi_lite.delivery")
outcome_log = logging.getLogger("cueapi_lite.outcomes")
alert_log = logging.getLogger("cueapi_lite.alerts")
lease_log = logging.getLogger("cueapi_lite.leases")
retention_log = logging.getLogger("cueapi_lite.retention")

# Seconds. Lateness: a healthy fire is a few milliseconds late; catch-up runs are hours.
LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 60, 3600)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 5, 10, 50, 100, 500, 1000, 2000)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1)


def stopwatch() -> float:
    """A point for measuring how long something took (logs and metrics only: durations
    are never used to decide anything, so tests on a manual clock are unaffected)."""
    return time.perf_counter()


class Histogram:
    """A Prometheus-style histogram kept as plain numbers: `observe` is a bisect and two
    additions, cheap enough for every execution of a burst."""

    __slots__ = ("buckets", "count", "counts", "sum")

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """`(le, count)` pairs, cumulative, ending with `+Inf`."""
        total, out = 0, []
        for bound, count in zip([*map(str, self.buckets), "+Inf"], self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out


@functools.lru_cache(maxsize=4096)
def _host(url: str | None) -> str:
    try:
        return urlsplit(url or "").hostname or "-"
    except ValueError:
        return "-"


class Telemetry:
    """Counters and histograms of one instance, and the log line of each event."""

    def __init__(self) -> None:
        self.fires: Counter[str] = Counter()  # by triggered_by
        self.missed: Counter[str] = Counter()  # by missed_reason
        self.fire_lateness = Histogram(LATENESS_BUCKETS)
        self.attempts: Counter[str] = Counter()  # by result: delivered, http_error, error
        self.delivery_duration = Histogram(DURATION_BUCKETS)
        self.retries_scheduled = 0
        self.outcomes: Counter[str] = Counter()  # by outcome state
        self.claims = 0
        self.lease_expiries: Counter[str] = Counter()  # by what became of the execution
        self.alerts: Counter[str] = Counter()  # by alert type
        self.alert_sends: Counter[tuple[str, str]] = Counter()  # (channel, result)
        self.pruned: Counter[str] = Counter()  # rows removed by retention, by table
        self.writer_batch = Histogram(BATCH_BUCKETS)
        self.writer_commit = Histogram(COMMIT_BUCKETS)

    # --- firing -----------------------------------------------------------------------

    def fired(self, cue: Cue, executions: Sequence[Execution], now_ms: int) -> None:
        """Executions that will run were written for `cue` (scheduled or catch-up)."""
        info = fire_log.isEnabledFor(logging.INFO)
        for execution in executions:
            late_ms = max(0, now_ms - execution.scheduled_for_ms)
            self.fires[execution.triggered_by] += 1
            self.fire_lateness.observe(late_ms / 1000)
            if info:
                event(
                    fire_log, logging.INFO,
                    f"fire: cue {cue.name} ({cue.id}) execution {execution.id} scheduled for"
                    f" {iso(execution.scheduled_for_ms)}, {late_ms} ms late"
                    f" ({execution.triggered_by})",
                    {"event": "fire", "cue_id": cue.id, "execution_id": execution.id,
                     "late_ms": late_ms, "triggered_by": execution.triggered_by},
                )  # fmt: skip

    def caught_up(self, cue: Cue, reason: str, missed: int, runs: int, span: str) -> None:
        """The catch-up decision for occurrences of `cue` that were missed."""
        self.missed[reason] += missed
        decided = f"runs {runs}, records {missed} as missed" if runs else (
            f"records all {missed} as missed")  # fmt: skip
        event(
            fire_log, logging.WARNING,
            f"catch-up: cue {cue.name} ({cue.id}) missed {missed + runs} occurrence(s) {span}"
            f" ({reason}); catch_up={cue.catch_up}: {decided}",
            {"event": "catch_up", "cue_id": cue.id, "reason": reason, "missed": missed,
             "runs": runs, "catch_up": str(cue.catch_up)},
        )  # fmt: skip

    def held_back(self, cue_id: str, count: int, reason: str) -> None:
        """Runs recorded as missed for a rule (the monthly execution limit)."""
        self.missed[reason] += count
        event(
            fire_log, logging.WARNING,
            f"cue {cue_id}: {count} run(s) not started ({reason}), recorded as missed",
            {"event": "missed", "cue_id": cue_id, "reason": reason, "count": count},
        )  # fmt: skip

    # --- delivery ---------------------------------------------------------------------

    def attempted(
        self,
        execution_id: str,
        cue_name: str,
        url: str | None,
        attempt: int,
        max_attempts: int,
        status: int | None,
        seconds: float,
        error: str | None,
        retry_at_ms: int | None,
    ) -> None:
        """One webhook attempt ended: delivered (2xx), answered otherwise, or no answer."""
        self.delivery_duration.observe(seconds)
        if error is None:
            self.attempts["delivered"] += 1
        else:
            self.attempts["http_error" if status is not None else "error"] += 1
            if retry_at_ms is not None:
                self.retries_scheduled += 1
        level = logging.INFO if error is None else logging.WARNING
        if not delivery_log.isEnabledFor(level):
            return
        host = _host(url)
        attempted = (
            f"execution {execution_id} (cue {cue_name}) attempt {attempt} of {max_attempts}"
            f" to {host}"
        )
        took = f"in {seconds * 1000:.1f} ms"
        fields = {"event": "delivery_attempt", "execution_id": execution_id, "host": host,
                  "attempt": attempt, "max_attempts": max_attempts, "status": status}  # fmt: skip
        duration_ms = round(seconds * 1000, 1)
        if error is None:
            message = f"delivery: {attempted}: {status} {took}"
            event(delivery_log, level, message, fields | {"duration_ms": duration_ms})
            return
        then = (
            f"retry {attempt + 1} of {max_attempts} at {iso(retry_at_ms)}"
            if retry_at_ms is not None
            else "no attempts left: execution failed"
        )
        event(
            delivery_log, level, f"delivery failed: {attempted}: {error} {took}; {then}",
            fields | {"error": error, "duration_ms": duration_ms,
                      "retry_at": iso(retry_at_ms) if retry_at_ms is not None else None},
        )  # fmt: skip

    def outcome(self, execution_id: str, state: str | None, source: str) -> None:
        """An outcome was recorded (from the webhook's answer, a report, or a deadline)."""
        label = state or "recorded"
        self.outcomes[label] += 1
        failed = label in {"reported_failure", "verification_failed", "unknown"}
        level = logging.WARNING if failed else logging.INFO
        event(
            outcome_log, level, f"outcome: execution {execution_id} {label} ({source})",
            {"event": "outcome", "execution_id": execution_id, "outcome_state": label,
             "source": source},
        )  # fmt: skip

    # --- workers ----------------------------------------------------------------------

    def claimed(self, execution: Execution, worker_id: str) -> None:
        self.claims += 1
        if lease_log.isEnabledFor(logging.INFO):
            event(
                lease_log, logging.INFO,
                f"claim: execution {execution.id} by worker {worker_id}, lease until"
                f" {iso(execution.lease_expires_at_ms)}",
                {"event": "claim", "execution_id": execution.id, "worker_id": worker_id},
            )  # fmt: skip

    def lease_expired(self, execution_id: str, status: str) -> None:
        self.lease_expiries[status] += 1
        event(
            lease_log, logging.WARNING,
            f"lease expired: execution {execution_id}, its worker went silent; now {status}",
            {"event": "lease_expired", "execution_id": execution_id, "status": status},
        )  # fmt: skip

    def unclaimed(self, execution_id: str) -> None:
        self.missed["unclaimed"] += 1
        event(
            lease_log, logging.WARNING,
            f"unclaimed: execution {execution_id} was not claimed by any worker in time;"
            " recorded as missed",
            {"event": "missed", "execution_id": execution_id, "reason": "unclaimed"},
        )  # fmt: skip

    # --- alerts -----------------------------------------------------------------------

    def alert_raised(self, alert: Alert) -> None:
        self.alerts[alert.alert_type] += 1
        event(
            alert_log, logging.WARNING,
            f"alert: {alert.alert_type} ({alert.severity}) for cue"
            f" {alert.metadata.get('cue_name', alert.cue_id)}: {alert.message}",
            {"event": "alert", "alert_id": alert.id, "alert_type": alert.alert_type,
             "cue_id": alert.cue_id, "execution_id": alert.execution_id},
        )  # fmt: skip

    def alert_sent(
        self,
        alert: Alert,
        channel: str,
        result: str,
        error: str | None,
        retry_at_ms: int | None = None,
    ) -> None:
        """A notification ended `sent`, `skipped`, `retrying` (at `retry_at_ms`) or
        `failed` (for good)."""
        self.alert_sends[(channel, result)] += 1
        level = logging.INFO if result in {"sent", "skipped"} else logging.WARNING
        then = f", retry at {iso(retry_at_ms)}" if retry_at_ms is not None else ""
        because = f" ({error})" if error else ""
        event(
            alert_log, level, f"alert {alert.id} via {channel}: {result}{because}{then}",
            {"event": "alert_send", "alert_id": alert.id, "channel": channel,
             "result": result, "error": error},
        )  # fmt: skip

    # --- the database -----------------------------------------------------------------

    def committed(self, operations: int, seconds: float) -> None:
        """The writer committed one batch (called on the writer thread)."""
        self.writer_batch.observe(operations)
        self.writer_commit.observe(seconds)

    def pruned_history(self, counts: dict[str, int], cutoff_ms: int) -> None:
        for table, count in counts.items():
            self.pruned[table] += count
        if any(counts.values()):
            removed = ", ".join(f"{count} {table}" for table, count in counts.items() if count)
            event(
                retention_log, logging.INFO,
                f"retention: removed history older than {iso(cutoff_ms)}: {removed}",
                {"event": "retention", **{f"pruned_{t}": c for t, c in counts.items()}},
            )  # fmt: skip
