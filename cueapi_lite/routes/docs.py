"""`/openapi.json` and `/docs`: the API's own description, built once per process.

No auth and no rate limit: the document holds nothing private (it is the same for every
server of this version).
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..docs_page import render_docs
from ..openapi import build_document
from ..pages import SECURITY_HEADERS

__all__ = ["docs_routes"]


def docs_routes() -> list[Route]:
    document = build_document()
    spec = json.dumps(document, ensure_ascii=False).encode("utf-8")
    page = render_docs(document).encode("utf-8")

    async def openapi(request: Request) -> Response:
        return Response(spec, media_type="application/json")

    async def docs(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)

    return [
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]
