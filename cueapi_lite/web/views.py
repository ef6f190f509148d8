"""What each dashboard page shows, as plain dicts for its template.

Every read goes through the services the JSON API uses (so another user's id is the
same 404) or, for what the API has no call for, through `store.dashboard`, always scoped
to the user. Nothing here renders HTML or changes anything.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from ..alerts import SEVERITY, AlertService
from ..clock import Clock
from ..config import Settings
from ..cron import load_zone, schedule_for
from ..leases import LeaseService, heartbeat_status
from ..models import TERMINAL_STATUSES, Cue, CueStatus, Execution, User
from ..outcomes import VERIFIABLE
from ..services.cues import CueService
from ..services.executions import ExecutionService
from ..store import (
    AlertFilters,
    CueHealthRow,
    DashboardStore,
    ExecutionFilters,
    RecentExecution,
    WorkerRecord,
)
from .health import CATEGORIES, CATEGORY_LABELS, HEALTH_LABELS, cue_health, outcome_category
from .render import utc_text
from .schedule_words import describe
from .snapshots import Snapshots

__all__ = ["ALERT_TYPES", "CueListQuery", "Views"]

CUES_PER_PAGE = 50
EXECUTIONS_PER_PAGE = 25
ALERTS_PER_PAGE = 50
STRIP_LENGTH = 30
NEXT_FIRES = 10
HOUR_MS = 3_600_000
PROBLEMS_SINCE_MS = 7 * 24 * HOUR_MS
PROBLEMS_SCAN = 20_000  # newest executions looked through for the overview's problems
ALERT_TYPES = tuple(SEVERITY)
CHART_WIDTH, CHART_HEIGHT = 720, 160


@dataclasses.dataclass(frozen=True, slots=True)
class CueListQuery:
    health: str | None = None
    transport: str | None = None
    search: str | None = None
    page: int = 1


@dataclasses.dataclass(frozen=True, slots=True)
class CueIndex:
    """Every cue of a user, newest first, sorted by badge once per snapshot."""

    ids: list[str]
    health: dict[str, str]  # cue id -> badge
    by_health: dict[str, list[str]]
    active: int
    paused: int

    @classmethod
    def of(cls, rows: list[CueHealthRow]) -> CueIndex:
        health = {}
        by_health: dict[str, list[str]] = {key: [] for key in HEALTH_LABELS}
        active = paused = 0
        for row in rows:
            badge = cue_health(row.status, row.last_status, row.last_outcome_state)
            health[row.id] = badge
            by_health[badge].append(row.id)
            active += row.status == CueStatus.ACTIVE
            paused += row.status == CueStatus.PAUSED
        return cls([row.id for row in rows], health, by_health, active, paused)


class StripCell(NamedTuple):
    """One execution in a cue's strip (a tuple: a page of cues renders 1,500 of them)."""

    id: str
    category: str
    label: str
    title: str


def _local(at_ms: int, zone_name: str) -> str:
    moment = datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(load_zone(zone_name))
    return moment.strftime("%a %Y-%m-%d %H:%M %Z")


def schedule_text(cue: Cue) -> str:
    """ "every day at 09:00, America/Los_Angeles" or "once at <instant>"."""
    schedule = cue.schedule
    if schedule.type == "once" or schedule.cron is None:
        at = _local(schedule.at_ms, schedule.timezone) if schedule.at_ms is not None else "—"
        return f"once, {at}"
    return f"{describe(schedule.cron)}, {schedule.timezone}"


def safe_link(url: str | None) -> str | None:
    """A URL fit for an href (http or https only: never `javascript:`)."""
    if not url:
        return None
    return url if urlsplit(url).scheme.lower() in ("http", "https") else None


def _took_ms(started_ms: int | None, ended_ms: int | None) -> int | None:
    if started_ms is None or ended_ms is None:
        return None
    return max(0, ended_ms - started_ms)


def _strip_cell(execution: RecentExecution) -> StripCell:
    category = outcome_category(execution.status, execution.outcome_state)
    label = CATEGORY_LABELS[category]
    return StripCell(
        execution.id, category, label, f"{label}, {utc_text(execution.scheduled_for_ms)}"
    )


def _strip_item(execution: RecentExecution) -> dict[str, Any]:
    category = outcome_category(execution.status, execution.outcome_state)
    return {
        "id": execution.id,
        "category": category,
        "label": CATEGORY_LABELS[category],
        "scheduled_for_ms": execution.scheduled_for_ms,
        "took_ms": _took_ms(execution.started_at_ms, execution.delivered_at_ms),
        "cue_id": execution.cue_id,
        "status": execution.status,
        "missed_reason": execution.missed_reason,
        "http_status": execution.http_status,
    }


