"""The OpenAPI 3.1 document of every endpoint this server answers, built from the request
and response shapes (`request_shapes.py`, `response_shapes.py`) and one table of
operations. A test checks that the table and the router agree, both ways.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import msgspec

from . import __version__
from . import request_shapes as req
from .response_shapes import RESPONSE_SHAPES
from .routes.common import MAX_OFFSET

__all__ = ["OPERATIONS", "Operation", "build_document"]

_REF = "#/components/schemas/{name}"
_STATUS_TEXT = {
    400: "Malformed JSON or a value the server cannot use (invalid_schedule, ...)",
    401: "Missing, unknown, revoked or rotated credential",
    403: "A limit or an ownership rule refuses the request",
    404: "Unknown (or another user's) resource",
    409: "The request loses against the current state",
    410: "The login code has expired",
    413: "The request body is too large",
    422: "A field has the wrong type or is out of range",
    429: "Rate limited; Retry-After is a whole number of seconds",
    503: "A part of the server is not running",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Param:
    name: str
    schema: dict[str, Any]
    description: str
    where: str = "query"


@dataclasses.dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path: what it takes, what it answers and who may call it."""

    method: str
    path: str
    summary: str
    tag: str
    response: str | None = None  # a RESPONSE_SHAPES name; None: no JSON body
    status: int = 200
    body: type[msgspec.Struct] | None = None
    body_required: bool = False
    auth: bool = True
    limited: bool = True  # counted against a rate limit (429)
    errors: tuple[int, ...] = ()
    params: tuple[Param, ...] = ()
    html: bool = False  # a page for people: text/html, errors as pages too
    text: bool = False  # a text/plain answer (the Prometheus exposition format)
    mcp: bool = False  # answers in JSON-RPC 2.0, as the Model Context Protocol says
    form: tuple[str, ...] = ()  # the fields of a browser form body
    links: dict[str, tuple[str, str, str]] = dataclasses.field(default_factory=dict)
    examples: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    same_shape: tuple[int, ...] = ()  # other statuses answered with the response shape

    @property
    def operation_id(self) -> str:
        words = re.sub(r"[{}]", "", self.path).replace("-", "_").strip("/").split("/")
        return "_".join([self.method.lower(), *[w.replace(".", "_") for w in words if w]])


def _text(description: str, max_length: int = 255) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, "description": description}


def _integer(low: int, high: int) -> dict[str, Any]:
    # An empty value (`?limit=`, as an HTML form sends it) means the default.
    return {"anyOf": [{"type": "integer", "minimum": low, "maximum": high}, {"const": ""}]}


LIMIT = Param("limit", _integer(-MAX_OFFSET, MAX_OFFSET), "Page size; clamped to 1..100 (20)")
OFFSET = Param("offset", _integer(0, MAX_OFFSET), "Items to skip (default 0)")
PAGE = (LIMIT, OFFSET)
WORKER_HEADER = Param(
    "X-Worker-Id", _text("The worker acting; must be the claimer"), "", where="header"
)
CONFIRM = Param(
    "X-Confirm-Destructive",
    {"type": "string", "enum": ["true"]},
    "Required: this replaces a credential at once",
    where="header",
)
CUE, EXECUTION = "/v1/cues/{cue_id}", "/v1/executions/{execution_id}"
_CUE_LINKS = {
    "get_cue": ("get_v1_cues_cue_id", "cue_id", "$response.body#/id"),
    "update_cue": ("patch_v1_cues_cue_id", "cue_id", "$response.body#/id"),
    "fire_cue": ("post_v1_cues_cue_id_fire", "cue_id", "$response.body#/id"),
    "delete_cue": ("delete_v1_cues_cue_id", "cue_id", "$response.body#/id"),
}
_EXECUTION_LINKS = {
    "get_execution": (
        "get_v1_executions_execution_id", "execution_id", "$response.body#/execution_id"
    ),
    "report_outcome": (
        "post_v1_executions_execution_id_outcome", "execution_id", "$response.body#/execution_id"
    ),
    "claim": (
        "post_v1_executions_execution_id_claim", "execution_id", "$response.body#/execution_id"
    ),
    "replay": (
        "post_v1_executions_execution_id_replay", "execution_id", "$response.body#/execution_id"
    ),
    "heartbeat": (
        "post_v1_executions_execution_id_heartbeat", "execution_id",
        "$response.body#/execution_id",
    ),
    "verify": (
        "post_v1_executions_execution_id_verify", "execution_id", "$response.body#/execution_id"
    ),
    "hold_for_review": (
        "post_v1_executions_execution_id_verification_pending", "execution_id",
        "$response.body#/execution_id",
    ),
    "add_evidence": (
        "patch_v1_executions_execution_id_evidence", "execution_id",
        "$response.body#/execution_id",
    ),
}  # fmt: skip
_KEY_LINKS = {
    "rename_key": ("patch_v1_auth_keys_key_id", "key_id", "$response.body#/id"),
    "revoke_key": ("delete_v1_auth_keys_key_id", "key_id", "$response.body#/id"),
}

