"""`/v1/auth/…` account routes (E18-E30): register, me, keys, webhook secret, sessions.

Device-code login (E31-E33) lives in `device_login.py`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..limits import shown_limit
from ..models import User, iso
from ..read_cache import ReadCache
from ..services.accounts import AccountService, Caller, NewSession
from ..services.limits import DAY_MS, LimitService
from ..store import KeyRecord, Preferences
from .common import admit_anonymous, caller_of, json_body, ok, reused, user_of

__all__ = ["auth_routes", "key_json"]

KEY_NOT_REVEALED = (
    "API keys are stored only as SHA-256 hashes, so no server can show a key again."
    " Regenerate this key (POST /v1/auth/key/regenerate) or mint a named one"
    " (POST /v1/auth/keys)."
)


def key_json(record: KeyRecord, current_key_id: str | None = None) -> dict[str, Any]:
    """A key as listed: `status` is `active` or `revoked` (a rotated key is revoked, with
    `revoked_reason: rotated`); never the key itself."""
    revoked_reason = None if record.status == "active" else record.status
    return {
        "id": record.id,
        "label": record.label,
        "prefix": record.prefix,
        "status": "active" if record.status == "active" else "revoked",
        "revoked_reason": revoked_reason,
        "replaced_by": record.replaced_by,
        "created_at": iso(record.created_at_ms),
        "last_used_at": iso(record.last_used_at_ms),
        "revoked_at": iso(record.revoked_at_ms),
        "current": record.id == current_key_id,
    }


def _session_json(session: NewSession) -> dict[str, Any]:
    return {
        "session_token": session.token,
        "email": session.user.email,
        "expires_at": iso(session.expires_at_ms),
        "token_type": "bearer",
    }


def auth_routes(accounts: AccountService, limits: LimitService, reads: ReadCache) -> list[Route]:
    rate_limit = shown_limit(accounts.settings.rate_limit_per_minute)

    async def me_json(user: User, caller: Caller, prefs: Preferences) -> dict[str, Any]:
        usage = await limits.usage(user)
        return {
            "id": user.id,
            "email": user.email,
            "plan": usage.plan,
            "active_cues": usage.cues_active,
            "active_cue_limit": usage.cue_limit,
            "executions_this_month": usage.executions_used,
            "monthly_execution_limit": usage.execution_limit,
            "rate_limit_per_minute": rate_limit,
            "api_key_prefix": caller.key_prefix,
            "authenticated_with": "api_key" if caller.key_id else "session",
            "has_webhook_secret": bool(user.webhook_secret),
            "alert_webhook_url": prefs.alert_webhook_url,
            "email_alerts": prefs.email_alerts,
            "created_at": iso(user.created_at_ms),
        }

    async def register(request: Request) -> Response:
        admit_anonymous(request, accounts)
        new = await accounts.register(await json_body(request))
        return ok(
            {
                "api_key": new.api_key,
                "email": new.user.email,
                "webhook_secret": new.user.webhook_secret,
            },
            201,
        )

    async def me(request: Request) -> Response:
        caller = await caller_of(request, accounts)

        async def render() -> Any:
            prefs = await accounts.preferences(caller.user)
            return await me_json(caller.user, caller, prefs)

        # The month's counts start again at a midnight (UTC), so the day is in the key.
        day = accounts.clock.now_ms() // DAY_MS
        return await reused(request, reads, (caller.rate_identity, day), render)

    async def update_me(request: Request) -> Response:
        caller = await caller_of(request, accounts)
        prefs = await accounts.update_preferences(caller.user, await json_body(request))
        return ok(await me_json(caller.user, caller, prefs))

    async def regenerate(request: Request) -> Response:
        caller = await caller_of(request, accounts)
        await json_body(request)  # an empty body is fine; a malformed one is still 400
        api_key, record = await accounts.regenerate(
            caller, request.headers.get("x-confirm-destructive")
        )
        return ok(
            {
                "api_key": api_key,
                "prefix": record.prefix,
                "id": record.id,
                "label": record.label,
                "previous_key_revoked": True,
            }
        )

    async def reveal(request: Request) -> Response:
        caller = await caller_of(request, accounts)
        return ok({"api_key": None, "prefix": caller.key_prefix, "message": KEY_NOT_REVEALED})

    async def list_keys(request: Request) -> Response:
        caller = await caller_of(request, accounts)
        found = await accounts.keys(caller.user)
        return ok({"keys": [key_json(k, caller.key_id) for k in found], "total": len(found)})

    async def create_key(request: Request) -> Response:
        caller = await caller_of(request, accounts)
        api_key, record = await accounts.create_key(caller.user, await json_body(request))
        return ok({**key_json(record, caller.key_id), "api_key": api_key}, 201)

    async def rename_key(request: Request) -> Response:
        caller = await caller_of(request, accounts)
        body = await json_body(request)
        record = await accounts.rename_key(caller.user, request.path_params["key_id"], body)
        return ok(key_json(record, caller.key_id))

    async def revoke_key(request: Request) -> Response:
        caller = await caller_of(request, accounts)
        record = await accounts.revoke_key(caller.user, request.path_params["key_id"])
        return ok(key_json(record, caller.key_id))

    async def webhook_secret(request: Request) -> Response:
        user = await user_of(request, accounts)
        return ok({"webhook_secret": user.webhook_secret})

    async def rotate_webhook_secret(request: Request) -> Response:
        user = await user_of(request, accounts)
        await json_body(request)
        secret = await accounts.rotate_webhook_secret(
            user, request.headers.get("x-confirm-destructive")
        )
        return ok({"webhook_secret": secret, "previous_secret_revoked": True})

    async def session(request: Request) -> Response:
        admit_anonymous(request, accounts)
        return ok(_session_json(await accounts.exchange(await json_body(request))))

    async def refresh(request: Request) -> Response:
        caller = await caller_of(request, accounts)
        await json_body(request)
        return ok(_session_json(await accounts.refresh(caller)))

    return [
        Route("/v1/auth/register", register, methods=["POST"]),
        Route("/v1/auth/me", me, methods=["GET"]),
        Route("/v1/auth/me", update_me, methods=["PATCH"]),
        Route("/v1/auth/key/regenerate", regenerate, methods=["POST"]),
        Route("/v1/auth/key", reveal, methods=["GET"]),
        Route("/v1/auth/keys", list_keys, methods=["GET"]),
        Route("/v1/auth/keys", create_key, methods=["POST"]),
        Route("/v1/auth/keys/{key_id}", rename_key, methods=["PATCH"]),
        Route("/v1/auth/keys/{key_id}", revoke_key, methods=["DELETE"]),
        Route("/v1/auth/webhook-secret", webhook_secret, methods=["GET"]),
        Route("/v1/auth/webhook-secret/regenerate", rotate_webhook_secret, methods=["POST"]),
        Route("/v1/auth/session", session, methods=["POST"]),
        Route("/v1/auth/session/refresh", refresh, methods=["POST"]),
    ]
