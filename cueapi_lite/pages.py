"""The few HTML pages people see: approving a device login, confirming a magic link.

Everything shown is escaped; every page forbids framing and inline scripts (it has
none) and sends no referrer, since its URL carries the login code or link token.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

from .store import DeviceCode

__all__ = [
    "SECURITY_HEADERS",
    "approval_page",
    "code_form_page",
    "confirm_link_page",
    "message_page",
]

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_STYLE = """
body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;
color:#1b1b1b;line-height:1.5}
h1{font-size:1.4rem}.code{font:700 2rem ui-monospace,monospace;letter-spacing:.15em;
background:#f2f2f2;padding:.4rem .8rem;border-radius:.4rem;display:inline-block}
label{display:block;margin-top:1rem;font-weight:600}
input[type=text],input[type=email],input[type=password]{width:100%;padding:.5rem;
font-size:1rem;box-sizing:border-box}
button{margin-top:1.2rem;padding:.6rem 1.4rem;font-size:1rem}
.error{background:#fde8e8;border-left:4px solid #c62828;padding:.6rem .8rem}
.ok{background:#e6f4ea;border-left:4px solid #2e7d32;padding:.6rem .8rem}
.muted{color:#666;font-size:.9rem}code{background:#f2f2f2;padding:0 .25rem}
"""


def e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _document(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{e(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{e(title)}</h1>{body}</body></html>"
    )


def _error(error: str | None) -> str:
    return f"<p class=error role=alert>{e(error)}</p>" if error else ""


def _when(at_ms: int, now_ms: int) -> str:
    moment = datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    minutes = max(0, (now_ms - at_ms) // 60_000)
    return f"{moment} ({minutes} min ago)"


def message_page(title: str, message: str, ok: bool = False) -> str:
    return _document(title, f"<p class={'ok' if ok else 'error'}>{e(message)}</p>")


def code_form_page(error: str | None = None) -> str:
    return _document(
        "Approve a CLI login",
        _error(error) + "<form method=get action=/auth/device>"
        "<label for=code>Code shown by <code>cueapi login</code></label>"
        "<input type=text id=code name=code required minlength=6 maxlength=128"
        " autocomplete=off autofocus><button type=submit>Continue</button></form>",
    )


def approval_page(
    device: DeviceCode,
    csrf: str,
    now_ms: int,
    registration_open: bool,
    email: str = "",
    error: str | None = None,
) -> str:
    left_min = max(0, (device.expires_at_ms - now_ms) // 60_000)
    new_accounts = (
        "A new email creates an account here; an email that already has one needs one of"
        " its API keys."
        if registration_open
        else "Registration is off on this server: enter an API key of your account."
    )
    body = (
        _error(error)
        + "<p>A command-line login is waiting for approval with this code. Approve it only"
        " if it matches the code in your terminal.</p>"
        f"<p class=code>{e(device.code)}</p>"
        f"<p class=muted>Requested from {e(device.requested_ip or 'unknown')} at"
        f" {e(_when(device.created_at_ms, now_ms))}; expires in {left_min} min.</p>"
        "<form method=post action=/auth/device>"
        f"<input type=hidden name=code value='{e(device.code)}'>"
        f"<input type=hidden name=csrf value='{e(csrf)}'>"
        "<label for=email>Email</label>"
        f"<input type=email id=email name=email maxlength=254 value='{e(email)}' autofocus>"
        "<label for=credential>API key or admin token</label>"
        "<input type=password id=credential name=credential maxlength=512"
        " autocomplete=off>"
        f"<p class=muted>{e(new_accounts)}</p>"
        "<button type=submit>Approve</button></form>"
        "<p class=muted>Or, on the server: <code>cueapi-lite device approve"
        f" {e(device.code)} --email EMAIL</code></p>"
    )
    return _document("Approve a CLI login", body)


def confirm_link_page(device: DeviceCode, token: str, csrf: str, now_ms: int) -> str:
    body = (
        f"<p>Log in as <strong>{e(device.magic_email)}</strong> with the code:</p>"
        f"<p class=code>{e(device.code)}</p>"
        f"<p class=muted>Requested from {e(device.requested_ip or 'unknown')} at"
        f" {e(_when(device.created_at_ms, now_ms))}. Confirm only if you started this"
        " login and the code matches.</p>"
        "<form method=post action=/v1/auth/verify>"
        f"<input type=hidden name=device_code value='{e(device.code)}'>"
        f"<input type=hidden name=token value='{e(token)}'>"
        f"<input type=hidden name=csrf value='{e(csrf)}'>"
        "<button type=submit>Confirm login</button></form>"
    )
    return _document("Confirm a CLI login", body)
