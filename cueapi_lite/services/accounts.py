"""Users, API keys, webhook secrets, sessions, and who is calling (CONTRACT §1.3, E18-E30).

A bearer token is an API key (`cue_sk_…`) or a session token (`cue_ses_…`); either is
looked up by its SHA-256 hash, so no plaintext is stored or compared. Every request that
authenticates counts against its key's (or session's) rate window; failed attempts and
requests without auth count against the client address.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from typing import Any

from ..callbacks import CallbackPolicy, CallbackRefused
from ..clock import Clock
from ..config import Settings
from ..credentials import (
    SESSION_TOKEN_PREFIX,
    hash_token,
    new_api_key,
    new_session_token,
    new_webhook_secret,
)
from ..errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized, Unprocessable
from ..models import User
from ..ratelimit import RateLimits, RateState
from ..request_shapes import UNSET, KeyLabel, Register, SessionExchange, load
from ..request_shapes import Preferences as PreferencesBody
from ..store import (
    KeyLimitReached,
    KeyRecord,
    LastActiveKey,
    Preferences,
    SessionMatch,
    Store,
    Tx,
    is_postgres,
)

__all__ = ["AccountService", "Caller", "NewKey", "NewSession", "check_email"]

MAX_TOKEN_CHARS = 512
MAX_EMAIL_CHARS = 254
MAX_LABEL_CHARS = 100
MAX_ACTIVE_KEYS = 500
# Rotated and revoked keys stay listed this long ("soft-delete, 30d grace").
KEY_RECORD_KEPT_MS = 30 * 86_400_000
# last_used_at is written at most this often per key (not a write per request).
TOUCH_EVERY_MS = 60_000
# A verified credential is trusted this long without reading it again. Every change made
# through this process (revoke, rotate, regenerate, refresh, a new webhook secret) drops
# it at once; the time bounds how long another process's change can go unseen. Nodes
# sharing a PostgreSQL database change each other's credentials, so there it is 0.
VERIFIED_FOR_MS = 5_000
MAX_VERIFIED = 10_000
# (old token hash, new session hash, now, expiry) -> the user id, or None
TokenSwap = Callable[[str, str, int, int], Awaitable[str | None]]
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# RFC 5322 "atext" before the @, a host name after it (no dot needed: `admin@local`).
_EMAIL = re.compile(r"^[\w.!#$%&'*+/=?^`{|}~-]+@\w(?:[\w.-]*\w)?$")


@dataclasses.dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly minted key: the only moment its plaintext exists."""

    user: User
    api_key: str
    key_id: str
    created_user: bool


@dataclasses.dataclass(frozen=True, slots=True)
class NewSession:
    token: str
    user: User
    expires_at_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class _Verified:
    caller: Caller
    until_ms: int  # trusted until then
    session_expires_at_ms: int | None  # a session still ends on time


