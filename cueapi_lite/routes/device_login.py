"""Device-code login: the clients' JSON calls (E31-E33) and the pages people use to
approve a code (`/auth/device`, the magic link's `/v1/auth/verify`), CONTRACT §9.

The pages refuse what an anonymous remote visitor or another web site could do: a Host
that is not this server's (DNS rebinding), a cross-site form post (Origin,
Sec-Fetch-Site), and a form without the token this process issued for that code (CSRF).
Who may approve for which email is decided by `DeviceService.approve_with_credential`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..clock import Clock
from ..config import Settings
from ..errors import ApiError
from ..pages import (
    SECURITY_HEADERS,
    approval_page,
    code_form_page,
    confirm_link_page,
    message_page,
)
from ..services.accounts import AccountService
from ..services.devices import DEVICE_CODE_TTL_S, DeviceService
from .common import admit_anonymous, json_body, ok, public_base
from .forms import FormGuard, read_form

__all__ = ["device_login_routes"]


def _html(content: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        content,
        status_code=status,
        media_type="text/html; charset=utf-8",
        headers={**SECURITY_HEADERS, **(headers or {})},
    )


def _error_page(exc: ApiError) -> Response:
    return _html(message_page("Login not approved", exc.message), exc.status, exc.headers)


async def _form(request: Request) -> dict[str, str]:
    """The approval forms' fields (first value of each)."""
    fields = await read_form(request)
    return {name: values[0] for name, values in fields.items() if values}


def device_login_routes(
    devices: DeviceService, accounts: AccountService, settings: Settings, clock: Clock
) -> list[Route]:
    forms = FormGuard(settings)

    def form_token(purpose: str, code: str) -> str:
        return forms.token(purpose, code.upper())

    def guard(request: Request, form: dict[str, str] | None = None, purpose: str = "") -> None:
        admit_anonymous(request, accounts)
        forms.check_host(request)
        if form is not None:
            forms.check_post(request, form.get("csrf", ""), purpose, form.get("code", "").upper())

    # --- the clients' calls -------------------------------------------------------------

    async def start(request: Request) -> Response:
        admit_anonymous(request, accounts)
        body = await json_body(request)
        url = await devices.start(
            body, request.client.host if request.client else "", public_base(request, settings)
        )
        return ok(
            {
                "device_code": body["device_code"],
                "verification_url": url,
                "expires_in": DEVICE_CODE_TTL_S,
            },
            201,
        )

    async def submit_email(request: Request) -> Response:
        admit_anonymous(request, accounts)
        status = await devices.send_magic_link(
            await json_body(request), public_base(request, settings)
        )
        return ok({"status": status})

    async def poll(request: Request) -> Response:
        admit_anonymous(request, accounts)
        return ok(await devices.poll(await json_body(request)))

    # --- the approval page ----------------------------------------------------------------

    async def approval(request: Request) -> Response:
        try:
            guard(request)
            code = request.query_params.get("code", "").strip()
            if not code:
                return _html(code_form_page())
            device = await devices.get(code)
        except ApiError as exc:
            return _error_page(exc)
        now_ms = clock.now_ms()
        if device.expired(now_ms):
            return _html(message_page("Login expired", "This code has expired."), 410)
        if device.status != "pending":
            return _html(message_page("Already approved", "This code was already approved."))
        token = form_token("approve", device.code)
        return _html(approval_page(device, token, now_ms, settings.registration_open))

    async def approve(request: Request) -> Response:
        try:
            form = await _form(request)
            form["code"] = form.get("code", "").strip()
            guard(request, form, "approve")
            device = await devices.get(form["code"])
        except ApiError as exc:
            return _error_page(exc)
        try:
            user = await devices.approve_with_credential(
                device.code, form.get("email", ""), form.get("credential", "")
            )
        except ApiError as exc:
            now_ms = clock.now_ms()
            if device.status != "pending" or device.expired(now_ms):
                return _error_page(exc)
            page = approval_page(
                device, form_token("approve", device.code), now_ms,
                settings.registration_open, form.get("email", "")[:254], exc.message,
            )  # fmt: skip
            return _html(page, exc.status)
        return _html(
            message_page(
                "Login approved",
                f"Approved for {user.email}. Go back to your terminal: the login finishes"
                " within a few seconds.",
                ok=True,
            )
        )

    # --- the magic link -------------------------------------------------------------------

    async def confirm_link(request: Request) -> Response:
        try:
            guard(request)
            code = request.query_params.get("device_code", "")
            token = request.query_params.get("token", "")[:128]
            device = await devices.magic_link_target(code, token)
        except ApiError as exc:
            return _error_page(exc)
        csrf = form_token("verify", device.code)
        return _html(confirm_link_page(device, token, csrf, clock.now_ms()))

    async def follow_link(request: Request) -> Response:
        try:
            form = await _form(request)
            form["code"] = form.get("device_code", "")
            guard(request, form, "verify")
            user = await devices.approve_magic_link(form["code"], form.get("token", "")[:128])
        except ApiError as exc:
            return _error_page(exc)
        return _html(
            message_page(
                "Login approved",
                f"Logged in as {user.email}. Go back to your terminal.",
                ok=True,
            )
        )

    return [
        Route("/v1/auth/device-code", start, methods=["POST"]),
        Route("/v1/auth/device-code/submit-email", submit_email, methods=["POST"]),
        Route("/v1/auth/device-code/poll", poll, methods=["POST"]),
        Route("/v1/auth/verify", confirm_link, methods=["GET"]),
        Route("/v1/auth/verify", follow_link, methods=["POST"]),
        Route("/auth/device", approval, methods=["GET"]),
        Route("/auth/device", approve, methods=["POST"]),
    ]
