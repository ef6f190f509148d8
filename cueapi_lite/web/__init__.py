"""The dashboard: server-rendered pages at `/` over the same services as the JSON API.

`routes.py` wires pages and form actions, `views.py` gathers what each page shows,
`health.py` decides badges and colours, `templates/` and `static/` are the markup and
the assets (shipped in the package; nothing is loaded from elsewhere).
"""

from __future__ import annotations

from .routes import SESSION_COOKIE, dashboard_routes

__all__ = ["SESSION_COOKIE", "dashboard_routes"]
