"""Prometheus `/metrics`: collectors that read state at scrape time; they never decide.

Counters and histograms are the plain numbers `Telemetry` keeps (no lock or label lookup
on the burst path); the scheduler, the delivery pool and the file are read as they are;
stored rows are counted on a connection of the scrape's own thread. `HttpStats` counts
requests by route template (never the raw path, so ids do not make new series); the edge
records them. Loopback clients may scrape; with `metrics_token` set, every
client must send it as a bearer token.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, cast

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from .errors import Forbidden, Unauthorized
from .store import is_postgres
from .store.sqlite.history import HistoryStore
from .telemetry import DURATION_BUCKETS, Histogram, Telemetry

__all__ = ["HttpStats", "MetricsCollector", "metrics_routes"]

UNMATCHED = "unmatched"
# Any other method a client makes up counts as "other", so clients cannot create series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpStats:
    """Requests by (method, route template, status) and latency per route template. The
    edge records each routed request (it sits outside the router, so it sees the router's
    `scope["route"]`); requests it refuses before routing (413 by `Content-Length`) are
    not counted."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, str]] = Counter()
        self.latency: dict[str, Histogram] = {}

    def record(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        # A mount at the root (the dashboard) has the empty path.
        template = UNMATCHED if route is None else getattr(route, "path", "") or "/"
        method = scope["method"] if scope["method"] in METHODS else "other"
        self.requests[(method, template, str(status))] += 1
        histogram = self.latency.get(template)
        if histogram is None:
            histogram = self.latency[template] = Histogram(DURATION_BUCKETS)
        histogram.observe(seconds)


def _histogram(name: str, doc: str, histogram: Histogram) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc)
    family.add_metric([], list(histogram.cumulative()), histogram.sum)
    return family


