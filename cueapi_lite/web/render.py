"""Templates, static assets and the formatting the templates use.

Templates get plain values (epoch ms, strings, lists); the filters here turn them into
text. Assets are read from the package once and served with a content hash in their
URL, so they can be cached for a year and still change with a new version.
"""

from __future__ import annotations

import hashlib
import json
import time
from importlib import resources
from typing import Any

import jinja2
from starlette.responses import Response

__all__ = [
    "PAGE_HEADERS", "Assets", "Templates", "duration", "iso_z", "relative", "utc_text",
]  # fmt: skip

# Scripts and styles only from our own files; nothing may frame the dashboard.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self';"
    " img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none';"
    " base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


def _utc_parts(at_ms: int) -> str:
    # time.gmtime and an f-string: a page of strips formats thousands of instants.
    t = time.gmtime(at_ms // 1000)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    )


def iso_z(at_ms: int | None) -> str:
    return "" if at_ms is None else _utc_parts(at_ms) + "Z"


def utc_text(at_ms: int | None) -> str:
    return "—" if at_ms is None else _utc_parts(at_ms).replace("T", " ") + " UTC"


def relative(at_ms: int | None, now_ms: int) -> str:
    """ "in 5 min", "3 h ago", "just now" (the browser's script keeps it current)."""
    if at_ms is None:
        return "—"
    seconds = (at_ms - now_ms) / 1000
    size = abs(seconds)
    if size < 45:
        return "just now" if seconds <= 0 else "in a few seconds"
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if size >= length or unit == "min":
            amount = round(size / length)
            return f"in {amount} {unit}" if seconds > 0 else f"{amount} {unit} ago"
    raise AssertionError  # pragma: no cover


def duration(ms: int | None) -> str:
    if ms is None or ms < 0:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    if ms < 3_600_000:
        return f"{ms // 60_000} min {ms % 60_000 // 1000} s"
    return f"{ms // 3_600_000} h {ms % 3_600_000 // 60_000} min"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


class Assets:
    """The files of `web/static/`, in memory, each at `/static/<name>?v=<hash>`."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.urls: dict[str, str] = {}
        for entry in resources.files(__package__).joinpath("static").iterdir():
            suffix = "." + entry.name.rsplit(".", 1)[-1]
            if suffix not in _TYPES:
                continue
            content = entry.read_bytes()
            self.files[entry.name] = (content, _TYPES[suffix])
            digest = hashlib.sha256(content).hexdigest()[:12]
            self.urls[entry.name] = f"/static/{entry.name}?v={digest}"

    def response(self, name: str) -> Response | None:
        found = self.files.get(name)
        if found is None:
            return None
        content, media_type = found
        headers = {
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
        }
        return Response(content, media_type=media_type, headers=headers)


class Templates:
    def __init__(self, assets: Assets) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader(__package__ or "cueapi_lite.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(iso=iso_z, utc=utc_text, duration=duration, pretty_json=pretty_json)
        self.env.globals.update(asset=assets.urls.__getitem__, relative=relative)

    def render(self, name: str, **context: Any) -> str:
        return self.env.get_template(name).render(**context)

    def response(
        self, name: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any
    ) -> Response:
        return Response(
            self.render(name, **context),
            status_code=status,
            media_type="text/html; charset=utf-8",
            headers={**PAGE_HEADERS, **(headers or {})},
        )
