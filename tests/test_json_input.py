"""The one JSON decoder: what it refuses, and the field it names."""

from __future__ import annotations

import functools

import httpx
import pytest

from cueapi_lite.json_input import MAX_DEPTH, JsonInputError, decode_json_body


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        (b'{"a": NaN}', "a", "NaN is not a JSON number"),
        (b'{"a": [1, -Infinity]}', "a[1]", "-Infinity is not a JSON number"),
        (b'{"payload": {"n": 1e400}}', "payload.n", "the number is out of range"),
        (b'{"n": [1, -1E+400]}', "n[1]", "the number is out of range"),
        (b'{"n": 9223372036854775808}', "n", "out of range"),
        (b'{"n": ' + b"1" * 5000 + b"}", None, "a number is out of range"),
        (b'{"n": ' + b"1" * 400 + b".5}", "n", "out of range"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "[0]", f"more than {MAX_DEPTH}"),
        (b'{"name": "\\ud800"}', "name", "lone UTF-16 surrogate"),
        (b'{"m": {"\\udfff": 1}}', "m", "lone UTF-16 surrogate"),
        (b'{"a": [0, "ok", "\\udc00x"]}', "a[2]", "lone UTF-16 surrogate"),
        (b"[" * 10_000 + b"]" * 10_000, None, f"nested more than {MAX_DEPTH} levels"),
        (b'{"n": "{", "payload": ' + b"[" * 9_999 + b"]" * 9_999 + b"}", "payload", "nested"),
        (b'{"p": ' + b"[" * 200 + b"]" * 200 + b"}", "p", f"nested more than {MAX_DEPTH}"),
        (b"\xed\xa0\x80", None, "not UTF-8"),
        (b'{"a": 1,}', None, "Expecting property name"),
    ],
)
def test_what_cannot_be_stored_or_rendered_is_refused_naming_the_field(
    raw: bytes, field: str | None, reason: str
) -> None:
    with pytest.raises(JsonInputError) as refused:
        decode_json_body(raw)
    assert refused.value.status == 400
    assert refused.value.code == "invalid_json"
    assert refused.value.field == field
    assert reason in refused.value.message


DEEPEST = functools.reduce(lambda inner, _: [inner], range(MAX_DEPTH - 1), [])


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b'{"emoji": "\\ud83d\\ude00", "n": -9223372036854775808, "x": 1.5e300}',
         {"emoji": "\U0001f600", "n": -(2**63), "x": 1.5e300}),
        (b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, DEEPEST),
        ('{"zoë": "①"}'.encode(), {"zoë": "①"}),
    ],
)  # fmt: skip
def test_valid_json_within_the_limits_is_read_as_is(raw: bytes, value: object) -> None:
    assert decode_json_body(raw) == value


@pytest.mark.parametrize(
    "path", ["/v1/cues", "/v1/auth/session", "/v1/auth/device-code", "/v1/worker/heartbeat"]
)
async def test_every_route_answers_a_lone_surrogate_with_400_naming_the_field(
    api: httpx.AsyncClient, path: str
) -> None:
    response = await api.post(path, content=b'{"name": "\\ud800", "token": "\\ud800"}')
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert response.json()["error"]["details"][0]["field"] in {"name", "token"}


async def test_an_offset_past_64_bits_is_a_422_naming_it(api: httpx.AsyncClient) -> None:
    for path in ("/v1/cues", "/v1/executions", "/v1/alerts", "/v1/support"):
        response = await api.get(path, params={"offset": str(2**63)})
        assert response.status_code == 422, path
        assert response.json()["error"]["details"][0]["field"] == "offset"
