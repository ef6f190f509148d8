"""The shape of every JSON request body, as msgspec Structs: the one definition that both
checks a body (`load`) and describes it in `/openapi.json`.

Shapes hold types and bounds only; rules that need more than the body (cron syntax, time
zones, the callback policy, payload bytes) stay with the services. An absent field is
`UNSET`; for most fields `null` means the same (CONTRACT §3.4: clients send partial bodies).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from .errors import ApiError, BadRequest, Unprocessable

__all__ = [
    "UNSET",
    "AlertWebhookUrl",
    "Claim",
    "ClaimNext",
    "CueBody",
    "CueCreate",
    "DeviceCodeBody",
    "DevicePoll",
    "Empty",
    "Evidence",
    "Fire",
    "KeyLabel",
    "MagicLinkRequest",
    "OutcomeReport",
    "Preferences",
    "Register",
    "SessionExchange",
    "SupportTicket",
    "Verify",
    "WorkerHeartbeat",
    "load",
    "shortest",
]

T = TypeVar("T", bound=Struct)


_NOT_BLANK = {"message": "must not be blank"}


def _code(code: str, description: str | None = None) -> Meta:
    """Marks a field whose shape errors answer with a specific API code."""
    return Meta(description=description, extra={"code": code})


# --- cues (E1, E4, E6) -------------------------------------------------------------------

Cron = Annotated[str, _code("invalid_schedule", "Five-field cron expression (or an @alias)")]
At = Annotated[
    str,
    _code("invalid_schedule", "ISO 8601 instant; naive means the schedule's time zone"),
]
Zone = Annotated[str, _code("invalid_timezone", "IANA time zone name; default UTC")]
HttpMethod = Annotated[
    str,
    Meta(
        pattern=r"^([Pp][Oo][Ss][Tt]|[Gg][Ee][Tt]|[Pp][Uu][Tt]|[Pp][Aa][Tt][Cc][Hh])$",
        description="POST, GET, PUT or PATCH, any case",
        extra={"message": "must be one of POST, GET, PUT, PATCH"},
    ),
]
HeaderName = Annotated[
    str,
    Meta(
        pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$",
        extra={"message": "has a name that is not an HTTP header name"},
    ),
]
HeaderValue = Annotated[
    str,
    Meta(
        max_length=4096,
        pattern=r"^[^\r\n\x00]*$",
        extra={"message": "has a value with a line break or NUL"},
    ),
]
Headers = Annotated[
    dict[HeaderName, HeaderValue],
    Meta(max_length=50, description="Extra request headers (string values)"),
]
Url = Annotated[str, _code("invalid_callback_url", "http(s) URL allowed by the callback policy")]


class Schedule(Struct, kw_only=True):
    """`recurring` needs `cron`, `once` needs `at`; PATCH may send a part."""

    type: Annotated[Literal["recurring", "once"] | None, _code("invalid_schedule")] | UnsetType = (
        UNSET
    )
    cron: Cron | UnsetType | None = UNSET
    at: At | UnsetType = UNSET
    timezone: Zone | UnsetType | None = UNSET


class Callback(Struct, kw_only=True):
    url: Url | UnsetType | None = UNSET
    method: HttpMethod | UnsetType | None = UNSET
    headers: Headers | UnsetType | None = UNSET


class Retry(Struct, kw_only=True):
    max_attempts: Annotated[int, Meta(ge=1, le=10, description="All attempts, the first included")] | UnsetType = UNSET  # noqa: E501  # fmt: skip
    backoff_minutes: Annotated[
        list[Annotated[int, Meta(ge=1, le=1440)]], Meta(min_length=1, max_length=10)
    ] | UnsetType = UNSET  # fmt: skip


class OnFailure(Struct, kw_only=True):
    email: bool | UnsetType = UNSET
    webhook: Url | UnsetType | None = UNSET
    pause: bool | UnsetType = UNSET


class Delivery(Struct, kw_only=True):
    timeout_seconds: Annotated[int, Meta(ge=1, le=3600)] | UnsetType = UNSET
    outcome_deadline_seconds: Annotated[int, Meta(ge=1, le=3600)] | UnsetType = UNSET


class Alerts(Struct, kw_only=True):
    consecutive_failures: Annotated[int, Meta(ge=1, le=100)] | UnsetType = UNSET
    missed_window_multiplier: Annotated[int, Meta(ge=1, le=10)] | UnsetType = UNSET


VerificationMode = Literal[
    "none", "require_external_id", "require_result_url", "require_artifacts", "manual"
]


class Verification(Struct, kw_only=True):
    mode: VerificationMode | UnsetType = UNSET


CueName = Annotated[str, Meta(min_length=1, max_length=255, pattern=r"\S", extra=_NOT_BLANK)]
Payload = Annotated[
    dict[str, Any], Meta(description="Any JSON object, at most MAX_PAYLOAD_BYTES serialised")
]


class CueBody(Struct, kw_only=True):
    """A cue create or update body, nested as the official clients send it.

    The flat form of MCP-style clients is accepted too: top-level `cron`, `at` and
    `timezone` stand for `schedule`; a string `callback` (with `callback_method` and
    `callback_headers`) stands for `callback.url`. Nested fields win.
    """

    name: CueName | UnsetType = UNSET
    description: Annotated[str, Meta(max_length=2000)] | UnsetType | None = UNSET
    status: Literal["active", "paused"] | UnsetType | None = UNSET
    transport: Literal["webhook", "worker"] | UnsetType | None = UNSET
    schedule: Schedule | UnsetType | None = UNSET
    callback: Url | Callback | UnsetType | None = UNSET
    payload: Payload | UnsetType | None = UNSET
    retry: Retry | UnsetType | None = UNSET
    on_failure: OnFailure | UnsetType | None = UNSET
    delivery: Delivery | UnsetType | None = UNSET
    alerts: Alerts | UnsetType | None = UNSET
    catch_up: Literal["skip_missed", "run_once_if_missed", "replay_all_missed"] | UnsetType | None = UNSET  # noqa: E501  # fmt: skip
    verification: Verification | UnsetType | None = UNSET
    cron: Cron | UnsetType | None = UNSET
    at: At | UnsetType | None = UNSET
    timezone: Zone | UnsetType | None = UNSET
    callback_method: HttpMethod | UnsetType | None = UNSET
    callback_headers: Headers | UnsetType | None = UNSET


class CueCreate(CueBody, kw_only=True):
    """A cue create body: `name` is required, and so is a schedule (nested or flat)."""

    name: CueName


class Fire(Struct, kw_only=True):
    """Run a cue now, optionally with another payload (merged shallowly or replacing it)."""

    payload_override: Payload | None = None
    merge_strategy: Literal["merge", "replace"] = "merge"


# --- executions (E9-E17) -----------------------------------------------------------------

HttpUrl = Annotated[
    str,
    Meta(
        max_length=2000,
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\s]",
        extra={"message": "must be an absolute http(s) URL"},
    ),
]
Metadata = Annotated[dict[str, Any], Meta(description="At most 10 KiB as compact JSON")]
Artifacts = Annotated[list[Any], Meta(max_length=100, description="At most 64 KiB as JSON")]


class Evidence(Struct, kw_only=True):
    """Evidence added after the outcome: scalars replace, artifacts append,
    metadata merges."""

    external_id: Annotated[str, Meta(max_length=500)] | UnsetType | None = UNSET
    result_url: HttpUrl | UnsetType | None = UNSET
    result_ref: Annotated[str, Meta(max_length=500)] | UnsetType | None = UNSET
    result_type: Annotated[str, Meta(max_length=100)] | UnsetType | None = UNSET
    summary: Annotated[str, Meta(max_length=500)] | UnsetType | None = UNSET
    artifacts: Artifacts | UnsetType | None = UNSET
    metadata: Metadata | UnsetType | None = UNSET


class OutcomeReport(Evidence, kw_only=True):
    """What the agent reports about an execution; recorded once."""

    success: bool
    result: Annotated[str, Meta(max_length=8000)] | UnsetType | None = UNSET
    error: Annotated[str, Meta(max_length=8000)] | UnsetType | None = UNSET


class Verify(Struct, kw_only=True):
    """A verdict on a reported outcome; `{}` means valid (the SDK always sends it)."""

    valid: bool = True
    reason: Annotated[str, Meta(max_length=500)] | None = None


WorkerId = Annotated[str, Meta(min_length=1, max_length=255, pattern=r"\S", extra=_NOT_BLANK)]


class Claim(Struct, kw_only=True):
    """Claim one execution for a worker."""

    worker_id: WorkerId


class ClaimNext(Claim, kw_only=True):
    """Claim the oldest claimable execution, optionally of one task or agent."""

    task: Annotated[str, Meta(max_length=255)] | None = None
    agent: Annotated[str, Meta(max_length=255)] | None = None


class WorkerHeartbeat(Claim, kw_only=True):
    """A worker is alive and handles these tasks."""

    handlers: Annotated[
        list[Annotated[str, Meta(min_length=1, max_length=255)]], Meta(max_length=200)
    ] | None = None  # fmt: skip


# --- accounts, logins, support (E18-E33, E41) ---------------------------------------------

Email = Annotated[str, Meta(max_length=254, description="An email address")]
DeviceCode = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9_-]{6,128}$",
        extra={
            "code": "invalid_device_code",
            "message": "6 to 128 characters, letters, digits, '-' or '_'",
        },
    ),
]


class Register(Struct, kw_only=True):
    email: Email


class KeyLabel(Struct, kw_only=True):
    label: Annotated[str, Meta(min_length=1, max_length=100, pattern=r"\S", extra=_NOT_BLANK)]


AlertWebhookUrl = Annotated[
    str,
    Meta(max_length=2048, pattern=r"^https?://[^\s/]", extra={"message": "must be an http(s) URL"}),
]


class Preferences(Struct, kw_only=True):
    """Alert preferences; send at least one field."""

    alert_webhook_url: AlertWebhookUrl | UnsetType | None = UNSET
    email_alerts: bool | UnsetType = UNSET


class SessionExchange(Struct, kw_only=True):
    """A missing or unknown token is the same 401 `invalid_token`."""

    token: Annotated[str, Meta(max_length=512)] | None = None


class DeviceCodeBody(Struct, kw_only=True):
    device_code: DeviceCode


class DevicePoll(Struct, kw_only=True):
    """The poll answers `expired` for any code it does not know, malformed ones included."""

    device_code: Any = None


class MagicLinkRequest(DeviceCodeBody, kw_only=True):
    email: Email


class SupportTicket(Struct, kw_only=True):
    subject: Annotated[str, Meta(min_length=10, max_length=200)]
    message: Annotated[str, Meta(min_length=30, max_length=10_000)]
    severity: Literal["low", "medium", "high"]
    type: Literal["bug", "feature-request"]


class JsonRpc(Struct, kw_only=True):
    """A JSON-RPC 2.0 message of the Model Context Protocol (its own specification)."""

    jsonrpc: Literal["2.0"]
    method: str | UnsetType = UNSET
    id: int | str | UnsetType | None = UNSET
    params: dict[str, Any] | UnsetType = UNSET


class Empty(Struct):
    """A body whose fields are all ignored (any object, or nothing)."""


# --- loading -----------------------------------------------------------------------------

_CODES: dict[str, type[ApiError]] = {
    "invalid_schedule": BadRequest,
    "invalid_callback_url": BadRequest,
    "invalid_device_code": BadRequest,
    "invalid_timezone": Unprocessable,
}
_AT = re.compile(r" - at (`key` in )?`\$(.*)`$")
_TYPE_WORDS = {
    "int": "an integer",
    "str": "a string",
    "bool": "true or false",
    "object": "an object",
    "array": "a list",
    "float": "a number",
}


def load(body: dict[str, Any], shape: type[T]) -> T:
    """`body` as `shape`, or the API error that names the first bad field."""
    try:
        return msgspec.convert(body, shape)
    except msgspec.ValidationError as exc:
        raise _error(str(exc), shape) from None


def shortest(shape: type[Struct], field: str) -> int:
    """The `min_length` a shape declares for one of its string fields (0 if none)."""
    info = msgspec.inspect.type_info(shape)
    assert isinstance(info, msgspec.inspect.StructType)
    node = next(f.type for f in info.fields if f.name == field)
    return getattr(node, "min_length", None) or 0


def _error(text: str, shape: type[Struct]) -> ApiError:
    found = _AT.search(text)
    raw = text[: found.start()] if found else text
    path = found.group(2) if found else ""
    missing = re.match(r"Object missing required field `(.+)`", raw)
    if missing:
        path = f"{path}.{missing.group(1)}"
    field = re.sub(r"\[(\d+|\.\.\.)\]", "", path).lstrip(".") or "body"
    key = bool(found and found.group(1))  # an object's key, not its value, is bad
    info = _field_info(shape, field, item=path.endswith("]"), key=key)
    message = "is required" if missing else _say(raw, info)
    cls = _CODES.get(info.get("code", ""), Unprocessable)
    code = info.get("code") if cls is not Unprocessable or info.get("code") else None
    return cls(f"{field}: {message}", code, details=[{"field": field, "message": message}])


def _say(raw: str, info: dict[str, Any]) -> str:
    """A message for people from msgspec's."""
    if raw.startswith("Invalid enum value") and info.get("choices"):
        return "must be one of " + ", ".join(info["choices"])
    if "matching regex" in raw:
        return str(info.get("message", "is not valid"))
    if "of length" in raw:
        bound = re.search(r"([<>]=) (\d+)", raw)
        if bound:
            if bound.group(1) == ">=" and bound.group(2) == "1":
                return "must not be empty"
            word = "at most" if bound.group(1) == "<=" else "at least"
            unit = "characters" if raw.startswith("Expected `str`") else "items"
            return f"must have {word} {int(bound.group(2)):,} {unit}"
    if re.match(r"Expected `(int|float)` [<>]=", raw):
        low, high = info.get("ge"), info.get("le")
        if low is not None and high is not None:
            return f"must be between {low} and {high}"
        bound = re.search(r"([<>]=) (-?\d+)", raw)
        assert bound is not None
        return ("must be at most " if bound.group(1) == "<=" else "must be at least ") + (
            bound.group(2)
        )
    expected = re.match(r"Expected `([^`]+)`", raw)
    if expected:
        words = [_TYPE_WORDS.get(t.strip(), t.strip()) for t in expected.group(1).split("|")]
        words = [w for w in words if w != "null"]
        return "must be " + " or ".join(words)
    return raw[:200]