@dataclasses.dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request: the user, and the key or session that authenticated it."""

    user: User
    key_id: str | None  # None for a session
    key_prefix: str | None
    session_hash: str | None = None

    @property
    def rate_identity(self) -> str:
        return f"key:{self.key_id}" if self.key_id else f"session:{self.session_hash}"


def check_email(email: object) -> str:
    if not isinstance(email, str):
        raise Unprocessable("email: must be a string", details=[
            {"field": "email", "message": "must be a string"}])  # fmt: skip
    email = email.strip()
    if len(email) > MAX_EMAIL_CHARS or not _EMAIL.match(email):
        raise Unprocessable(f"Not a valid email address: {email[:80]!r}", details=[
            {"field": "email", "message": "must be an email address"}])  # fmt: skip
    return email


def check_label(label: object) -> str:
    if not isinstance(label, str) or not label.strip():
        raise Unprocessable("label: must be a non-empty string", details=[
            {"field": "label", "message": "must be a non-empty string"}])  # fmt: skip
    label = label.strip()
    if len(label) > MAX_LABEL_CHARS or _CONTROL.search(label):
        raise Unprocessable(
            f"label: at most {MAX_LABEL_CHARS} characters, no control characters",
            details=[{"field": "label", "message": f"at most {MAX_LABEL_CHARS} characters"}],
        )
    return label


def check_confirmation(header: str | None) -> None:
    """Destructive calls need `X-Confirm-Destructive: true` (C and W send it, E21)."""
    if (header or "").strip().lower() != "true":
        raise BadRequest(
            "This replaces a credential at once: send the header X-Confirm-Destructive: true",
            "confirmation_required",
        )


def key_not_found() -> NotFound:
    return NotFound("API key not found", "key_not_found")


def revoke_key(
    tx: Tx, user_id: str, key_id: str, now_ms: int, purge_before_ms: int
) -> KeyRecord | None:
    """active -> revoked: it stops authenticating at once. A user keeps at least one
    active key: revoking the last one raises LastActiveKey, changing nothing. Returns the
    key (unchanged if it was already revoked or rotated), or None when the user has no
    such key; keys revoked before `purge_before_ms` go."""
    key = tx.key(user_id, key_id)
    if key is None:
        return None
    if key.status == "active":
        if tx.active_keys(user_id) <= 1:
            raise LastActiveKey(key_id)
        key = tx.revoke_key(key_id, now_ms) or key
    tx.purge_revoked_keys(purge_before_ms)
    return key


class AccountService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: Settings | None = None,
        on_secret_changed: Callable[[str], None] | None = None,
        policy: CallbackPolicy | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings or Settings()
        # The alert webhook URL is a callback like any other: same policy, same form.
        self.policy = policy or CallbackPolicy(self.settings.callback_policy)
        self.rate = RateLimits(clock, self.settings)
        # The delivery service caches webhook secrets per user; rotation must reach it.
        self.on_secret_changed = on_secret_changed
        self._touched_ms: dict[str, int] = {}
        self._verified: dict[str, _Verified] = {}  # by token hash
        self.verified_for_ms = 0 if is_postgres(self.settings.db) else VERIFIED_FOR_MS

    # --- who is calling -------------------------------------------------------------

    async def identify(self, authorization: str | None) -> Caller:
        """The caller behind an `Authorization: Bearer <key or session>` header, or 401."""
        if not authorization:
            raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>'")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
            raise Unauthorized("Invalid API key")
        token_hash = hash_token(token)
        now_ms = self.clock.now_ms()
        known = self._verified.get(token_hash)
        if known is not None and now_ms < known.until_ms:
            ends_ms = known.session_expires_at_ms
            if ends_ms is None or now_ms < ends_ms:
                caller = known.caller
                if caller.key_id is not None:
                    await self._touch(caller.key_id)
                return caller
        if token.startswith(SESSION_TOKEN_PREFIX):
            return self._session_caller(token_hash, await self.store.tokens.session(token_hash))
        match = await self.store.users.by_key_hash(token_hash)
        if match is None:
            raise Unauthorized("Invalid API key")
        if match.status == "rotated":
            raise Unauthorized("This API key was rotated; use the new key", "key_rotated")
        if match.status != "active":
            raise Unauthorized("This API key was revoked")
        caller = Caller(match.user, match.key_id, match.prefix)
        self._remember(token_hash, caller, None)
        await self._touch(match.key_id)
        return caller

    def _session_caller(self, token_hash: str, session: SessionMatch | None) -> Caller:
        if session is None:
            raise Unauthorized("Invalid session token")
        if session.retired:
            raise Unauthorized("This session was refreshed; use the new session token")
        if session.expires_at_ms <= self.clock.now_ms():
            raise Unauthorized("Session expired: log in again", "session_expired")
        caller = Caller(session.user, None, None, token_hash)
        self._remember(token_hash, caller, session.expires_at_ms)
        return caller

    def _remember(self, token_hash: str, caller: Caller, session_ends_ms: int | None) -> None:
        # Called right after the read, with no await in between: a change that commits
        # later drops this entry (see `_forget`).
        if not self.verified_for_ms:
            return
        if len(self._verified) >= MAX_VERIFIED:
            del self._verified[next(iter(self._verified))]
        until_ms = self.clock.now_ms() + self.verified_for_ms
        self._verified[token_hash] = _Verified(caller, until_ms, session_ends_ms)

    def _forget(
        self, *, key_id: str | None = None, user_id: str | None = None, session: str | None = None
    ) -> None:
        """Drop the verified credentials a change affects: a key, a user's credentials
        (their record holds the webhook secret), or a session."""
        if session is not None:
            self._verified.pop(session, None)
        for token_hash, known in list(self._verified.items()):
            caller = known.caller
            if (key_id is not None and caller.key_id == key_id) or (
                user_id is not None and caller.user.id == user_id
            ):
                del self._verified[token_hash]

    async def authenticate(self, authorization: str | None) -> User:
        """The user behind an `Authorization` header, or 401 (not rate-counted)."""
        return (await self.identify(authorization)).user

    async def admit(
        self, authorization: str | None, address: str
    ) -> tuple[Caller, RateState | None]:
        """Identify the caller and count the request against its rate window (429 when
        full). A failed authentication counts against the client address instead, so
        guessing keys is rate-limited too."""
        try:
            caller = await self.identify(authorization)
        except Unauthorized:
            self.rate.per_address.hit(f"ip:{address}")
            raise
        return caller, self.rate.per_caller.hit(caller.rate_identity)

    def admit_anonymous(self, address: str) -> RateState | None:
        """Count a request to a route without auth against the client address."""
        return self.rate.per_address.hit(f"ip:{address}")

    async def _touch(self, key_id: str) -> None:
        now_ms = self.clock.now_ms()
        if now_ms - self._touched_ms.get(key_id, -TOUCH_EVERY_MS) < TOUCH_EVERY_MS:
            return
        if len(self._touched_ms) > 10_000:
            self._touched_ms.clear()
        self._touched_ms[key_id] = now_ms
        await self.store.users.touch_key(key_id, now_ms)

    # --- users ----------------------------------------------------------------------

    async def user_for(self, email: str, create: bool) -> tuple[User, bool]:
        """The user with this email, created (with a fresh webhook secret) if `create`;
        NotFound otherwise. Returns the user and whether it was created now."""
        email = check_email(email)
        user = await self.store.users.by_email(email)
        if user is not None:
            return user, False
        if not create:
            raise NotFound(f"No account with the email {email}", "user_not_found")
        user = await self.store.users.create(email, new_webhook_secret(), self.clock.now_ms())
        if user is not None:
            return user, True
        user = await self.store.users.by_email(email)  # created by someone else meanwhile
        assert user is not None
        return user, False

    async def mint_key(self, email: str, label: str = "default") -> NewKey:
        """A new key for the user with this email, creating the user if needed."""
        user, created = await self.user_for(email, create=True)
        api_key = new_api_key()
        key_id = await self.store.users.add_key(
            user.id, api_key, hash_token(api_key), label, self.clock.now_ms()
        )
        return NewKey(user, api_key, key_id, created)

    async def register(self, body: dict[str, Any]) -> NewKey:
        """E18: a new user and its first key, when registration is open."""
        if not self.settings.registration_open:
            raise Forbidden(
                "Registration is disabled on this server; ask its operator for a key"
                " (cueapi-lite keys create)",
                "registration_disabled",
            )
        email = check_email(load(body, Register).email)
        api_key = new_api_key()
        # The user and its first key in one transaction: never a user left without a key.
        created = await self.store.users.create_with_key(
            email, new_webhook_secret(), self.clock.now_ms(), api_key, hash_token(api_key)
        )
        if created is None:
            raise Conflict(f"An account with the email {email} already exists", "duplicate_email")
        user, key_id = created
        return NewKey(user, api_key, key_id, created_user=True)

    async def preferences(self, user: User) -> Preferences:
        return await self.store.users.preferences(user.id)

    async def update_preferences(self, user: User, body: dict[str, Any]) -> Preferences:
        """E20: `alert_webhook_url` (http(s) URL or null) and `email_alerts` (bool)."""
        wanted = load(body, PreferencesBody)
        changes: dict[str, Any] = {
            name: getattr(wanted, name)
            for name in PreferencesBody.__struct_fields__
            if getattr(wanted, name) is not UNSET
        }
        if changes.get("alert_webhook_url") is not None:
            try:
                changes["alert_webhook_url"] = self.policy.check(changes["alert_webhook_url"])
            except CallbackRefused as exc:
                raise Unprocessable(
                    f"alert_webhook_url: {exc}",
                    details=[{"field": "alert_webhook_url", "message": str(exc)}],
                ) from None
        if not changes:
            raise Unprocessable(
                "Nothing to update: send alert_webhook_url and/or email_alerts", "no_fields"
            )
        await self.store.users.set_preferences(user.id, changes)
        return await self.store.users.preferences(user.id)

    # --- keys -----------------------------------------------------------------------

    def _purge_before_ms(self) -> int:
        return self.clock.now_ms() - KEY_RECORD_KEPT_MS

    async def regenerate(self, caller: Caller, confirmation: str | None) -> tuple[str, KeyRecord]:
        """E21: replace the key that made the request (same label); the old key answers
        401 `key_rotated` from now on. Returns the new key's plaintext and record."""
        check_confirmation(confirmation)
        if caller.key_id is None:
            raise BadRequest(
                "A session has no key to regenerate: call this with the API key to replace,"
                " or mint one with POST /v1/auth/keys",
                "api_key_required",
            )
        api_key = new_api_key()
        self._forget(key_id=caller.key_id)
        try:
            record = await self.store.users.rotate_key(
                caller.user.id, caller.key_id, api_key, hash_token(api_key),
                self.clock.now_ms(), self._purge_before_ms(),
            )  # fmt: skip
        finally:  # and again: a request may have verified the key while this committed
            self._forget(key_id=caller.key_id)
        if record is None:  # rotated or revoked by a concurrent request
            raise Unauthorized("This API key was rotated; use the new key", "key_rotated")
        return api_key, record

    async def keys(self, user: User) -> list[KeyRecord]:
        return await self.store.users.keys(user.id, self._purge_before_ms())

    async def create_key(self, user: User, body: dict[str, Any]) -> tuple[str, KeyRecord]:
        """E24: a new named key; its plaintext is returned this once."""
        label = check_label(load(body, KeyLabel).label)
        api_key = new_api_key()
        try:
            key_id = await self.store.users.add_key(
                user.id, api_key, hash_token(api_key), label, self.clock.now_ms(), MAX_ACTIVE_KEYS
            )
        except KeyLimitReached:
            raise Conflict(
                f"You already have {MAX_ACTIVE_KEYS} active keys: revoke one first",
                "too_many_keys",
            ) from None
        record = await self.store.users.key(user.id, key_id)
        assert record is not None
        return api_key, record

    async def rename_key(self, user: User, key_id: str, body: dict[str, Any]) -> KeyRecord:
        label = check_label(load(body, KeyLabel).label)
        record = await self.store.users.rename_key(user.id, key_id, label)
        if record is None:
            raise key_not_found()
        return record

    async def revoke_key(self, user: User, key_id: str) -> KeyRecord:
        """E26: the key stops authenticating at once; its record stays listed 30 days."""
        self._forget(key_id=key_id)
        try:
            now_ms, purge_before_ms = self.clock.now_ms(), self._purge_before_ms()
            record = await self.store.transact(
                lambda tx: revoke_key(tx, user.id, key_id, now_ms, purge_before_ms)
            )
        except LastActiveKey:
            raise Conflict(
                "This is your only active key: create another before revoking it",
                "last_active_key",
            ) from None
        finally:
            self._forget(key_id=key_id)
        if record is None:
            raise key_not_found()
        return record

    # --- webhook secret -------------------------------------------------------------

    async def rotate_webhook_secret(self, user: User, confirmation: str | None) -> str:
        """E28: a new signing secret; the next delivery attempt signs with it."""
        check_confirmation(confirmation)
        secret = new_webhook_secret()
        await self.store.users.set_webhook_secret(user.id, secret)
        self._forget(user_id=user.id)
        if self.on_secret_changed is not None:
            self.on_secret_changed(user.id)
        return secret

    # --- sessions -------------------------------------------------------------------

    async def exchange(self, body: dict[str, Any]) -> NewSession:
        """E29: trade a one-time login token (from a device approval) for a session."""
        token = load(body, SessionExchange).token
        if not token:
            raise Unauthorized("Invalid or used token", "invalid_token")
        return await self._new_session(hash_token(token), self.store.tokens.exchange)

    async def refresh(self, caller: Caller) -> NewSession:
        """E30: a fresh session for a live one; the old session stops working."""
        if caller.session_hash is None:
            raise Unauthorized(
                "Refreshing needs a session token (POST /v1/auth/session), not an API key",
                "invalid_token",
            )
        self._forget(session=caller.session_hash)
        try:
            return await self._new_session(caller.session_hash, self.store.tokens.refresh)
        finally:
            self._forget(session=caller.session_hash)

    async def open_session(self, user: User, ttl_s: int | None = None) -> NewSession:
        """A session for a user who has just authenticated another way (the dashboard's
        login with an API key): the same session tokens, lasting `ttl_s` (default
        `session_ttl_s`)."""
        token = new_session_token()
        now_ms = self.clock.now_ms()
        expires_ms = now_ms + (ttl_s or self.settings.session_ttl_s) * 1000
        await self.store.tokens.issue(hash_token(token), user.id, now_ms, expires_ms)
        return NewSession(token, user, expires_ms)

    async def close_session(self, caller: Caller) -> None:
        """Log out: the caller's session stops working (an API key is left alone)."""
        if caller.session_hash is not None:
            self._forget(session=caller.session_hash)
            try:
                await self.store.tokens.retire(caller.session_hash, self.clock.now_ms())
            finally:
                # A request verified while the retire was being written must not linger.
                self._forget(session=caller.session_hash)

    async def _new_session(self, old_hash: str, swap: TokenSwap) -> NewSession:
        token = new_session_token()
        now_ms = self.clock.now_ms()
        expires_ms = now_ms + self.settings.session_ttl_s * 1000
        user_id = await swap(old_hash, hash_token(token), now_ms, expires_ms)
        user = await self.store.users.get(user_id) if user_id else None
        if user is None:
            raise Unauthorized("Invalid, expired or already used token", "invalid_token")
        return NewSession(token, user, expires_ms)
