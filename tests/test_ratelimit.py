"""Sliding-window rate limits (CONTRACT §2.4): per key or session, per client address
without auth; 429 with an integer Retry-After; /health and /status exempt."""

from __future__ import annotations

import httpx
import pytest

from cueapi_lite import CueApiLite, ManualClock, Settings
from cueapi_lite.errors import TooManyRequests
from cueapi_lite.ratelimit import SlidingWindow
from cueapi_lite.services.accounts import NewKey


@pytest.fixture
def settings(db_setting: str) -> Settings:
    return Settings(db=db_setting, rate_limit_per_minute=5, ip_rate_limit_per_minute=3)


def test_the_window_slides_by_the_second(clock: ManualClock) -> None:
    window = SlidingWindow(clock, limit=3, window_s=60)
    start_s = clock.now_ms() // 1000
    clock.advance(start_s + 1 - clock.now_ms() / 1000)  # at a whole second
    window.hit("k")
    clock.advance(30)
    window.hit("k")
    state = window.hit("k")
    assert state is not None
    assert (state.limit, state.remaining, state.reset_s) == (3, 0, 30)
    clock.advance(29)
    with pytest.raises(TooManyRequests) as refused:
        window.hit("k")
    assert refused.value.retry_after_s == 1
    assert refused.value.headers["Retry-After"] == "1"
    clock.advance(1)  # the first request left the window
    window.hit("k")
    with pytest.raises(TooManyRequests) as again:
        window.hit("k")
    assert again.value.retry_after_s == 30
    assert window.hit("another") is not None


def test_a_limit_of_zero_is_no_limit(clock: ManualClock) -> None:
    window = SlidingWindow(clock, limit=0)
    assert all(window.hit("k") is None for _ in range(10_000))


async def test_key_over_its_limit_gets_429_with_integer_retry_after(
    lite: CueApiLite, api: httpx.AsyncClient, clock: ManualClock
) -> None:
    for n in range(5):
        response = await api.get("/v1/cues")
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "5"
        assert response.headers["X-RateLimit-Remaining"] == str(4 - n)
        assert int(response.headers["X-RateLimit-Reset"]) in range(1, 61)
    refused = await api.post("/v1/cues", json={})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused.json()["detail"]["error"]["code"] == "rate_limit_exceeded"
    assert refused.headers["Retry-After"] == str(int(refused.headers["Retry-After"]))
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Remaining"] == "0"

    other = await lite.accounts.mint_key("bob@example.com")
    async with lite.client(other.api_key) as bob:
        assert (await bob.get("/v1/cues")).status_code == 200  # per key, not global

    clock.advance(60)
    assert (await api.get("/v1/cues")).status_code == 200


async def test_health_and_status_are_never_limited(lite: CueApiLite) -> None:
    async with lite.client() as client:
        for _ in range(20):
            assert (await client.get("/health")).status_code == 200
            assert (await client.get("/status")).status_code == 200


async def test_routes_without_auth_are_limited_per_address(lite: CueApiLite) -> None:
    async with lite.client() as client:
        for _ in range(3):
            response = await client.post("/v1/auth/device-code/poll", json={"device_code": "x"})
            assert response.status_code == 200
        refused = await client.post("/v1/auth/device-code/poll", json={"device_code": "x"})
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1


async def test_failed_authentications_count_against_the_address(
    lite: CueApiLite, user: NewKey
) -> None:
    async with lite.client("cue_sk_" + "0" * 32) as guesser:
        codes = [(await guesser.get("/v1/cues")).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    async with lite.client(user.api_key) as client:  # a valid key is not held back
        assert (await client.get("/v1/cues")).status_code == 200
