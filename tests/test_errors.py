"""Every error, whatever produced it, is JSON in the contract's envelope (CONTRACT §2.1)."""

from __future__ import annotations

import httpx
import pytest

from cueapi_lite import CueApiLite


def assert_envelope(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == {
        "code": code,
        "message": body["error"]["message"],
        "status": status,
    } | ({"details": body["error"]["details"]} if "details" in body["error"] else {})
    assert body["error"]["message"]
    assert body["detail"]["error"] == body["error"]


@pytest.mark.parametrize(
    ("method", "path", "content", "status", "code"),
    [
        ("GET", "/v1/nothing-here", None, 404, "not_found"),
        ("GET", "/nothing-here", None, 404, "not_found"),
        ("PUT", "/v1/cues", None, 405, "method_not_allowed"),
        ("DELETE", "/v1/executions", None, 405, "method_not_allowed"),
        ("POST", "/v1/cues", b"{not json", 400, "invalid_json"),
        ("POST", "/v1/cues", b"[1, 2]", 422, "validation_error"),
        ("POST", "/v1/cues", b'{"name": NaN}', 400, "invalid_json"),
        ("POST", "/v1/cues", b"x" * (2 * 1024 * 1024 + 1), 413, "request_too_large"),
        ("GET", "/v1/cues/cue_doesnotexist", None, 404, "cue_not_found"),
    ],
)
async def test_errors_use_the_envelope(
    api: httpx.AsyncClient, method: str, path: str, content: bytes | None, status: int, code: str
) -> None:
    response = await api.request(method, path, content=content)
    assert_envelope(response, status, code)


async def test_unauthenticated_errors_use_the_envelope(lite: CueApiLite) -> None:
    async with lite.client() as client:
        assert_envelope(await client.get("/v1/cues"), 401, "invalid_api_key")


async def test_unexpected_exceptions_are_a_500_without_internals(
    api: httpx.AsyncClient, lite: CueApiLite, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def explode(*args: object) -> None:
        raise RuntimeError("secret internals: /etc/shadow")

    monkeypatch.setattr(lite.cues, "page", explode)
    response = await api.get("/v1/cues")
    assert_envelope(response, 500, "internal_error")
    assert "shadow" not in response.text


async def test_no_redirects_for_trailing_or_doubled_slashes(api: httpx.AsyncClient) -> None:
    for path in ("/v1/cues/", "//v1/cues", "//v1//cues//"):
        response = await api.get(str(api.base_url).rstrip("/") + path)
        assert response.status_code == 200, (path, response.text, response.request.url)
        assert "cues" in response.json()


async def test_empty_post_bodies_mean_an_empty_object(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/cues/cue_unknown/fire", content=b"", headers={"Content-Type": "application/json"}
    )
    assert_envelope(response, 404, "cue_not_found")


async def test_health_and_status_need_no_key(lite: CueApiLite) -> None:
    async with lite.client() as client:
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "healthy"
        assert health.json()["services"] == {
            "database": "up", "scheduler": "up", "delivery": "up"
        }  # fmt: skip
        assert (await client.get("/status")).json() == {"status": "healthy"}


async def test_a_405_names_every_method_of_a_path_with_an_id(api: httpx.AsyncClient) -> None:
    response = await api.put("/v1/cues/cue_anything")
    assert_envelope(response, 405, "method_not_allowed")
    allowed = set(response.headers["allow"].replace(" ", "").split(","))
    assert allowed == {"DELETE", "GET", "HEAD", "PATCH"}
    fire = await api.get("/v1/cues/cue_anything/fire")
    assert_envelope(fire, 405, "method_not_allowed")
    assert fire.headers["allow"] == "POST"