def _field_info(shape: type[Struct], field: str, item: bool, key: bool) -> dict[str, Any]:
    """The code, bounds and choices declared for a dotted field path of `shape` (of its
    items when `item`, of its keys when `key`)."""
    node: Any = msgspec.inspect.type_info(shape)
    info: dict[str, Any] = {}
    for name in field.split("."):
        node = _unwrap(node, info)
        if not isinstance(node, msgspec.inspect.StructType):
            break
        match = [f for f in node.fields if f.encode_name == name]
        if not match:
            break
        node = match[0].type
    node = _unwrap(node, info)
    if key and isinstance(node, msgspec.inspect.DictType):
        _unwrap(node.key_type, info)
    elif item and isinstance(node, msgspec.inspect.ListType | msgspec.inspect.DictType):
        _unwrap(getattr(node, "item_type", None) or getattr(node, "value_type", None), info)
    return info


def _unwrap(node: Any, info: dict[str, Any]) -> Any:
    """Looks through metadata, unions and collections, gathering what they declare."""
    inspect = msgspec.inspect
    while True:
        if isinstance(node, inspect.Metadata):
            if node.extra:
                info.update(node.extra)
            node = node.type
        elif isinstance(node, inspect.UnionType):
            kept = [t for t in node.types if not isinstance(t, inspect.NoneType)]
            structs = [t for t in kept if isinstance(t, inspect.StructType)]
            node = structs[0] if structs else kept[0]
        elif isinstance(node, inspect.LiteralType):
            info["choices"] = [str(v) for v in node.values]
            return node
        elif isinstance(node, inspect.IntType):
            info.update(ge=node.ge, le=node.le)
            return node
        else:
            return node
