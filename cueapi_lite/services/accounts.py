"""Users, API keys and bearer-token authentication."""

from __future__ import annotations

import dataclasses

from ..clock import Clock
from ..credentials import hash_token, new_api_key, new_webhook_secret
from ..errors import Unauthorized, Unprocessable
from ..models import User
from ..store import Store

__all__ = ["AccountService", "NewKey"]

MAX_TOKEN_CHARS = 512
MAX_EMAIL_CHARS = 254


@dataclasses.dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly minted key: the only moment its plaintext exists."""

    user: User
    api_key: str
    key_id: str
    created_user: bool


def check_email(email: str) -> str:
    email = email.strip()
    local, _, domain = email.partition("@")
    if not local or not domain or len(email) > MAX_EMAIL_CHARS or any(c.isspace() for c in email):
        raise Unprocessable(f"Not a valid email address: {email[:80]!r}")
    return email


class AccountService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def authenticate(self, authorization: str | None) -> User:
        """The user behind an `Authorization: Bearer <key>` header, or 401."""
        if not authorization:
            raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>'")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
            raise Unauthorized("Invalid API key")
        match = await self.store.users.by_key_hash(hash_token(token))
        if match is None:
            raise Unauthorized("Invalid API key")
        if match.status == "rotated":
            raise Unauthorized("This API key was rotated; use the new key", "key_rotated")
        if match.status != "active":
            raise Unauthorized("This API key was revoked")
        return match.user

    async def mint_key(self, email: str, label: str = "default") -> NewKey:
        """A new key for the user with this email, creating the user if needed."""
        email = check_email(email)
        now_ms = self.clock.now_ms()
        user = await self.store.users.by_email(email)
        created = False
        if user is None:
            user = await self.store.users.create(email, new_webhook_secret(), now_ms)
            created = user is not None
            if user is None:  # created by someone else meanwhile
                user = await self.store.users.by_email(email)
            assert user is not None
        api_key = new_api_key()
        key_id = await self.store.users.add_key(
            user.id, api_key, hash_token(api_key), label, now_ms
        )
        return NewKey(user, api_key, key_id, created)
