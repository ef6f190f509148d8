"""Device-code login (CONTRACT §9, E31-E33): start, approve, poll.

The CLI makes up a code and polls; someone approves the code on this server: the
operator (`cueapi-lite device approve`), a visitor of the approval page who proves who
they are, the email owner through a magic link, or the auto-approve setting. The first
poll after approval gets a newly minted key (label `device <code>`) and a one-time
login token; nothing plaintext is ever stored. Codes expire after 900 s.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote

from ..clock import Clock
from ..config import Settings
from ..credentials import (
    hash_token,
    new_api_key,
    new_login_token,
    new_magic_token,
    same_hash,
    same_secret,
)
from ..errors import (
    ApiError,
    BadRequest,
    Forbidden,
    NotFound,
    Unauthorized,
)
from ..mailer import Mailer
from ..models import User
from ..ratelimit import SlidingWindow
from ..refusals import refused
from ..request_shapes import DeviceCodeBody, MagicLinkRequest, load
from ..store import LOGIN_TOKEN, DeviceCode, NewCredentials, Refusal, Store, Tx
from .accounts import AccountService, check_email

__all__ = ["DEVICE_CODE_TTL_S", "DeviceService", "check_code"]

log = logging.getLogger(__name__)
DEVICE_CODE_TTL_S = 900
# Codes waiting for approval at once, server-wide (each costs a row until it expires).
MAX_WAITING_CODES = 10_000
MAGIC_LINKS_PER_EMAIL_PER_HOUR = 5
_CODE = re.compile(r"^[A-Za-z0-9_-]{6,128}$")


def check_code(code: Any) -> str:
    if not isinstance(code, str) or not _CODE.match(code):
        raise BadRequest(
            "device_code: 6 to 128 characters, letters, digits, '-' or '_'",
            "invalid_device_code",
        )
    return code


def _not_found() -> ApiError:
    return refused(Refusal.MISSING, "device_code")


def _expired() -> ApiError:
    return refused(Refusal.EXPIRED, "device_code")


def _not_pending() -> ApiError:
    return refused(Refusal.NOT_PENDING, "device_code")


def claim_device_code(tx: Tx, code: str, new: NewCredentials, now_ms: int) -> str | None:
    """approved -> claimed, storing the new key and the login token in the same
    transaction. The user id, or None (writing nothing) when the code is not approved
    and unexpired (another poll claimed it first)."""
    user_id = tx.claim_device_code(code, now_ms)
    if user_id is None:
        return None
    key_id = tx.insert_key(user_id, new.api_key, new.key_hash, new.label, now_ms, None)
    tx.insert_token(new.login_token_hash, LOGIN_TOKEN, user_id, now_ms, new.login_expires_at_ms)
    tx.set_device_key(code, key_id)
    return user_id


class DeviceService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: Settings,
        accounts: AccountService,
        mailer: Mailer,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.accounts = accounts
        self.mailer = mailer
        self.magic_links = SlidingWindow(clock, MAGIC_LINKS_PER_EMAIL_PER_HOUR, window_s=3600)

    @staticmethod
    def verification_url(base_url: str, code: str) -> str:
        """Where a person approves the code (it carries the code, like RFC 8628's
        `verification_uri_complete`)."""
        return f"{base_url}/auth/device?code={quote(code)}"

    # --- the client side: start and poll ---------------------------------------------

    async def start(self, body: dict[str, Any], requested_ip: str, base_url: str) -> str:
        """E31: register a client-chosen code; returns its verification URL."""
        code = load(body, DeviceCodeBody).device_code
        now_ms = self.clock.now_ms()
        approved: User | None = None
        if self.settings.auto_approve:
            approved, _ = await self.accounts.user_for(self.settings.auto_approve_email, True)
        created = await self.store.devices.create(
            code, requested_ip[:64], now_ms, now_ms + DEVICE_CODE_TTL_S * 1000,
            MAX_WAITING_CODES, approved.id if approved else None, "auto" if approved else None,
        )  # fmt: skip
        if created is not None:
            raise refused(created, "device_code")
        url = self.verification_url(base_url, code)
        if approved is not None:
            log.info("login code %s approved automatically for %s", code, approved.email)
        else:
            log.info(
                "login code %s is waiting for approval: open %s or run"
                " `cueapi-lite device approve %s --email EMAIL`",
                code, url, code,
            )  # fmt: skip
        return url

    async def poll(self, body: dict[str, Any]) -> dict[str, Any]:
        """E33, always 200: pending, then once approved (with a new key), then claimed;
        expired for an unknown, malformed or expired code."""
        code = body.get("device_code")
        if not isinstance(code, str) or not _CODE.match(code):
            return {"status": "expired"}
        now_ms = self.clock.now_ms()
        device = await self.store.devices.get(code)
        if device is None or (device.status != "claimed" and device.expired(now_ms)):
            return {"status": "expired"}
        if device.status != "approved":
            return {"status": device.status}
        api_key, login_token = new_api_key(), new_login_token()
        new = NewCredentials(
            api_key=api_key,
            key_hash=hash_token(api_key),
            label=f"device {device.code}",
            login_token_hash=hash_token(login_token),
            login_expires_at_ms=now_ms + DEVICE_CODE_TTL_S * 1000,
        )
        user_id = await self.store.transact(lambda tx: claim_device_code(tx, code, new, now_ms))
        user = await self.store.users.get(user_id) if user_id else None
        if user is None:  # another poll claimed it first
            return {"status": "claimed"}
        log.info("login code %s claimed: a new key was issued to %s", device.code, user.email)
        return {
            "status": "approved",
            "api_key": api_key,
            "email": user.email,
            "session_token": login_token,
        }

    # --- the approving side -----------------------------------------------------------

    async def get(self, code: str) -> DeviceCode:
        device = await self.store.devices.get(check_code(code))
        if device is None:
            raise _not_found()
        return device

    async def waiting(self) -> list[DeviceCode]:
        return await self.store.devices.waiting(self.clock.now_ms())

    async def _pending(self, code: str) -> DeviceCode:
        device = await self.get(code)
        if device.expired(self.clock.now_ms()):
            raise _expired()
        if device.status != "pending":
            raise _not_pending()
        return device

    async def approve(self, code: str, email: str, via: str, create_user: bool) -> User:
        """Approve a pending code for the user with this email (created if
        `create_user`, else it must exist)."""
        await self._pending(code)
        try:
            user, _created = await self.accounts.user_for(email, create_user)
        except NotFound:
            raise NotFound(
                f"No account with the email {check_email(email)} on this server, and"
                " registration is off",
                "user_not_found",
            ) from None
        refusal = await self.store.devices.approve(code, user.id, via, self.clock.now_ms())
        if refusal is not None:
            raise refused(refusal, "device_code")
        log.info("login code %s approved for %s (%s)", code, user.email, via)
        return user

    async def approve_with_credential(self, code: str, email: str, credential: str) -> User:
        """The approval page: an email alone may create a new account (exactly when
        registration is open); an existing account needs one of its API keys; the admin
        token approves for any email. An anonymous visitor never gets an existing user."""
        email = email.strip()
        credential = credential.strip()
        admin = self.settings.admin_token
        if credential and admin and same_secret(credential, admin):
            return await self.approve(code, email, "admin_token", create_user=True)
        if credential:
            try:
                caller = await self.accounts.identify(f"Bearer {credential}")
            except Unauthorized:
                raise Forbidden(
                    "That is not a valid API key (or admin token)", "invalid_credential"
                ) from None
            if email and email.lower() != caller.user.email.lower():
                raise Forbidden("That API key belongs to another account", "invalid_credential")
            return await self.approve(code, caller.user.email, "api_key", create_user=False)
        email = check_email(email)
        if await self.store.users.by_email(email) is not None:
            raise Forbidden(
                f"{email} already has an account here: enter one of its API keys, or approve"
                f" on the server with: cueapi-lite device approve {code} --email {email}",
                "credential_required",
            )
        if not self.settings.registration_open:
            raise Forbidden(
                "Registration is off on this server: enter an API key of your account, or"
                " ask the operator to approve the code",
                "registration_disabled",
            )
        return await self.approve(code, email, "registration", create_user=True)

    # --- magic links (E32) ------------------------------------------------------------

    async def send_magic_link(self, body: dict[str, Any], base_url: str) -> str:
        """E32: email a link that approves the code for that address. Returns `email_sent`,
        or `approved` for a code the auto-approve setting already approved."""
        wanted = load(body, MagicLinkRequest)
        code, email = wanted.device_code, check_email(wanted.email)
        device = await self.store.devices.get(code)
        if device is not None and device.approved_via == "auto" and device.status == "approved":
            return "approved"
        self.magic_links.hit(
            f"email:{email.lower()}",
            f"At most {MAGIC_LINKS_PER_EMAIL_PER_HOUR} login links per hour go to one address",
        )
        token = new_magic_token()
        result = await self.store.devices.set_magic_link(
            code, hash_token(token), email, self.clock.now_ms()
        )
        if result is not None:
            raise refused(result, "device_code")
        link = f"{base_url}/v1/auth/verify?device_code={quote(code)}&token={quote(token)}"
        text = (
            f"Someone asked to log in to the cueapi-lite server at {base_url} as {email},"
            f" with the code {code}.\n\nIf it was you, open this link within 15 minutes and"
            f" confirm:\n\n{link}\n\nIf not, ignore this message."
        )
        await self.mailer.send(email, f"cueapi-lite login code {code}", text)
        return "email_sent"

    async def magic_link_target(self, code: str, token: str) -> DeviceCode:
        """The pending code a magic link is for, if the link is valid."""
        device = await self._pending(code)
        if not device.magic_token_hash or not same_hash(hash_token(token), device.magic_token_hash):
            raise Forbidden("This login link is not valid (a newer one may have been sent)",
                            "invalid_token")  # fmt: skip
        return device

    async def approve_magic_link(self, code: str, token: str) -> User:
        device = await self.magic_link_target(code, token)
        assert device.magic_email is not None
        return await self.approve(
            code, device.magic_email, "magic_link", create_user=self.settings.registration_open
        )
