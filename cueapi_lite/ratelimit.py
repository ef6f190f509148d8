"""Sliding-window rate limits in memory, on the injected clock, and their headers.

A `SlidingWindow` counts each identity's requests (an API key, a session, a client
address) in one-second buckets over the last `window_s` seconds: exact to the second,
O(1) per request, at most `window_s` buckets per identity. Over the limit it raises 429
with an integer `Retry-After` (the SDK and the worker call `int()` on it, H11).
The edge adds `X-RateLimit-*` to answers of requests that were counted.
"""

from __future__ import annotations

import collections
import dataclasses

from .clock import Clock
from .config import Settings
from .errors import TooManyRequests

__all__ = ["SCOPE_KEY", "RateLimits", "RateState", "SlidingWindow"]

SCOPE_KEY = "cueapi_lite.rate"
# Identities kept at most; idle ones are dropped first (bounds memory against a flood
# of client addresses).
MAX_IDENTITIES = 100_000
_SWEEP_EVERY = 10_000


@dataclasses.dataclass(frozen=True, slots=True)
class RateState:
    """Where an identity stands after a counted request."""

    limit: int
    remaining: int
    reset_s: int  # seconds until the oldest counted request leaves the window

    @property
    def used(self) -> int:
        return self.limit - self.remaining

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset_s).encode()),
        ]


class _Window:
    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets: collections.deque[list[int]] = collections.deque()  # [second, count]
        self.total = 0


class SlidingWindow:
    """At most `limit` requests per identity in any `window_s` seconds (0 = no limit)."""

    def __init__(self, clock: Clock, limit: int, window_s: int = 60) -> None:
        self.clock = clock
        self.limit = limit
        self.window_s = window_s
        self._windows: dict[str, _Window] = {}
        self._hits = 0

    def hit(self, identity: str, message: str | None = None) -> RateState | None:
        """Count one request; raises TooManyRequests (nothing counted) when the window
        is full. None when there is no limit."""
        if self.limit <= 0:
            return None
        now_s = self.clock.now_ms() // 1000
        window = self._windows.get(identity)
        if window is None:
            self._sweep(now_s)
            window = self._windows[identity] = _Window()
        self._expire(window, now_s)
        if window.total >= self.limit:
            retry_after_s = max(1, window.buckets[0][0] + self.window_s - now_s)
            exc = TooManyRequests(
                message
                or f"Rate limit exceeded: {self.limit} requests per {self.window_s} seconds."
                f" Retry in {retry_after_s} s.",
                retry_after_s,
            )
            exc.headers.update(RateState(self.limit, 0, retry_after_s).headers())
            raise exc
        if window.buckets and window.buckets[-1][0] == now_s:
            window.buckets[-1][1] += 1
        else:
            window.buckets.append([now_s, 1])
        window.total += 1
        reset_s = window.buckets[0][0] + self.window_s - now_s
        return RateState(self.limit, self.limit - window.total, reset_s)

    def _expire(self, window: _Window, now_s: int) -> None:
        oldest_kept = now_s - self.window_s + 1
        while window.buckets and window.buckets[0][0] < oldest_kept:
            window.total -= window.buckets.popleft()[1]

    def _sweep(self, now_s: int) -> None:
        self._hits += 1
        if len(self._windows) < MAX_IDENTITIES and self._hits % _SWEEP_EVERY:
            return
        for identity, window in list(self._windows.items()):
            self._expire(window, now_s)
            if not window.total:
                del self._windows[identity]
        while len(self._windows) >= MAX_IDENTITIES:  # all busy: drop the oldest entries
            del self._windows[next(iter(self._windows))]


class RateLimits:
    """The server's two request limits: per API key or session, and per client address
    for requests without auth (and failed authentications)."""

    def __init__(self, clock: Clock, settings: Settings) -> None:
        self.per_caller = SlidingWindow(clock, settings.rate_limit_per_minute)
        self.per_address = SlidingWindow(clock, settings.ip_rate_limit_per_minute)
