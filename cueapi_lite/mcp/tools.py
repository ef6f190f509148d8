"""The MCP tool table: every tool once, with its JSON Schema, hints and what it does.

The first fifteen have the names and argument shapes of the official `cueapi-mcp` 0.4
tools (its sixteenth, `cueapi_send_message`, needs a messaging API this server does not
have); `cueapi_explain_schedule`, `cueapi_list_alerts` and `cueapi_acknowledge_alert` are
this server's own. A tool only turns its arguments into a `Backend` call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from ..cron import (
    CronError,
    TimezoneError,
    check_expression,
    check_zone_name,
    preview,
    schedule_for,
)
from ..errors import BadRequest, Unprocessable
from ..models import parse_instant
from .backend import Backend, Json, ToolFailure, failure

__all__ = ["TOOLS", "Tool", "tool_named"]

Run = Callable[[Backend, dict[str, Any]], Awaitable[Json]]


@dataclasses.dataclass(frozen=True)
class Tool:
    name: str
    description: str
    properties: dict[str, Any]
    run: Run
    required: tuple[str, ...] = ()
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False

    @property
    def input_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": self.properties,
            "required": list(self.required),
            "additionalProperties": False,
        }


# --- argument shapes --------------------------------------------------------------------

_ID = {"type": "string", "minLength": 1, "maxLength": 255}
_TEXT = {"type": "string", "maxLength": 2000}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": 100, "description": "Page size (20)."}
_OFFSET = {"type": "integer", "minimum": 0, "description": "How many to skip (0)."}
_OBJECT = {"type": "object"}
_URL = {"type": "string", "format": "uri", "maxLength": 2048}
_WORKER_ID = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "description": "A stable name for the worker; use the same one to claim, heartbeat and report.",
}


def _described(shape: dict[str, Any], description: str) -> dict[str, Any]:
    return {**shape, "description": description}


def _present(args: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: args[name] for name in names if args.get(name) is not None}


def _page(args: dict[str, Any]) -> tuple[int, int]:
    return int(args.get("limit", 20)), int(args.get("offset", 0))


# --- cues -------------------------------------------------------------------------------


async def _create_cue(backend: Backend, args: dict[str, Any]) -> Json:
    # The flat body of the official MCP server; `POST /v1/cues` reads it (cue_input).
    body = _present(args, "name", "cron", "at", "callback_url", "timezone", "payload")
    body.update(_present(args, "description"))
    if args.get("worker"):
        body["worker"] = True
    return await backend.create_cue(body)


async def _list_cues(backend: Backend, args: dict[str, Any]) -> Json:
    return await backend.list_cues(args.get("status"), *_page(args))


async def _get_cue(backend: Backend, args: dict[str, Any]) -> Json:
    return await backend.get_cue(args["cue_id"])


async def _update_cue(backend: Backend, args: dict[str, Any]) -> Json:
    body = _present(args, "name", "description", "payload")
    if args.get("callback_url") is not None:
        body["callback"] = {"url": args["callback_url"]}
    schedule: dict[str, Any] = {}
    if args.get("cron") is not None:
        schedule = {"type": "recurring", "cron": args["cron"]}
    elif args.get("at") is not None:
        schedule = {"type": "once", "at": args["at"]}
    if args.get("timezone") is not None:
        schedule["timezone"] = args["timezone"]  # alone, it changes just the zone (E4)
    if schedule:
        body["schedule"] = schedule
    return await backend.update_cue(args["cue_id"], body)


async def _pause_cue(backend: Backend, args: dict[str, Any]) -> Json:
    return await backend.update_cue(args["cue_id"], {"status": "paused"})


async def _resume_cue(backend: Backend, args: dict[str, Any]) -> Json:
    return await backend.update_cue(args["cue_id"], {"status": "active"})


async def _delete_cue(backend: Backend, args: dict[str, Any]) -> Json:
    await backend.delete_cue(args["cue_id"])
    return {"deleted": True, "cue_id": args["cue_id"]}


async def _fire_cue(backend: Backend, args: dict[str, Any]) -> Json:
    body = _present(args, "payload_override", "merge_strategy")
    return await backend.fire_cue(args["cue_id"], body)


# --- executions and workers -------------------------------------------------------------


async def _list_executions(backend: Backend, args: dict[str, Any]) -> Json:
    return await backend.list_executions(_present(args, "cue_id", "status"), *_page(args))


async def _get_execution(backend: Backend, args: dict[str, Any]) -> Json:
    return await backend.get_execution(args["execution_id"])


async def _report_outcome(backend: Backend, args: dict[str, Any]) -> Json:
    body = _present(args, "success", "external_id", "result_url", "summary")
    return await backend.report_outcome(args["execution_id"], body)


async def _list_claimable(backend: Backend, args: dict[str, Any]) -> Json:
    return await backend.list_claimable(args.get("task_name"), args.get("agent"))


async def _claim(backend: Backend, args: dict[str, Any]) -> Json:
    return await backend.claim(args["execution_id"], args["worker_id"])


async def _claim_next(backend: Backend, args: dict[str, Any]) -> Json:
    task = args.get("task_name")
    try:
        # One atomic claim on the server, task filter included: no window between
        # choosing an execution and claiming it.
        return await backend.claim_next(args["worker_id"], task)
    except ToolFailure as exc:
        if task is None or exc.code != "no_claimable_executions":
            raise
        return {"claimed": False, "reason": "no_executions_for_task", "task_name": task}


async def _heartbeat(backend: Backend, args: dict[str, Any]) -> Json:
    return await backend.heartbeat(args["execution_id"], args["worker_id"])


# --- this server's own ------------------------------------------------------------------


async def _explain_schedule(backend: Backend, args: dict[str, Any]) -> Json:
    try:
        zone = check_zone_name(args.get("timezone", "UTC"))
        schedule = schedule_for(check_expression(args["cron"]), zone)
    except CronError as exc:
        raise failure(BadRequest(str(exc), "invalid_schedule")) from None
    except TimezoneError as exc:
        raise failure(Unprocessable(str(exc), "invalid_timezone")) from None
    start = args.get("from")
    if start is None:
        after_ms = backend.now_ms()
    else:
        try:
            after_ms = parse_instant(start, schedule.zone) - 1
        except ValueError:
            raise failure(Unprocessable("from: must be an ISO 8601 date-time")) from None
    fires = preview(schedule, after_ms, int(args.get("count", 10)))
    return {"cron": args["cron"], "timezone": schedule.zone.key, "fires": fires}


async def _list_alerts(backend: Backend, args: dict[str, Any]) -> Json:
    filters = _present(args, "alert_type", "cue_id", "acknowledged", "since")
    return await backend.list_alerts(filters, *_page(args))


async def _acknowledge_alert(backend: Backend, args: dict[str, Any]) -> Json:
    return await backend.acknowledge_alert(args["alert_id"])


_CUE_ID = {"cue_id": _described(_ID, "The cue's id.")}
_EXECUTION_ID = {"execution_id": _described(_ID, "The execution's id.")}

TOOLS: tuple[Tool, ...] = (
    Tool(
        "cueapi_create_cue",
        "Create a cue: a cron schedule or a one-time instant that delivers a signed webhook"
        " to callback_url, or (worker: true) queues work for a worker to claim. Worker cues"
        " should carry payload.task: the worker daemon picks its handler by it.",
        {
            "name": _described({**_ID, "maxLength": 255}, "A name, unique among your cues."),
            "cron": _described(_TEXT, "Five-field cron expression for a recurring cue."),
            "at": _described(_TEXT, "ISO 8601 instant for a one-time cue."),
            "callback_url": _described(_URL, "Where webhooks go (not for worker cues)."),
            "worker": {"type": "boolean", "description": "Worker transport: no callback."},
            "timezone": _described(_TEXT, "IANA zone the cron is read in (UTC)."),
            "payload": _described(_OBJECT, "JSON object delivered with every run."),
            "description": _TEXT,
        },
        _create_cue,
        required=("name",),
    ),
    Tool(
        "cueapi_list_cues",
        "List your cues, newest first, optionally only active or paused ones.",
        {
            "status": {"type": "string", "enum": ["active", "paused"]},
            "limit": _LIMIT,
            "offset": _OFFSET,
        },
        _list_cues,
        read_only=True,
    ),
    Tool(
        "cueapi_get_cue",
        "Get one cue with its schedule, next run and newest executions.",
        _CUE_ID,
        _get_cue,
        required=("cue_id",),
        read_only=True,
    ),
    Tool(
        "cueapi_fire_cue",
        "Run a cue now, whatever its schedule or status. payload_override changes the"
        " payload of this run only; merge_strategy 'merge' (default) merges it over the"
        " cue's payload, 'replace' uses it alone.",
        {
            **_CUE_ID,
            "payload_override": _OBJECT,
            "merge_strategy": {"type": "string", "enum": ["merge", "replace"]},
        },
        _fire_cue,
        required=("cue_id",),
    ),
    Tool(
        "cueapi_update_cue",
        "Change a cue's name, schedule (cron, at, timezone), callback URL, payload or"
        " description; fields left out stay as they are. Pause and resume have their own"
        " tools.",
        {
            **_CUE_ID,
            "name": _described(_ID, "New name."),
            "cron": _described(_TEXT, "New cron expression (makes the cue recurring)."),
            "at": _described(_TEXT, "New ISO 8601 instant (makes the cue one-time)."),
            "callback_url": _URL,
            "timezone": _described(_TEXT, "New IANA zone."),
            "payload": _described(_OBJECT, "New payload (replaces the stored one)."),
            "description": _TEXT,
        },
        _update_cue,
        required=("cue_id",),
        destructive=True,
        idempotent=True,
    ),
    Tool(
        "cueapi_pause_cue",
        "Pause a cue: it does not fire until resumed.",
        _CUE_ID,
        _pause_cue,
        required=("cue_id",),
        idempotent=True,
    ),
    Tool(
        "cueapi_resume_cue",
        "Resume a paused cue; its next run is computed from now.",
        _CUE_ID,
        _resume_cue,
        required=("cue_id",),
        idempotent=True,
    ),
    Tool(
        "cueapi_delete_cue",
        "Delete a cue and its whole execution history. Cannot be undone.",
        _CUE_ID,
        _delete_cue,
        required=("cue_id",),
        destructive=True,
    ),
    Tool(
        "cueapi_list_executions",
        "List executions (every run or missed run of your cues), newest first, with their"
        " delivery status, outcome and payload.",
        {
            "cue_id": _described(_ID, "Only this cue's executions."),
            "status": _described(_ID, "Only executions in this status."),
            "limit": _LIMIT,
            "offset": _OFFSET,
        },
        _list_executions,
        read_only=True,
    ),
    Tool(
        "cueapi_get_execution",
        "Get one execution: delivery status, attempts, outcome, evidence and payload.",
        _EXECUTION_ID,
        _get_execution,
        required=("execution_id",),
        read_only=True,
    ),
    Tool(
        "cueapi_list_claimable_executions",
        "List worker-transport executions waiting to be claimed, oldest first, optionally"
        " only those whose payload.task or payload.agent matches.",
        {
            "task_name": _described(_ID, "Only executions whose payload.task is this."),
            "agent": _described(_ID, "Only executions whose payload.agent is this."),
        },
        _list_claimable,
        read_only=True,
    ),
    Tool(
        "cueapi_claim_execution",
        "Claim one waiting worker execution before running it; exactly one claimer wins"
        " (the others get a conflict). The claim holds a lease (lease_seconds).",
        {**_EXECUTION_ID, "worker_id": _WORKER_ID},
        _claim,
        required=("execution_id", "worker_id"),
    ),
    Tool(
        "cueapi_claim_next_execution",
        "Claim the oldest waiting worker execution, optionally only one whose payload.task"
        " is task_name. With task_name and nothing waiting, answers claimed: false.",
        {"worker_id": _WORKER_ID, "task_name": _described(_ID, "Only this task.")},
        _claim_next,
        required=("worker_id",),
    ),
    Tool(
        "cueapi_execution_heartbeat",
        "Extend the lease of an execution this worker claimed.",
        {**_EXECUTION_ID, "worker_id": _WORKER_ID},
        _heartbeat,
        required=("execution_id", "worker_id"),
    ),
    Tool(
        "cueapi_report_outcome",
        "Report what a run achieved, with evidence (external_id, result_url, summary)."
        " Write-once: a second report is refused.",
        {
            **_EXECUTION_ID,
            "success": {"type": "boolean"},
            "external_id": _described(_ID, "An id in the system the work went to."),
            "result_url": _described(_URL, "A URL showing the result."),
            "summary": {"type": "string", "maxLength": 500},
        },
        _report_outcome,
        required=("execution_id", "success"),
    ),
    Tool(
        "cueapi_explain_schedule",
        "Preview when a cron expression fires in a time zone, in local time and UTC,"
        " noting each fire a daylight-saving gap or fold moved.",
        {
            "cron": _described(_TEXT, "Five-field cron expression or @daily-style alias."),
            "timezone": _described(_TEXT, "IANA zone (UTC)."),
            "from": _described(_TEXT, "ISO 8601 start (now)."),
            "count": {"type": "integer", "minimum": 1, "maximum": 100, "description": "(10)"},
        },
        _explain_schedule,
        required=("cron",),
        read_only=True,
    ),
    Tool(
        "cueapi_list_alerts",
        "List alerts (consecutive failures, missed windows, outcome timeouts, failed"
        " verifications), newest first.",
        {
            "alert_type": _ID,
            "cue_id": _ID,
            "acknowledged": {"type": "boolean"},
            "since": _described(_TEXT, "ISO 8601: only alerts since then."),
            "limit": _LIMIT,
            "offset": _OFFSET,
        },
        _list_alerts,
        read_only=True,
    ),
    Tool(
        "cueapi_acknowledge_alert",
        "Mark an alert as seen.",
        {"alert_id": _ID},
        _acknowledge_alert,
        required=("alert_id",),
        idempotent=True,
    ),
)

_BY_NAME = {tool.name: tool for tool in TOOLS}


def tool_named(name: str) -> Tool | None:
    return _BY_NAME.get(name)