def _history_row(execution: Execution) -> dict[str, Any]:
    category = outcome_category(execution.status, execution.outcome_state)
    outcome = execution.outcome
    started = execution.started_at_ms
    return {
        "execution": execution,
        "category": category,
        "label": CATEGORY_LABELS[category],
        "late_ms": None if started is None else started - execution.scheduled_for_ms,
        "took_ms": _took_ms(started, execution.delivered_at_ms),
        "external_id": outcome.external_id if outcome else None,
        "result_url": safe_link(outcome.result_url) if outcome else None,
    }


class Views:
    def __init__(
        self,
        cues: CueService,
        executions: ExecutionService,
        alerts: AlertService,
        leases: LeaseService,
        reads: DashboardStore,
        clock: Clock,
        settings: Settings,
    ) -> None:
        self.cues = cues
        self.executions = executions
        self.alerts = alerts
        self.leases = leases
        self.reads = reads
        self.clock = clock
        self.settings = settings
        self.snapshots = Snapshots(clock, reads.data_version)

    def version(self) -> int:
        """Changes whenever anything was committed: the live script's "reload?" check."""
        return self.reads.data_version()

    async def _cue_index(
        self, user: User, transport: str | None = None, search: str | None = None
    ) -> CueIndex:
        async def read() -> CueIndex:
            return CueIndex.of(await self.reads.cue_health(user.id, transport, search))

        if search is not None:  # narrow, and endlessly varied: not worth keeping
            return await read()
        return await self.snapshots.get((user.id, "cues", transport), read)

    # --- overview ---------------------------------------------------------------------

    async def overview(self, user: User) -> dict[str, Any]:
        now_ms = self.clock.now_ms()
        index = await self._cue_index(user)
        counts = {
            "active": index.active,
            "paused": index.paused,
            "failing": len(index.by_health["failing"]),
            "total": len(index.ids),
        }
        open_alerts, open_total = await self.alerts.page(
            user, AlertFilters(acknowledged=False), 5, 0
        )
        workers = self.worker_rows(await self.leases.workers(user), now_ms)
        problems = await self.snapshots.get(
            (user.id, "problems"),
            lambda: self.reads.recent_problems(
                user.id, now_ms - PROBLEMS_SINCE_MS, 10, PROBLEMS_SCAN
            ),
        )
        names = {c.id: c.name for c in await self.reads.cues(user.id, [p.cue_id for p in problems])}
        return {
            "now_ms": now_ms,
            "counts": counts,
            "chart": await self._chart(user, now_ms),
            "open_alerts": open_alerts,
            "open_alert_total": open_total,
            "live_workers": [w for w in workers if w["status"] == "active"],
            "worker_total": len(workers),
            "problems": [{**_strip_item(p), "cue_name": names.get(p.cue_id)} for p in problems],
        }

    async def _chart(self, user: User, now_ms: int) -> dict[str, Any]:
        """Executions of the last 24 hours per hour, stacked by outcome category."""
        end_ms = (now_ms // HOUR_MS + 1) * HOUR_MS
        start_ms = end_ms - 24 * HOUR_MS
        buckets = [dict.fromkeys(CATEGORIES, 0) for _ in range(24)]
        totals = dict.fromkeys(CATEGORIES, 0)
        counted = await self.snapshots.get(
            (user.id, "chart", end_ms),
            lambda: self.reads.outcome_counts(user.id, start_ms, end_ms, HOUR_MS),
        )
        for row in counted:
            category = outcome_category(row.status, row.outcome_state)
            buckets[row.bucket][category] += row.count
            totals[category] += row.count
        tallest = max((sum(b.values()) for b in buckets), default=0) or 1
        width = CHART_WIDTH / 24
        bars = []
        for index, bucket in enumerate(buckets):
            y = float(CHART_HEIGHT)
            segments = []
            for category in CATEGORIES:
                if bucket[category]:
                    height = bucket[category] / tallest * (CHART_HEIGHT - 10)
                    y -= height
                    segments.append(
                        {"category": category, "y": round(y, 1), "height": round(height, 1)}
                    )
            hour_ms = start_ms + index * HOUR_MS
            described = ", ".join(
                f"{bucket[c]} {CATEGORY_LABELS[c].lower()}" for c in CATEGORIES if bucket[c]
            )
            bars.append(
                {
                    "x": round(index * width + 1, 1),
                    "width": round(width - 2, 1),
                    "segments": segments,
                    "start_ms": hour_ms,
                    "title": described or "no executions",
                }
            )
        return {
            "bars": bars,
            "totals": [(c, CATEGORY_LABELS[c], totals[c]) for c in CATEGORIES],
            "total": sum(totals.values()),
            "tallest": tallest,
            "start_ms": start_ms,
            "end_ms": end_ms,
            "width": CHART_WIDTH,
            "height": CHART_HEIGHT,
        }

    # --- cues -------------------------------------------------------------------------

    async def cue_list(self, user: User, query: CueListQuery) -> dict[str, Any]:
        now_ms = self.clock.now_ms()
        index = await self._cue_index(user, query.transport, query.search)
        chosen = index.ids if query.health is None else index.by_health[query.health]
        pages = max(1, -(-len(chosen) // CUES_PER_PAGE))
        page = min(query.page, pages)
        ids = chosen[(page - 1) * CUES_PER_PAGE : page * CUES_PER_PAGE]
        cues = {cue.id: cue for cue in await self.reads.cues(user.id, ids)}
        recent = await self.reads.recent_executions(ids, STRIP_LENGTH)
        items = []
        for cue_id in ids:
            if cue_id not in cues:
                continue  # deleted between the two reads
            cue = cues[cue_id]
            health = index.health[cue_id]
            strip = [_strip_cell(e) for e in recent[cue_id]]
            last = next(
                (_strip_item(e) for e, c in zip(recent[cue_id], strip, strict=True)
                 if c.category != "running"),
                None,
            )  # fmt: skip
            items.append(
                {
                    "cue": cue,
                    "health": health,
                    "health_label": HEALTH_LABELS[health],
                    "schedule": schedule_text(cue),
                    "next_ms": cue.next_fire_at_ms if cue.status == CueStatus.ACTIVE else None,
                    "last": last,
                    "strip": list(reversed(strip)),  # oldest on the left
                }
            )
        return {
            "now_ms": now_ms,
            "items": items,
            "counts": {key: len(found) for key, found in index.by_health.items()},
            "matched": len(chosen),
            "total": len(index.ids),
            "page": page,
            "pages": pages,
            "query": query,
        }

    async def cue_detail(self, user: User, cue_id: str, page: int = 1) -> dict[str, Any]:
        cue, _, _ = await self.cues.get(user, cue_id)  # 404 for anyone else's cue
        now_ms = self.clock.now_ms()
        offset = (max(1, page) - 1) * EXECUTIONS_PER_PAGE
        executions, total = await self.executions.page(
            user, ExecutionFilters(cue_id=cue.id), EXECUTIONS_PER_PAGE, offset
        )
        return {
            "now_ms": now_ms,
            "cue": cue,
            "schedule": schedule_text(cue),
            "next_fires": self._next_fires(cue, now_ms),
            "history": [_history_row(e) for e in executions],
            "history_total": total,
            "page": max(1, page),
            "pages": max(1, -(-total // EXECUTIONS_PER_PAGE)),
        }

    def _next_fires(self, cue: Cue, now_ms: int) -> list[dict[str, Any]]:
        """The next fires, as `cueapi-lite explain` shows them (local time, DST notes)."""
        if cue.status != CueStatus.ACTIVE:
            return []
        schedule = cue.schedule
        if schedule.cron is None:
            if schedule.at_ms is None or cue.next_fire_at_ms is None:
                return []
            at = schedule.at_ms
            return [{"at_ms": at, "local": _local(at, schedule.timezone), "note": None}]
        cron = schedule_for(schedule.cron, schedule.timezone)
        start_ms = max(now_ms, (cue.next_fire_at_ms or now_ms) - 1)
        return [
            {
                "at_ms": o.at_ms,
                "local": _local(o.at_ms, schedule.timezone),
                "note": o.note,
            }
            for o in cron.between(start_ms + 1, 2**62, NEXT_FIRES)
        ]

    # --- executions -------------------------------------------------------------------

    async def execution_detail(self, user: User, execution_id: str) -> dict[str, Any]:
        execution = await self.executions.get(user, execution_id)
        cue, _, _ = await self.cues.get(user, execution.cue_id)
        outcome = execution.outcome
        category = outcome_category(execution.status, execution.outcome_state)
        return {
            "now_ms": self.clock.now_ms(),
            "execution": execution,
            "cue": cue,
            "row": _history_row(execution),
            "category": category,
            "label": CATEGORY_LABELS[category],
            "timeline": timeline(execution),
            "outcome": outcome,
            "result_url": safe_link(outcome.result_url) if outcome else None,
            "can_verify": execution.outcome_state in VERIFIABLE,
            "can_replay": execution.status in TERMINAL_STATUSES,
        }

    # --- alerts and workers -----------------------------------------------------------

    async def alert_list(self, user: User, filters: AlertFilters, page: int = 1) -> dict[str, Any]:
        page = max(1, page)
        found, total = await self.alerts.page(
            user, filters, ALERTS_PER_PAGE, (page - 1) * ALERTS_PER_PAGE
        )
        cue_ids = sorted({a.cue_id for a in found if a.cue_id})
        names = {cue.id: cue.name for cue in await self.reads.cues(user.id, cue_ids)}
        return {
            "now_ms": self.clock.now_ms(),
            "alerts": found,
            "cue_names": names,
            "total": total,
            "page": page,
            "pages": max(1, -(-total // ALERTS_PER_PAGE)),
            "filters": filters,
            "alert_types": ALERT_TYPES,
        }

    async def worker_list(self, user: User) -> dict[str, Any]:
        now_ms = self.clock.now_ms()
        workers = await self.leases.workers(user)
        return {"now_ms": now_ms, "workers": self.worker_rows(workers, now_ms)}

    def worker_rows(self, workers: list[WorkerRecord], now_ms: int) -> list[dict[str, Any]]:
        rows = []
        for worker in workers:
            since_s = max(0, (now_ms - worker.last_heartbeat_ms) // 1000)
            status = heartbeat_status(
                since_s, self.settings.worker_timeout_s, self.settings.lease_s
            )
            rows.append({"worker": worker, "status": status, "since_s": since_s})
        return rows


def timeline(execution: Execution) -> list[dict[str, Any]]:
    """The steps an execution went through, in order, from what its row records. Only
    the latest delivery attempt is stored (its number, HTTP status and error)."""
    e = execution
    steps: list[dict[str, Any]] = [
        {"step": "Scheduled", "at_ms": e.scheduled_for_ms, "detail": f"by {e.triggered_by}"},
        {"step": "Fired", "at_ms": e.created_at_ms, "detail": "execution written"},
    ]
    if e.missed_reason or e.status == "missed":
        steps.append(
            {
                "step": "Missed",
                "at_ms": e.updated_at_ms,
                "detail": e.error_message or e.missed_reason,
            }
        )
    if e.transport == "webhook" and e.started_at_ms is not None:
        steps.append({"step": "First attempt", "at_ms": e.started_at_ms, "detail": ""})
        last = f"attempt {e.attempts}"
        if e.http_status is not None:
            last += f": HTTP {e.http_status}"
        if e.error_message and e.status != "missed":
            last += f" — {e.error_message}"
        steps.append({"step": "Latest attempt", "at_ms": e.last_attempt_at_ms, "detail": last})
    if e.next_retry_ms is not None and e.status == "retrying":
        steps.append({"step": "Next retry", "at_ms": e.next_retry_ms, "detail": "planned"})
    if e.claimed_at_ms is not None:
        detail = f"by worker {e.claimed_by_worker}"
        steps.append({"step": "Claimed", "at_ms": e.claimed_at_ms, "detail": detail})
    if e.delivered_at_ms is not None and e.transport == "webhook":
        steps.append({"step": "Delivered", "at_ms": e.delivered_at_ms, "detail": "2xx received"})
    outcome = e.outcome
    if outcome is not None:
        steps.append(
            {
                "step": "Outcome reported",
                "at_ms": outcome.recorded_at_ms or None,
                "detail": "success" if outcome.success else "failure",
            }
        )
    elif e.outcome_deadline_ms is not None and e.outcome_state is None:
        steps.append({"step": "Outcome due", "at_ms": e.outcome_deadline_ms, "detail": "waiting"})
    if e.outcome_state in ("verified_success", "verification_failed", "verification_pending"):
        steps.append(
            {
                "step": "Verification",
                "at_ms": None,
                "detail": e.outcome_state.replace("_", " ")
                + (f": {e.verification_reason}" if e.verification_reason else ""),
            }
        )
    elif e.outcome_state == "unknown":
        steps.append(
            {
                "step": "Outcome",
                "at_ms": e.outcome_deadline_ms,
                "detail": "unknown: none reported in time",
            }
        )
    return steps