OPERATIONS: tuple[Operation, ...] = (
    # health and this document
    Operation("GET", "/health", "Health of the database, scheduler and delivery", "health",
              "Health", auth=False, limited=False, same_shape=(503,)),
    Operation("GET", "/status", "One-word status", "health", "Status", auth=False,
              limited=False, same_shape=(503,)),
    Operation("GET", "/openapi.json", "This document", "health", auth=False, limited=False),
    Operation("GET", "/docs", "This document for people", "health", auth=False,
              limited=False, html=True),
    Operation("GET", "/metrics", "Prometheus metrics: loopback clients, or anyone with the"
              " metrics token (METRICS_TOKEN) as a bearer token", "health", auth=False,
              limited=False, text=True, errors=(401, 403)),
    # cues
    Operation("POST", "/v1/cues", "Create a cue", "cues", "Cue", 201, req.CueCreate, True,
              errors=(403, 409), links=_CUE_LINKS, examples={
                  "webhook": {
                      "name": "morning-brief",
                      "schedule": {"type": "recurring", "cron": "0 9 * * *",
                                   "timezone": "America/Los_Angeles"},
                      "callback": {"url": "http://127.0.0.1:9000/hook"},
                      "payload": {"task": "daily_brief"},
                  },
                  "worker": {
                      "name": "sync-data", "transport": "worker",
                      "schedule": {"type": "recurring", "cron": "*/15 * * * *"},
                      "payload": {"task": "sync_data"},
                  },
              }),
    Operation("GET", "/v1/cues", "List cues, newest first", "cues", "CueList",
              params=(*PAGE, Param("status", _text("active, paused, completed or failed"), ""))),
    Operation("GET", CUE, "A cue with its newest executions", "cues", "CueDetail",
              errors=(404,)),
    Operation("PATCH", CUE, "Change, pause or resume a cue", "cues", "Cue", body=req.CueBody,
              errors=(403, 404, 409)),
    Operation("DELETE", CUE, "Delete a cue and its history", "cues", status=204,
              errors=(404,)),
    Operation("POST", f"{CUE}/fire", "Run a cue now", "cues", "Started", body=req.Fire,
              errors=(403, 404), links=_EXECUTION_LINKS),
    # executions
    Operation("GET", "/v1/executions", "List executions, newest first", "executions",
              "ExecutionList", params=(*PAGE, *(
                  Param(name, _text(name), "Exact match")
                  for name in ("cue_id", "status", "outcome_state", "triggered_by")))),
    Operation("GET", EXECUTION, "An execution", "executions", "Execution", errors=(404,)),
    Operation("POST", f"{EXECUTION}/outcome", "Report the outcome (write-once)",
              "executions", "OutcomeRecorded", body=req.OutcomeReport, body_required=True,
              errors=(403, 404, 409), params=(WORKER_HEADER,), examples={
                  "success": {"success": True, "result": "sent 3 emails",
                              "external_id": "email:123"},
                  "failure": {"success": False, "error": "SMTP refused"},
              }),
    Operation("PATCH", f"{EXECUTION}/evidence", "Add evidence to a reported outcome",
              "executions", "EvidenceUpdated", body=req.Evidence, body_required=True,
              errors=(404, 409)),
    Operation("POST", f"{EXECUTION}/replay", "Run a finished execution again", "executions",
              "Started", body=req.Empty, errors=(403, 404, 409)),
    Operation("POST", f"{EXECUTION}/verify", "Mark a reported outcome verified or not",
              "executions", "Verified", body=req.Verify, errors=(404, 409)),
    Operation("POST", f"{EXECUTION}/verification-pending", "Hold an outcome for review",
              "executions", "VerificationPending", body=req.Empty, errors=(404, 409)),
    # workers
    Operation("GET", "/v1/executions/claimable", "Worker work waiting, oldest first",
              "workers", "ClaimableList", params=(
                  Param("task", _text("payload.task"), "Exact match"),
                  Param("agent", _text("payload.agent"), "Exact match"))),
    Operation("POST", "/v1/executions/claim", "Claim the oldest claimable execution",
              "workers", "Claimed", body=req.ClaimNext, body_required=True, errors=(409,)),
    Operation("POST", f"{EXECUTION}/claim", "Claim one execution", "workers", "Claimed",
              body=req.Claim, body_required=True, errors=(404, 409)),
    Operation("POST", f"{EXECUTION}/heartbeat", "Extend a claim's lease", "workers",
              "HeartbeatAck", body=req.Empty, errors=(403, 404, 409),
              params=(WORKER_HEADER,)),
    Operation("POST", "/v1/worker/heartbeat", "A worker is alive", "workers", "WorkerAck",
              body=req.WorkerHeartbeat, body_required=True),
    Operation("GET", "/v1/workers", "Workers, latest heartbeat first", "workers",
              "WorkerList"),
    Operation("DELETE", "/v1/workers/{worker_id}", "Forget a worker", "workers", status=204,
              errors=(404,)),
    # alerts
    Operation("GET", "/v1/alerts", "Alerts, newest first", "alerts", "AlertList", params=(
        *PAGE,
        Param("alert_type", _text("consecutive_failure, missed_window, ..."), "Exact match"),
        Param("cue_id", _text("A cue id"), "Exact match"),
        Param("acknowledged", {"type": "string", "enum": ["true", "false", "1", "0", "yes",
                                                          "no"]}, ""),
        Param("since", _text("ISO 8601 instant", 40), "Created at or after"))),
    Operation("POST", "/v1/alerts/{alert_id}/acknowledge", "Acknowledge an alert", "alerts",
              "Alert", body=req.Empty, errors=(404,)),
    # auth and account
    Operation("POST", "/v1/auth/register", "Create a user and its first key", "auth",
              "Registered", 201, req.Register, True, auth=False, errors=(403, 409)),
    Operation("GET", "/v1/auth/me", "Who is calling, with usage", "auth", "Me"),
    Operation("PATCH", "/v1/auth/me", "Alert preferences", "auth", "Me",
              body=req.Preferences, body_required=True),
    Operation("POST", "/v1/auth/key/regenerate", "Replace the calling key", "auth",
              "Regenerated", body=req.Empty, params=(CONFIRM,)),
    Operation("GET", "/v1/auth/key", "The calling key's prefix (keys are never shown again)",
              "auth", "KeyNotShown"),
    Operation("GET", "/v1/auth/keys", "Named keys, active and revoked", "auth", "KeyList"),
    Operation("POST", "/v1/auth/keys", "Mint a named key (shown once)", "auth", "NewKey",
              201, req.KeyLabel, True, errors=(409,), links=_KEY_LINKS),
    Operation("PATCH", "/v1/auth/keys/{key_id}", "Rename a key", "auth", "Key",
              body=req.KeyLabel, body_required=True, errors=(404,)),
    Operation("DELETE", "/v1/auth/keys/{key_id}", "Revoke a key", "auth", "Key",
              errors=(404, 409)),
    Operation("GET", "/v1/auth/webhook-secret", "The webhook signing secret", "auth",
              "WebhookSecret"),
    Operation("POST", "/v1/auth/webhook-secret/regenerate", "Replace the signing secret",
              "auth", "WebhookSecretRotated", body=req.Empty, params=(CONFIRM,)),
    Operation("POST", "/v1/auth/session", "Trade a one-time login token for a session",
              "auth", "Session", body=req.SessionExchange, body_required=True, auth=False,
              errors=(401,)),
    Operation("POST", "/v1/auth/session/refresh", "Replace the calling session", "auth",
              "Session", body=req.Empty),
    # device-code login
    Operation("POST", "/v1/auth/device-code", "Start a device-code login", "login",
              "DeviceCodeStarted", 201, req.DeviceCodeBody, True, auth=False, errors=(409,)),
    Operation("POST", "/v1/auth/device-code/submit-email", "Email a magic link for a code",
              "login", "DeviceCodeStatus", body=req.MagicLinkRequest, body_required=True,
              auth=False, errors=(404,)),
    Operation("POST", "/v1/auth/device-code/poll", "Poll a device-code login (always 200)",
              "login", "DeviceCodeStatus", body=req.DevicePoll, auth=False),
    Operation("GET", "/v1/auth/verify", "The magic link's confirmation page", "login",
              auth=False, html=True, errors=(400, 403, 404), params=(
                  Param("device_code", _text("The login code"), ""),
                  Param("token", _text("The link's token"), ""))),
    Operation("POST", "/v1/auth/verify", "Confirm a magic link", "login", auth=False,
              html=True, errors=(400, 403, 404, 409, 413),
              form=("device_code", "token", "csrf")),
    Operation("GET", "/auth/device", "The page that approves a login code", "login",
              auth=False, html=True, errors=(400, 403, 404, 410),
              params=(Param("code", _text("The login code"), ""),)),
    Operation("POST", "/auth/device", "Approve a login code", "login", auth=False,
              html=True, errors=(400, 403, 404, 409, 413, 422),
              form=("code", "email", "credential", "csrf")),
    # usage, billing, support, echo
    Operation("GET", "/v1/usage", "Plan, limits and usage this month", "account", "Usage"),
    Operation("POST", "/v1/billing/checkout", "Hosted only: always 404", "account",
              auth=False, status=404, body=req.Empty),
    Operation("POST", "/v1/billing/portal", "Hosted only: always 404", "account",
              auth=False, status=404, body=req.Empty),
    Operation("POST", "/v1/support", "File a support ticket (stored here)", "account",
              "TicketReceived", 201, req.SupportTicket, True, errors=(403,),
              links={"get_ticket": (
                  "get_v1_support_ticket_id", "ticket_id", "$response.body#/ticket_id")}),
    Operation("GET", "/v1/support", "Support tickets", "account", "TicketList",
              params=PAGE),
    Operation("GET", "/v1/support/{ticket_id}", "A support ticket", "account", "Ticket",
              errors=(404,)),
    Operation("POST", "/v1/echo/{token}", "Keep a webhook for the quickstart (no auth)",
              "account", "EchoStored", auth=False, errors=(400,), body=req.Empty),
    Operation("GET", "/v1/echo/{token}", "What the quickstart's echo received", "account",
              "EchoState", errors=(400,)),
    # The Model Context Protocol (streamable HTTP, stateless, JSON answers): its messages
    # and errors are JSON-RPC 2.0 as the MCP specification defines them; only the
    # authentication errors before it are this API's envelope.
    Operation("POST", "/mcp", "Model Context Protocol tools over this API (JSON-RPC 2.0)",
              "mcp", body=req.JsonRpc, body_required=True, mcp=True),
)  # fmt: skip

