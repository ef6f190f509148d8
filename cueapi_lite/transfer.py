"""Moving cues in and out: a cue as the body that creates it on any CueAPI server.

`create_body` turns a Cue object (as any CueAPI server answers it) into the body of
`POST /v1/cues`; `export` writes a user's active and paused cues that way, and `remote_cues`
pulls them from another server through its API. A paused cue's body carries
`"status": "paused"`; since creating always makes an active cue, the importer pauses it
right after creating it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from .json_input import JsonInputError, decode_json_body

__all__ = ["TransferError", "create_body", "remote_cues"]

PAGE = 100
MOVABLE = ("active", "paused")
MAX_REMOTE_CUES = 100_000
TIMEOUT_S = 30.0
# The fields of a Cue object that say what it is, not what happened to it.
_SETTINGS = ("description", "transport", "payload", "retry", "on_failure", "delivery",
             "alerts", "catch_up", "verification")  # fmt: skip


class TransferError(Exception):
    """Another server could not be read (unreachable, refused the key, odd answers)."""


def create_body(cue: dict[str, Any]) -> dict[str, Any]:
    """The create body of a Cue object: name, schedule, callback and every setting; the
    status only when paused. Ids, counters and times of past runs stay behind."""
    schedule = dict(cue.get("schedule") or {})
    kind = schedule.get("type")
    body: dict[str, Any] = {
        "name": cue["name"],
        "schedule": {
            "type": kind,
            **(
                {"cron": schedule.get("cron")}
                if kind == "recurring"
                else {"at": schedule.get("at")}
            ),
            "timezone": schedule.get("timezone") or "UTC",
        },
    }
    callback = cue.get("callback") or {}
    if isinstance(callback, dict) and callback.get("url"):
        body["callback"] = {
            "url": callback["url"],
            "method": callback.get("method") or "POST",
            "headers": callback.get("headers") or {},
        }
    for field in _SETTINGS:
        if cue.get(field) is not None:
            body[field] = cue[field]
    if cue.get("status") == "paused":
        body["status"] = "paused"
    return body


def remote_cues(
    url: str, key: str, transport: httpx.BaseTransport | None = None
) -> Iterator[dict[str, Any]]:
    """Every active and paused cue of the account behind `key` on the CueAPI server at
    `url` (with or without `/v1`), page by page."""
    base = url.rstrip("/").removesuffix("/v1")
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=TIMEOUT_S,
        transport=transport,
    ) as client:  # fmt: skip
        offset = 0
        while offset < MAX_REMOTE_CUES:
            try:
                response = client.get("/v1/cues", params={"limit": PAGE, "offset": offset})
            except httpx.HTTPError as exc:
                raise TransferError(f"cannot reach {base}: {exc}") from None
            if response.status_code != 200:
                raise TransferError(
                    f"{base} answered {response.status_code} to GET /v1/cues: {response.text[:300]}"
                )
            try:  # the API's decoder: what this server could not store is refused here
                cues = decode_json_body(response.content)["cues"]
            except JsonInputError as exc:
                where = f"{exc.field}: " if exc.field else ""
                raise TransferError(
                    f"{base} did not answer with JSON cueapi-lite accepts: {where}{exc.reason}"
                ) from None
            except (KeyError, TypeError):
                raise TransferError(f"{base} did not answer with a list of cues") from None
            # Filtered here, not with `?status=`: a server that ignores the parameter
            # must not hand over finished cues (a past `once` cannot be created again).
            yield from (c for c in cues if isinstance(c, dict) and c.get("status") in MOVABLE)
            if len(cues) < PAGE:
                break
            offset += len(cues)
