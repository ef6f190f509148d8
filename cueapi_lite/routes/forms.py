"""Guards for the HTML forms people post from a browser (device approval, dashboard).

A form is accepted only from this server's own pages: the `Host` must name this server
(DNS rebinding), the post must not come from another site (`Origin`, `Sec-Fetch-Site`),
and it must carry the token this process issued for that form (CSRF).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request

from ..config import Settings
from ..errors import BadRequest, Forbidden, RequestTooLarge
from .common import host_is_ours

__all__ = ["MAX_FORM_BYTES", "FormGuard", "read_form"]

MAX_FORM_BYTES = 16 * 1024


async def read_form(
    request: Request, max_bytes: int = MAX_FORM_BYTES, max_fields: int = 20
) -> dict[str, list[str]]:
    """A urlencoded browser form: every value of each field, size- and count-limited."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise BadRequest("Send the form from its page", "invalid_form")
    raw = await request.body()
    if len(raw) > max_bytes:
        raise RequestTooLarge("Form too large")
    try:
        return parse_qs(
            raw.decode("utf-8"), keep_blank_values=True, max_num_fields=max_fields,
            strict_parsing=False,
        )  # fmt: skip
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("Malformed form", "invalid_form") from None


class FormGuard:
    """Issues and checks the form tokens of this process's pages (a restart means
    reloading a page) and refuses requests from other hosts and other sites."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._key = secrets.token_bytes(32)

    def token(self, purpose: str, subject: str) -> str:
        """The form token for `purpose` bound to `subject` (a login code, a session)."""
        message = f"{purpose}:{subject}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def own_origins(self, request: Request) -> set[str]:
        """Origins a form of ours is posted from: as reached, and as published (a TLS
        proxy in front makes the two differ)."""
        origins = {f"{request.url.scheme}://{request.headers.get('host', '')}"}
        if self.settings.public_url:
            published = urlsplit(self.settings.public_url)
            origins.add(f"{published.scheme}://{published.netloc}")
        return origins

    def check_host(self, request: Request) -> None:
        if not host_is_ours(request, self.settings):
            raise Forbidden(
                f"Open this page at {self.settings.public_url or self.settings.base_url}",
                "unknown_host",
            )

    def check_origin(self, request: Request) -> None:
        """Refuse a post another web site's page made (browsers name it in `Origin` and
        `Sec-Fetch-Site`; a request with neither is not a browser's cross-site post)."""
        origin = request.headers.get("origin")
        if (origin is not None and origin not in self.own_origins(request)) or (
            request.headers.get("sec-fetch-site", "same-origin") == "cross-site"
        ):
            raise Forbidden("Cross-site form posts are refused", "cross_site_request")

    def check_post(self, request: Request, given: str, purpose: str, subject: str) -> None:
        """A form post: from our host, not cross-site, with the token we issued."""
        self.check_host(request)
        self.check_origin(request)
        expected = self.token(purpose, subject)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Forbidden(
                "This form has expired: reload the page and try again", "invalid_form_token"
            )