_PATH_PARAMS = {
    "token": {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,128}$"},
    "ticket_id": {"type": "string"},
}


def _response(op: Operation) -> dict[str, Any]:
    if op.response is not None:
        schema = {"$ref": _REF.format(name=op.response)}
        return {"description": op.summary, "content": {"application/json": {"schema": schema}}}
    if op.mcp:
        schema = {"type": "object", "description": "A JSON-RPC 2.0 response"}
        return {"description": op.summary, "content": {"application/json": {"schema": schema}}}
    if op.html or op.text:
        media = "text/html" if op.html else "text/plain"
        return {"description": op.summary, "content": {media: {"schema": {"type": "string"}}}}
    if op.path == "/openapi.json":
        schema = {"type": "object"}
        return {"description": op.summary, "content": {"application/json": {"schema": schema}}}
    if op.status == 204:
        return {"description": op.summary}
    return {"$ref": f"#/components/responses/{op.status}"}


def _error_statuses(op: Operation) -> list[int]:
    if op.mcp:  # the protocol answers its own errors; ours come before it
        return [401, 413, 429]
    statuses = set(op.errors)
    if op.auth:
        statuses.add(401)
    if op.limited:
        statuses.add(429)
    if op.body is not None or op.form:
        statuses.update((400, 413, 422))
    if any(p.where == "query" for p in op.params) and not op.html:
        statuses.add(422)
    if "{" in op.path and not op.html:
        statuses.add(404)
    return sorted(statuses - {op.status})


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "security": [{"bearer": []}] if op.auth else [],
    }
    params = [
        {"name": name, "in": "path", "required": True,
         "schema": _PATH_PARAMS.get(name, {"type": "string", "maxLength": 255})}
        for name in re.findall(r"{(\w+)}", op.path)
    ]  # fmt: skip
    params += [
        {"name": p.name, "in": p.where, "required": p.where == "header" and p is CONFIRM,
         "schema": p.schema, **({"description": p.description} if p.description else {})}
        for p in op.params
    ]  # fmt: skip
    if params:
        out["parameters"] = params
    if op.body is not None:
        schema = {"$ref": _REF.format(name=op.body.__name__)}
        media: dict[str, Any] = {"schema": schema}
        if op.examples:
            media["examples"] = {name: {"value": value} for name, value in op.examples.items()}
        out["requestBody"] = {"required": op.body_required, "content": {"application/json": media}}
    elif op.form:
        fields = {name: {"type": "string", "maxLength": 320} for name in op.form}
        out["requestBody"] = {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {"type": "object", "properties": fields}
                }
            },
        }
    answer = _response(op)
    if op.links:
        answer["links"] = {
            name: {"operationId": target, "parameters": {param: expression}}
            for name, (target, param, expression) in op.links.items()
        }
    responses: dict[str, Any] = {str(op.status): answer}
    for status in op.same_shape:
        responses[str(status)] = {**_response(op), "description": _STATUS_TEXT[status]}
    for status in _error_statuses(op):
        responses[str(status)] = {"$ref": f"#/components/responses/{status}"}
        if op.html:  # the page answers its own errors as pages
            responses[str(status)] = {
                "description": _STATUS_TEXT[status],
                "content": {
                    "text/html": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"$ref": _REF.format(name="Error")}},
                },
            }
    if op.mcp:
        responses["default"] = {
            "description": "A JSON-RPC 2.0 error, as the Model Context Protocol defines it",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    out["responses"] = responses
    return out


def build_document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (the same for every request)."""
    bodies = {op.body for op in OPERATIONS if op.body is not None}
    shapes = sorted(bodies, key=lambda s: s.__name__) + list(RESPONSE_SHAPES.values())
    _, components = msgspec.json.schema_components(shapes, ref_template=_REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    error_ref = {"$ref": _REF.format(name="Error")}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cueapi-lite",
            "version": __version__,
            "description": (
                "Cron with accountability for AI agents, self-hosted: the CueAPI v1 wire"
                " protocol plus this server's additions. Every 4xx and 5xx answer is the"
                " Error envelope. Unknown body fields and query parameters are ignored;"
                " an empty body means {}."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (cue_sk_...) or a session token (cue_ses_...)",
                }
            },
            "responses": {
                str(status): {
                    "description": text,
                    "content": {"application/json": {"schema": error_ref}},
                }
                for status, text in _STATUS_TEXT.items()
            },
        },
    }
