"""What the MCP tools act on: a small `Backend` interface and its two implementations.

`ServicesBackend` calls the running server's services for one authenticated caller (the
`/mcp` endpoint of `serve`); `ApiBackend` calls a server over its HTTP API (the stdio
command). Both answer with the JSON the API would send and fail with `ToolFailure`
carrying the API's code, message and status, so a tool behaves the same on either.
"""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import httpx

from ..clock import SystemClock
from ..errors import ApiError, Unprocessable
from ..models import alert_json, cue_json, execution_json, parse_instant, started_json
from ..routes.alerts import alert_page_json
from ..routes.cues import cue_page_json, recent_executions_json
from ..routes.executions import execution_page_json, outcome_recorded_json
from ..routes.workers import claimable_json, claimed_json, heartbeat_json
from ..store import AlertFilters, ExecutionFilters

if TYPE_CHECKING:
    from ..app import CueApiLite
    from ..models import User

__all__ = ["BACKEND_KEY", "ApiBackend", "Backend", "ServicesBackend", "ToolFailure", "failure"]

Json = dict[str, Any]
# Where an HTTP request to `/mcp` carries its backend (its authenticated caller) to the
# tool call.
BACKEND_KEY = "cueapi_lite.mcp_backend"


class ToolFailure(Exception):
    """The API refused the call: its error code, message and HTTP status."""

    def __init__(self, message: str, code: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def __str__(self) -> str:
        return f"{self.message} ({self.code}, HTTP {self.status})"


def failure(exc: ApiError) -> ToolFailure:
    return ToolFailure(exc.message, exc.code, exc.status)


class Backend(Protocol):
    """One user's view of a cueapi-lite server, answering in the API's JSON shapes."""

    def now_ms(self) -> int: ...

    async def create_cue(self, body: Json) -> Json: ...
    async def list_cues(self, status: str | None, limit: int, offset: int) -> Json: ...
    async def get_cue(self, cue_id: str) -> Json: ...
    async def update_cue(self, cue_id: str, body: Json) -> Json: ...
    async def delete_cue(self, cue_id: str) -> None: ...
    async def fire_cue(self, cue_id: str, body: Json) -> Json: ...
    async def list_executions(self, filters: dict[str, str], limit: int, offset: int) -> Json: ...
    async def get_execution(self, execution_id: str) -> Json: ...
    async def report_outcome(self, execution_id: str, body: Json) -> Json: ...
    async def list_claimable(self, task: str | None, agent: str | None) -> Json: ...
    async def claim(self, execution_id: str, worker_id: str) -> Json: ...
    async def claim_next(self, worker_id: str, task: str | None) -> Json: ...
    async def heartbeat(self, execution_id: str, worker_id: str) -> Json: ...
    async def list_alerts(self, filters: dict[str, Any], limit: int, offset: int) -> Json: ...
    async def acknowledge_alert(self, alert_id: str) -> Json: ...


class ServicesBackend:
    """The running server's services, for the user a request authenticated as."""

    def __init__(self, lite: CueApiLite, user: User) -> None:
        self.lite = lite
        self.user = user

    def now_ms(self) -> int:
        return self.lite.clock.now_ms()

    async def _call(self, coroutine: Any) -> Any:
        try:
            return await coroutine
        except ApiError as exc:
            raise failure(exc) from None

    async def create_cue(self, body: Json) -> Json:
        return cue_json(await self._call(self.lite.cues.create(self.user, body)))

    async def list_cues(self, status: str | None, limit: int, offset: int) -> Json:
        found, total = await self._call(self.lite.cues.page(self.user, status, limit, offset))
        return cue_page_json(found, total, limit, offset, render=cue_json)

    async def get_cue(self, cue_id: str) -> Json:
        cue, executions, total = await self._call(self.lite.cues.get(self.user, cue_id))
        return {**cue_json(cue), **recent_executions_json(executions, total, execution_json)}

    async def update_cue(self, cue_id: str, body: Json) -> Json:
        return cue_json(await self._call(self.lite.cues.update(self.user, cue_id, body)))

    async def delete_cue(self, cue_id: str) -> None:
        await self._call(self.lite.cues.delete(self.user, cue_id))

    async def fire_cue(self, cue_id: str, body: Json) -> Json:
        return started_json(await self._call(self.lite.cues.fire(self.user, cue_id, body)))

    async def list_executions(self, filters: dict[str, str], limit: int, offset: int) -> Json:
        found, total = await self._call(
            self.lite.executions.page(self.user, ExecutionFilters(**filters), limit, offset)
        )
        return execution_page_json(found, total, limit, offset, render=execution_json)

    async def get_execution(self, execution_id: str) -> Json:
        return execution_json(await self._call(self.lite.executions.get(self.user, execution_id)))

    async def report_outcome(self, execution_id: str, body: Json) -> Json:
        execution, state = await self._call(
            self.lite.executions.report_outcome(self.user, execution_id, body)
        )
        return outcome_recorded_json(execution, state)

    async def list_claimable(self, task: str | None, agent: str | None) -> Json:
        return claimable_json(await self._call(self.lite.leases.claimable(self.user, task, agent)))

    async def claim(self, execution_id: str, worker_id: str) -> Json:
        execution = await self._call(
            self.lite.leases.claim(self.user, execution_id, {"worker_id": worker_id})
        )
        return claimed_json(execution, self.lite.leases.lease_ms // 1000)

    async def claim_next(self, worker_id: str, task: str | None) -> Json:
        body = {"worker_id": worker_id, "task": task}
        execution = await self._call(self.lite.leases.claim_next(self.user, body))
        return claimed_json(execution, self.lite.leases.lease_ms // 1000)

    async def heartbeat(self, execution_id: str, worker_id: str) -> Json:
        execution = await self._call(self.lite.leases.heartbeat(self.user, execution_id, worker_id))
        return heartbeat_json(execution)

    async def list_alerts(self, filters: dict[str, Any], limit: int, offset: int) -> Json:
        since = filters.pop("since", None)
        try:
            since_ms = None if since is None else parse_instant(since, UTC)
        except ValueError:
            raise failure(Unprocessable("since: must be an ISO 8601 date-time")) from None
        found, total = await self._call(
            self.lite.alerts.page(
                self.user, AlertFilters(**filters, since_ms=since_ms), limit, offset
            )
        )
        return alert_page_json(found, total, limit, offset)

    async def acknowledge_alert(self, alert_id: str) -> Json:
        return alert_json(await self._call(self.lite.alerts.acknowledge(self.user, alert_id)))


def _path(*parts: str) -> str:
    return "/v1/" + "/".join(quote(part, safe="") for part in parts)


class ApiBackend:
    """A cueapi-lite server over its HTTP API (`base_url` without `/v1`)."""

    def __init__(self, base_url: str, api_key: str, timeout_s: float = 30.0) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout_s,
        )

    def now_ms(self) -> int:
        return SystemClock().now_ms()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        body: Json | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        try:
            response = await self.http.request(
                method, path, json=body, params=params, headers=headers
            )
        except httpx.HTTPError as exc:
            raise ToolFailure(
                f"cannot reach the cueapi-lite server at {self.http.base_url}: {exc}",
                "server_unreachable",
                503,
            ) from None
        if response.status_code == 204:
            return None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_success:
            return data
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            raise ToolFailure(
                str(error.get("message")), str(error.get("code")), response.status_code
            )
        raise ToolFailure(f"HTTP {response.status_code}", "http_error", response.status_code)

    async def create_cue(self, body: Json) -> Json:
        result: Json = await self._request("POST", _path("cues"), body)
        return result

    async def list_cues(self, status: str | None, limit: int, offset: int) -> Json:
        params = {"limit": limit, "offset": offset, **({"status": status} if status else {})}
        result: Json = await self._request("GET", _path("cues"), params=params)
        return result

    async def get_cue(self, cue_id: str) -> Json:
        result: Json = await self._request("GET", _path("cues", cue_id))
        return result

    async def update_cue(self, cue_id: str, body: Json) -> Json:
        result: Json = await self._request("PATCH", _path("cues", cue_id), body)
        return result

    async def delete_cue(self, cue_id: str) -> None:
        await self._request("DELETE", _path("cues", cue_id))

    async def fire_cue(self, cue_id: str, body: Json) -> Json:
        result: Json = await self._request("POST", _path("cues", cue_id, "fire"), body)
        return result

    async def list_executions(self, filters: dict[str, str], limit: int, offset: int) -> Json:
        params = {"limit": limit, "offset": offset, **filters}
        result: Json = await self._request("GET", _path("executions"), params=params)
        return result

    async def get_execution(self, execution_id: str) -> Json:
        result: Json = await self._request("GET", _path("executions", execution_id))
        return result

    async def report_outcome(self, execution_id: str, body: Json) -> Json:
        result: Json = await self._request(
            "POST", _path("executions", execution_id, "outcome"), body
        )
        return result

    async def list_claimable(self, task: str | None, agent: str | None) -> Json:
        params = {k: v for k, v in (("task", task), ("agent", agent)) if v}
        result: Json = await self._request("GET", _path("executions", "claimable"), params=params)
        return result

    async def claim(self, execution_id: str, worker_id: str) -> Json:
        result: Json = await self._request(
            "POST", _path("executions", execution_id, "claim"), {"worker_id": worker_id}
        )
        return result

    async def claim_next(self, worker_id: str, task: str | None) -> Json:
        body = {"worker_id": worker_id, **({"task": task} if task else {})}
        result: Json = await self._request("POST", _path("executions", "claim"), body)
        return result

    async def heartbeat(self, execution_id: str, worker_id: str) -> Json:
        result: Json = await self._request(
            "POST",
            _path("executions", execution_id, "heartbeat"),
            {},
            headers={"X-Worker-Id": worker_id},
        )
        return result

    async def list_alerts(self, filters: dict[str, Any], limit: int, offset: int) -> Json:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        for name, value in filters.items():
            params[name] = str(value).lower() if isinstance(value, bool) else value
        result: Json = await self._request("GET", _path("alerts"), params=params)
        return result

    async def acknowledge_alert(self, alert_id: str) -> Json:
        result: Json = await self._request("POST", _path("alerts", alert_id, "acknowledge"), {})
        return result
