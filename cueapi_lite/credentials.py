"""API keys, webhook secrets and their hashes.

Keys are shown once and stored only as SHA-256 hashes; a lookup by hash never compares
plaintext, and the final equality check is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

__all__ = [
    "hash_token",
    "key_prefix",
    "new_api_key",
    "new_key_id",
    "new_login_token",
    "new_magic_token",
    "new_session_token",
    "new_user_id",
    "new_webhook_secret",
    "same_hash",
    "same_secret",
]

API_KEY_PREFIX = "cue_sk_"
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
# Session tokens (E29) and one-time login tokens (E33 -> E29) are told apart from API keys
# by their prefix, so authentication looks in one table only.
SESSION_TOKEN_PREFIX = "cue_ses_"  # noqa: S105 - a prefix, not a secret
LOGIN_TOKEN_PREFIX = "cue_lt_"  # noqa: S105 - a prefix, not a secret
_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_api_key() -> str:
    """`cue_sk_` + 32 lowercase hex characters."""
    return API_KEY_PREFIX + secrets.token_hex(16)


def new_webhook_secret() -> str:
    """`whsec_` + 64 lowercase hex characters."""
    return WEBHOOK_SECRET_PREFIX + secrets.token_hex(32)


def new_session_token() -> str:
    """`cue_ses_` + 64 hex characters: a bearer token, stored hashed like a key."""
    return SESSION_TOKEN_PREFIX + secrets.token_hex(32)


def new_login_token() -> str:
    """`cue_lt_` + 64 hex characters: traded once for a session (E29)."""
    return LOGIN_TOKEN_PREFIX + secrets.token_hex(32)


def new_magic_token() -> str:
    """The secret of a magic link (URL-safe, 256 bits)."""
    return secrets.token_urlsafe(32)


def _short_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


def new_key_id() -> str:
    return _short_id("key_")


def new_user_id() -> str:
    return _short_id("usr_")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))


def same_secret(given: str, expected: str) -> bool:
    """Constant-time equality of two secrets of any length or alphabet."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def key_prefix(api_key: str) -> str:
    """What may be shown of a key: its first 11 characters (`cue_sk_` + 4)."""
    return api_key[:11]