def _counter(name: str, doc: str, label: str, values: Counter[str]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


class MetricsCollector(Collector):
    """Everything `/metrics` shows, for one instance. `snapshot()` runs on the event loop
    (it copies what the loop mutates); `collect()` may then run on another thread."""

    def __init__(
        self,
        telemetry: Telemetry,
        http: HttpStats,
        db_path: str,
        state: Callable[[], dict[str, Any]],
    ) -> None:
        self.telemetry = telemetry
        self.http = http
        self.db_path = db_path
        self.state = state
        self._snapshot: dict[str, Any] = {}

    def snapshot(self) -> None:
        t = self.telemetry
        self._snapshot = {
            "state": self.state(),
            "fires": Counter(t.fires),
            "missed": Counter(t.missed),
            "attempts": Counter(t.attempts),
            "outcomes": Counter(t.outcomes),
            "alerts": Counter(t.alerts),
            "alert_sends": Counter(t.alert_sends),
            "lease_expiries": Counter(t.lease_expiries),
            "pruned": Counter(t.pruned),
            "http_requests": Counter(self.http.requests),
            "http_latency": dict(self.http.latency),
        }

    def _stored(self) -> dict[str, Any]:
        if is_postgres(self.db_path):
            import psycopg

            from .store.postgres.db import PgConnection

            with psycopg.connect(self.db_path, autocommit=True) as pg:
                counts = HistoryStore.counts(cast(sqlite3.Connection, PgConnection(pg)))
                size = pg.execute("SELECT pg_database_size(current_database())").fetchone()
                counts["database_bytes"] = int(size[0]) if size else 0
                return counts
        conn = sqlite3.connect(self.db_path, timeout=5.0)
        try:
            return HistoryStore.counts(conn)
        finally:
            conn.close()

    def collect(self) -> Iterator[Metric]:
        s, t = self._snapshot, self.telemetry
        stored = self._stored()
        yield from self._executions(s, t, stored)
        yield from self._delivery(s, t)
        yield from self._workers_and_alerts(s, t, stored)
        yield from self._process(s, t, stored)

    def _executions(
        self, s: dict[str, Any], t: Telemetry, stored: dict[str, Any]
    ) -> Iterator[Metric]:
        executions = GaugeMetricFamily(
            "cueapi_lite_executions",
            "Stored executions by status and outcome state.",
            labels=["status", "outcome_state"],
        )
        retrying = 0
        for status, state, count in stored["executions"]:
            executions.add_metric([status, state], count)
            retrying += count if status == "retrying" else 0
        yield executions
        cues = GaugeMetricFamily("cueapi_lite_cues", "Stored cues by status.", labels=["status"])
        for status, count in stored["cues"]:
            cues.add_metric([status], count)
        yield cues
        yield GaugeMetricFamily(
            "cueapi_lite_retries_pending", "Executions waiting for a delivery retry.", retrying
        )
        yield _counter(
            "cueapi_lite_fires",
            "Executions started by the scheduler, by trigger.",
            "triggered_by",
            s["fires"],
        )
        yield _counter(
            "cueapi_lite_missed_occurrences",
            "Occurrences recorded as missed, by cause.",
            "reason",
            s["missed"],
        )
        yield _histogram(
            "cueapi_lite_fire_lateness_seconds",
            "How late a fire started after its scheduled instant.",
            t.fire_lateness,
        )
        yield _counter(
            "cueapi_lite_outcomes",
            "Outcomes recorded, by outcome state.",
            "outcome_state",
            s["outcomes"],
        )

    def _delivery(self, s: dict[str, Any], t: Telemetry) -> Iterator[Metric]:
        yield _counter(
            "cueapi_lite_delivery_attempts",
            "Webhook attempts by result: delivered (2xx), http_error, error (no answer).",
            "result",
            s["attempts"],
        )
        yield _histogram(
            "cueapi_lite_delivery_duration_seconds",
            "Duration of one webhook attempt.",
            t.delivery_duration,
        )
        yield CounterMetricFamily(
            "cueapi_lite_delivery_retries_scheduled",
            "Failed attempts that scheduled a retry.",
            t.retries_scheduled,
        )
        state = s["state"]
        yield GaugeMetricFamily(
            "cueapi_lite_deliveries_in_flight",
            "Webhook attempts being sent now.",
            state["in_flight"],
        )
        yield GaugeMetricFamily(
            "cueapi_lite_deliveries_queued",
            "Webhook attempts waiting for a free slot.",
            state["queued"],
        )

    def _workers_and_alerts(
        self, s: dict[str, Any], t: Telemetry, stored: dict[str, Any]
    ) -> Iterator[Metric]:
        yield CounterMetricFamily("cueapi_lite_claims", "Worker claims granted.", t.claims)
        yield _counter(
            "cueapi_lite_lease_expiries",
            "Claims whose worker went silent, by what the execution became.",
            "status",
            s["lease_expiries"],
        )
        yield _counter(
            "cueapi_lite_alerts_raised",
            "Alerts raised by this process, by type.",
            "alert_type",
            s["alerts"],
        )
        stored_alerts = GaugeMetricFamily(
            "cueapi_lite_alerts", "Stored alerts by type.", labels=["alert_type"]
        )
        for alert_type, count in stored["alerts"]:
            stored_alerts.add_metric([alert_type], count)
        yield stored_alerts
        sends = CounterMetricFamily(
            "cueapi_lite_alert_notifications",
            "Alert notifications by channel and result.",
            labels=["channel", "result"],
        )
        for (channel, result), count in sorted(s["alert_sends"].items()):
            sends.add_metric([channel, result], count)
        yield sends
        yield GaugeMetricFamily(
            "cueapi_lite_alert_outbox_pending",
            "Alert notifications not sent yet.",
            stored["outbox_pending"],
        )

    def _process(self, s: dict[str, Any], t: Telemetry, stored: dict[str, Any]) -> Iterator[Metric]:
        state = s["state"]
        yield GaugeMetricFamily(
            "cueapi_lite_scheduler_heap_entries",
            "Deadlines on the scheduler's heap.",
            state["heap"],
        )
        if state["next_due_ms"] is not None:
            yield GaugeMetricFamily(
                "cueapi_lite_scheduler_next_deadline_seconds",
                "Unix time of the earliest deadline on the heap.",
                state["next_due_ms"] / 1000,
            )
        yield _histogram(
            "cueapi_lite_writer_batch_operations",
            "Write operations committed together (group commit).",
            t.writer_batch,
        )
        yield _histogram(
            "cueapi_lite_writer_commit_seconds",
            "Time to run and commit one write batch.",
            t.writer_commit,
        )
        size = GaugeMetricFamily(
            "cueapi_lite_database_bytes",
            "Size of the database: the SQLite file and its write-ahead log, or the"
            " PostgreSQL database.",
            labels=["file"],
        )
        if "database_bytes" in stored:  # PostgreSQL: the database as a whole
            size.add_metric(["db"], stored["database_bytes"])
        for label, path in (("db", self.db_path), ("wal", self.db_path + "-wal")):
            if "database_bytes" in stored:
                break
            try:
                size.add_metric([label], os.path.getsize(path))
            except OSError:
                size.add_metric([label], 0)
        yield size
        yield _counter(
            "cueapi_lite_history_pruned_rows",
            "History rows removed by retention, by table.",
            "table",
            s["pruned"],
        )
        requests = CounterMetricFamily(
            "cueapi_lite_http_requests",
            "HTTP requests by method, route template and status.",
            labels=["method", "route", "status"],
        )
        for (method, route, status), count in sorted(s["http_requests"].items()):
            requests.add_metric([method, route, status], count)
        yield requests
        latency = HistogramMetricFamily(
            "cueapi_lite_http_request_duration_seconds",
            "HTTP request latency by route template.",
            labels=["route"],
        )
        for route, histogram in sorted(s["http_latency"].items()):
            latency.add_metric([route], histogram.cumulative(), histogram.sum)
        yield latency


def _loopback(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


def metrics_routes(collector: MetricsCollector, token: str | None) -> list[Route]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    lock = asyncio.Lock()

    async def metrics(request: Request) -> Response:
        if token is not None:
            sent = request.headers.get("authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
                raise Unauthorized("/metrics needs the metrics bearer token", "invalid_token")
        elif not _loopback(request.scope):
            raise Forbidden(
                "/metrics answers loopback clients only; set CUEAPI_LITE_METRICS_TOKEN to"
                " scrape from elsewhere",
                "metrics_forbidden",
            )
        async with lock:  # one scrape at a time: the snapshot is shared
            collector.snapshot()
            body = await asyncio.to_thread(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)

    return [Route("/metrics", metrics, methods=["GET"])]
