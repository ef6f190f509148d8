"""The dashboard's pages and form actions, at `/` beside the API.

A cookie holds a session token (the one `POST /v1/auth/session` issues), so the cookie is
just another credential of the same user, rate-limited like one. Every request must name
this server in `Host`; every form post must come from our own pages (Origin,
Sec-Fetch-Site) with the session's form token. Pages answer what the API would: another
user's id is a 404 page. A logged-out request goes to the login page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..alerts import AlertService
from ..clock import Clock
from ..config import Settings
from ..credentials import SESSION_TOKEN_PREFIX
from ..errors import ApiError, NotFound, Unauthorized, Unprocessable
from ..leases import LeaseService
from ..models import CueStatus
from ..routes.common import admit_anonymous, caller_with
from ..routes.forms import MAX_FORM_BYTES, FormGuard, read_form
from ..services.accounts import AccountService, Caller
from ..services.cues import CueService
from ..services.executions import ExecutionService
from ..store import AlertFilters, DashboardStore
from .edit_form import edit_body, fire_body, first
from .health import CATEGORY_LABELS, HEALTH_LABELS
from .render import Assets, Templates
from .snapshots import served_versions
from .views import ALERT_TYPES, ALERTS_PER_PAGE, CueListQuery, Views

__all__ = ["SESSION_COOKIE", "dashboard_routes"]

SESSION_COOKIE = "cueapi_session"
LIVE_HEADER = "x-live-version"
MAX_SEARCH_CHARS = 100
MAX_PAGE = 100_000
Form = dict[str, list[str]]
PageView = Callable[[Request, Caller], Awaitable[Response]]
Action = Callable[[Request, Caller, Form], Awaitable[str]]
# Fixed messages a redirect may ask a page to show (never text from the URL).
NOTICES = {
    "fired": "Fired: the new execution is at the top of the history.",
    "paused": "Paused: it will not fire until resumed.",
    "resumed": "Resumed: the next fire is computed from now.",
    "saved": "Saved.",
    "deleted": "Cue deleted.",
    "verified": "Marked verified.",
    "rejected": "Marked verification failed.",
    "replayed": "Replayed: this is the new execution.",
    "acknowledged": "Acknowledged.",
}


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    try:
        return min(max(int(raw), 1), MAX_PAGE)
    except ValueError:
        return 1


def _choice(request: Request, name: str, allowed: tuple[str, ...] | dict[str, str]) -> str | None:
    value = request.query_params.get(name) or None
    return value if value in allowed else None


def dashboard_routes(
    cues: CueService,
    executions: ExecutionService,
    alerts: AlertService,
    leases: LeaseService,
    accounts: AccountService,
    reads: DashboardStore,
    clock: Clock,
    settings: Settings,
) -> list[Route]:
    forms = FormGuard(settings)
    assets = Assets()
    templates = Templates(assets)
    views = Views(cues, executions, alerts, leases, reads, clock, settings)
    secure_cookie = (settings.public_url or "").lower().startswith("https://")
    payload_form = max(settings.max_body_bytes, MAX_FORM_BYTES)

    async def signed_in(request: Request) -> Caller | None:
        """The user of the request's session cookie, counted against its rate window;
        None (counted against the address) without a live session."""
        forms.check_host(request)
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token.startswith(SESSION_TOKEN_PREFIX):
            admit_anonymous(request, accounts)
            return None
        try:
            return await caller_with(request, accounts, f"Bearer {token}")
        except Unauthorized:
            return None

    def to_login(request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        url = "/login" if target == "/" else f"/login?next={quote(target, safe='')}"
        return RedirectResponse(url, status_code=303)

    def error_page(exc: ApiError, caller: Caller | None, back: str = "/") -> Response:
        return templates.response(
            "error.html",
            status=exc.status,
            headers=exc.headers,
            title="Not found" if exc.status == 404 else "Not done",
            message=exc.message,
            back=back,
            user=caller.user if caller else None,
            csrf=forms.token("dashboard", caller.session_hash or "") if caller else "",
            section="",
        )

    def page(view: PageView) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            caller = None
            try:
                caller = await signed_in(request)
                if caller is None:
                    return to_login(request)
                # The live script asks "changed since?": nothing committed means 204,
                # and the version is read before the page so no change is missed.
                version = views.version()
                if request.headers.get(LIVE_HEADER) == str(version):
                    return Response(status_code=204, headers={"Cache-Control": "no-store"})
                # A page built from a reused (older) result carries that result's
                # version, so the next poll fetches the page again.
                served: list[int] = [version]
                served_versions.set(served)
                request.state.live_version = lambda: str(min(served))
                response = await view(request, caller)
            except ApiError as exc:
                return error_page(exc, caller)
            response.headers[LIVE_HEADER] = str(min(served))
            return response

        return endpoint

    def action(
        handler: Action, max_fields: int = 40, max_bytes: int = MAX_FORM_BYTES
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            caller = None
            try:
                # Another site's post is refused before anything else, signed in or not.
                forms.check_host(request)
                forms.check_origin(request)
                caller = await signed_in(request)
                if caller is None:
                    return to_login(request)
                form = await read_form(request, max_bytes, max_fields)
                forms.check_post(
                    request, first(form, "csrf"), "dashboard", caller.session_hash or ""
                )
                target = await handler(request, caller, form)
            except ApiError as exc:
                return error_page(exc, caller, request.url.path.rsplit("/", 1)[0] or "/")
            return RedirectResponse(target, status_code=303)

        return endpoint

    def show(request: Request, caller: Caller, name: str, section: str, **context: Any) -> Response:
        notice = NOTICES.get(request.query_params.get("done", ""))
        return templates.response(
            name,
            user=caller.user,
            csrf=forms.token("dashboard", caller.session_hash or ""),
            section=section,
            notice=notice,
            live_version=request.state.live_version(),
            categories=CATEGORY_LABELS,
            **context,
        )

    # --- logging in and out ---------------------------------------------------------

    def login_page(request: Request, error: str | None = None, status: int = 200) -> Response:
        next_url = request.query_params.get("next", "/")
        return templates.response(
            "login.html",
            status=status,
            csrf=forms.token("login", ""),
            next_url=next_url
            if next_url.startswith("/") and not next_url.startswith("//")
            else "/",
            error=error,
            user=None,
            section="login",
        )

    async def login_form(request: Request) -> Response:
        try:
            if await signed_in(request) is not None:
                return RedirectResponse("/", status_code=303)
        except ApiError as exc:
            return error_page(exc, None)
        return login_page(request)

    async def log_in(request: Request) -> Response:
        try:
            forms.check_host(request)
            form = await read_form(request)
            forms.check_post(request, first(form, "csrf"), "login", "")
            credential = first(form, "api_key").strip()
            try:
                caller = await caller_with(request, accounts, f"Bearer {credential}")
            except Unauthorized:
                return login_page(request, "That key (or session token) is not valid.", 401)
            session = await accounts.open_session(caller.user, settings.dashboard_session_s)
        except ApiError as exc:
            return error_page(exc, None)
        target = first(form, "next")
        if not target.startswith("/") or target.startswith("//"):
            target = "/"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            session.token,
            max_age=settings.dashboard_session_s,
            path="/",
            secure=secure_cookie or request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    async def log_out(request: Request, caller: Caller, form: Form) -> str:
        await accounts.close_session(caller)
        return "/login"

    async def log_out_endpoint(request: Request) -> Response:
        response = await action(log_out)(request)
        if response.status_code == 303:
            response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    # --- pages ----------------------------------------------------------------------

    async def overview(request: Request, caller: Caller) -> Response:
        return show(
            request, caller, "overview.html", "overview", **await views.overview(caller.user)
        )

    async def cue_list(request: Request, caller: Caller) -> Response:
        search = (request.query_params.get("q") or "").strip()[:MAX_SEARCH_CHARS] or None
        query = CueListQuery(
            health=_choice(request, "status", HEALTH_LABELS),
            transport=_choice(request, "transport", ("webhook", "worker")),
            search=search,
            page=_page_number(request),
        )
        data = await views.cue_list(caller.user, query)
        return show(request, caller, "cues.html", "cues", health_labels=HEALTH_LABELS, **data)

    async def cue_page(request: Request, caller: Caller) -> Response:
        data = await views.cue_detail(
            caller.user, request.path_params["cue_id"], _page_number(request)
        )
        return show(request, caller, "cue.html", "cues", **data)

    async def confirm_delete(request: Request, caller: Caller) -> Response:
        data = await views.cue_detail(caller.user, request.path_params["cue_id"])
        return show(request, caller, "delete.html", "cues", **data)

    async def execution_page(request: Request, caller: Caller) -> Response:
        data = await views.execution_detail(caller.user, request.path_params["execution_id"])
        return show(request, caller, "execution.html", "cues", **data)

    def alert_filters(request: Request) -> AlertFilters:
        acknowledged = request.query_params.get("acknowledged", "no")
        return AlertFilters(
            alert_type=_choice(request, "type", ALERT_TYPES),
            cue_id=(request.query_params.get("cue") or None),
            acknowledged={"yes": True, "no": False}.get(acknowledged),
        )

    async def alert_list(request: Request, caller: Caller) -> Response:
        filters = alert_filters(request)
        data = await views.alert_list(caller.user, filters, _page_number(request))
        shown = {"yes": "yes", "no": "no"}.get(
            request.query_params.get("acknowledged", "no"), "any"
        )
        return show(request, caller, "alerts.html", "alerts", acknowledged=shown, **data)

    async def worker_list(request: Request, caller: Caller) -> Response:
        return show(
            request, caller, "workers.html", "workers", **await views.worker_list(caller.user)
        )

    async def static(request: Request) -> Response:
        response = assets.response(request.path_params["name"])
        if response is None:
            raise NotFound("No such file")
        return response

    # --- actions ----------------------------------------------------------------------

    def cue_url(cue_id: str, done: str) -> str:
        return f"/cues/{quote(cue_id, safe='')}?done={done}"

    async def fire(request: Request, caller: Caller, form: Form) -> str:
        cue_id = request.path_params["cue_id"]
        await cues.fire(caller.user, cue_id, fire_body(form))
        return cue_url(cue_id, "fired")

    async def pause(request: Request, caller: Caller, form: Form) -> str:
        cue_id = request.path_params["cue_id"]
        await cues.update(caller.user, cue_id, {"status": CueStatus.PAUSED.value})
        return cue_url(cue_id, "paused")

    async def resume(request: Request, caller: Caller, form: Form) -> str:
        cue_id = request.path_params["cue_id"]
        await cues.update(caller.user, cue_id, {"status": CueStatus.ACTIVE.value})
        return cue_url(cue_id, "resumed")

    async def edit(request: Request, caller: Caller, form: Form) -> str:
        cue_id = request.path_params["cue_id"]
        cue, _, _ = await cues.get(caller.user, cue_id)
        await cues.update(caller.user, cue_id, edit_body(form, cue))
        return cue_url(cue_id, "saved")

    async def delete(request: Request, caller: Caller, form: Form) -> str:
        if first(form, "confirm") != "yes":
            raise Unprocessable("Tick the box to confirm the deletion")
        await cues.delete(caller.user, request.path_params["cue_id"])
        return "/cues?done=deleted"

    async def verify(request: Request, caller: Caller, form: Form) -> str:
        execution_id = request.path_params["execution_id"]
        valid = first(form, "valid") != "false"
        body: dict[str, object] = {"valid": valid}
        reason = first(form, "reason").strip()
        if reason:
            body["reason"] = reason
        await executions.verify(caller.user, execution_id, body)
        return (
            f"/executions/{quote(execution_id, safe='')}?done={'verified' if valid else 'rejected'}"
        )

    async def replay(request: Request, caller: Caller, form: Form) -> str:
        replayed = await executions.replay(caller.user, request.path_params["execution_id"])
        return f"/executions/{quote(replayed.id, safe='')}?done=replayed"

    async def acknowledge(request: Request, caller: Caller, form: Form) -> str:
        for alert_id in form.get("alert_id", [])[:ALERTS_PER_PAGE]:
            await alerts.acknowledge(caller.user, alert_id)
        back = {k: v for k in ("type", "cue", "acknowledged") if (v := first(form, k))}
        return "/alerts?" + urlencode({**back, "done": "acknowledged"})

    return [
        Route("/", page(overview), methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", log_in, methods=["POST"]),
        Route("/logout", log_out_endpoint, methods=["POST"]),
        Route("/cues", page(cue_list), methods=["GET"]),
        Route("/cues/{cue_id}", page(cue_page), methods=["GET"]),
        Route("/cues/{cue_id}/delete", page(confirm_delete), methods=["GET"]),
        # The forms that carry a payload take what the API takes.
        Route("/cues/{cue_id}/fire", action(fire, max_bytes=payload_form), methods=["POST"]),
        Route("/cues/{cue_id}/pause", action(pause), methods=["POST"]),
        Route("/cues/{cue_id}/resume", action(resume), methods=["POST"]),
        Route("/cues/{cue_id}/edit", action(edit, max_bytes=payload_form), methods=["POST"]),
        Route("/cues/{cue_id}/delete", action(delete), methods=["POST"]),
        Route("/executions/{execution_id}", page(execution_page), methods=["GET"]),
        Route("/executions/{execution_id}/verify", action(verify), methods=["POST"]),
        Route("/executions/{execution_id}/replay", action(replay), methods=["POST"]),
        Route("/alerts", page(alert_list), methods=["GET"]),
        Route("/alerts/acknowledge", action(acknowledge, ALERTS_PER_PAGE + 10), methods=["POST"]),
        Route("/workers", page(worker_list), methods=["GET"]),
        Route("/static/{name}", static, methods=["GET"]),
    ]
