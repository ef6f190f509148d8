"""`/openapi.json` and `/docs`: the document covers exactly the routes the server answers,
is valid OpenAPI 3.1 / JSON Schema, and `/docs` renders it without outside assets."""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema_rs
import pytest
from starlette.routing import BaseRoute, Mount, Route

from cueapi_lite import CueApiLite
from cueapi_lite.openapi import OPERATIONS

# Pages for people, not API operations: the dashboard's package. A new route anywhere else
# must be described in cueapi_lite/openapi.py OPERATIONS.
PAGE_MODULES = ("cueapi_lite.web",)
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def _routed(routes: list[BaseRoute], prefix: str = "") -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Mount):
            app_module = type(route.app).__module__
            if not app_module.startswith(PAGE_MODULES) and "staticfiles" not in app_module:
                found |= _routed(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            if getattr(route.endpoint, "__module__", "").startswith(PAGE_MODULES):
                continue
            # A Route around an ASGI app (no methods) answers every method itself.
            for method in route.methods & METHODS if route.methods else {"*"}:
                found.add((method, prefix + route.path))
    return found


def test_every_route_is_described_and_every_described_path_is_routed(lite: CueApiLite) -> None:
    routed = _routed(lite.asgi.routes)
    described = {(op.method, op.path) for op in OPERATIONS}
    # An app of its own (its methods are its business) is described by any of its methods.
    described |= {("*", path) for _, path in described if ("*", path) in routed}
    routed |= {(m, p) for m, p in described if ("*", p) in routed}
    undescribed = sorted(routed - described)
    unrouted = sorted(described - routed)
    assert not undescribed, (
        f"routes missing from the API document: {undescribed}. Describe each in"
        " cueapi_lite/openapi.py OPERATIONS (request shape in request_shapes.py, answer in"
        " response_shapes.py); a page for people belongs in cueapi_lite/web/ instead."
    )
    assert not unrouted, (
        f"the API document describes paths no route serves: {unrouted}. Remove them from"
        " cueapi_lite/openapi.py OPERATIONS or add the routes."
    )


async def test_openapi_json_is_a_valid_3_1_document(lite: CueApiLite) -> None:
    async with lite.client() as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["openapi"] == "3.1.0"
    for name, schema in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name
    ids = [op["operationId"] for path in document["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids)) == len(OPERATIONS)
    refs = set(re.findall(r'"#/components/(\w+)/(\w+)"', response.text))
    for kind, name in refs:
        assert name in document["components"][kind], f"dangling $ref {kind}/{name}"
    links = [
        link for path in document["paths"].values() for op in path.values()
        for answer in op["responses"].values() for link in answer.get("links", {}).values()
    ]  # fmt: skip
    assert links
    assert all(link["operationId"] in ids for link in links)


async def test_every_error_answer_is_the_envelope_component(lite: CueApiLite) -> None:
    async with lite.client() as client:
        document = (await client.get("/openapi.json")).json()
    envelope = document["components"]["schemas"]["Error"]
    assert set(envelope["required"]) == {"error", "detail"}
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            for status, answer in op["responses"].items():
                if status == "default" or int(status) < 400 or path in ("/health", "/status"):
                    continue
                content = (
                    answer.get("content")
                    or document["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]][
                        "content"
                    ]
                )
                schema = content["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


def _validate(document: dict[str, Any], shape: str, value: Any) -> None:
    # The refs point at #/components/schemas/...: keep the components beside the schema.
    schema = {**document["components"]["schemas"][shape], "components": document["components"]}
    jsonschema_rs.Draft202012Validator(schema).validate(value)


async def test_a_created_cue_matches_its_documented_shape(
    lite: CueApiLite, api: httpx.AsyncClient
) -> None:
    document = (await api.get("/openapi.json")).json()
    body = {
        "name": "doc-check",
        "schedule": {"type": "recurring", "cron": "*/5 * * * *", "timezone": "UTC"},
        "callback": {"url": "http://127.0.0.1:9999/hook"},
    }
    _validate(document, "CueBody", body)
    created = await api.post("/v1/cues", json=body)
    assert created.status_code == 201
    _validate(document, "Cue", created.json())
    fetched = await api.get(f"/v1/cues/{created.json()['id']}")
    _validate(document, "CueDetail", fetched.json())
    with pytest.raises(jsonschema_rs.ValidationError):
        _validate(document, "Cue", {**created.json(), "run_count": None})


async def test_docs_page_lists_every_operation_without_outside_assets(lite: CueApiLite) -> None:
    async with lite.client() as client:
        response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for op in OPERATIONS:
        assert f"{op.method} {op.path}" in page.replace("&#x27;", "'")
    assert "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert 'id="schema-CueBody"' in page
    assert 'href="#schema-Schedule"' in page


async def test_a_wrong_method_names_the_allowed_ones(api: httpx.AsyncClient) -> None:
    response = await api.put("/v1/cues")
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "POST"}
    assert response.json()["error"]["code"] == "method_not_allowed"
