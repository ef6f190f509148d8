"""Rate and plan limits as the official SDK (0.1.3) sees them on a real socket."""

from __future__ import annotations

from pathlib import Path

import pytest
from cueapi import CueAPI, CueLimitExceededError, RateLimitError

from cueapi_lite.testing import LiveServer

pytestmark = pytest.mark.e2e


def test_rate_limit_error_carries_an_integer_retry_after(tmp_path: Path) -> None:
    with LiveServer(str(tmp_path / "rate.db"), rate_limit_per_minute=5) as server:
        other_key = server.mint_key("other@example.com").api_key
        with CueAPI(server.mint_key().api_key, base_url=server.base_url) as client:
            for _ in range(5):
                client.cues.list()
            with pytest.raises(RateLimitError) as refused:
                client.cues.list()
        assert refused.value.status_code == 429
        assert refused.value.code == "rate_limit_exceeded"
        assert type(refused.value.retry_after) is int
        assert 1 <= refused.value.retry_after <= 60
        with CueAPI(other_key, base_url=server.base_url) as other:  # limits are per key
            assert other.cues.list().total == 0


def test_cue_limit_raises_cue_limit_exceeded(tmp_path: Path) -> None:
    with LiveServer(str(tmp_path / "cues.db"), cue_limit=2) as server:
        with CueAPI(server.mint_key().api_key, base_url=server.base_url) as client:
            for name in ("a", "b"):
                client.cues.create(name=name, cron="0 9 * * *", callback="http://127.0.0.1:9/h")
            with pytest.raises(CueLimitExceededError) as refused:
                client.cues.create(name="c", cron="0 9 * * *", callback="http://127.0.0.1:9/h")
            assert client.cues.list().total == 2
        assert refused.value.status_code == 403
        assert refused.value.code == "cue_limit_exceeded"
        assert "2 active or paused cues" in refused.value.message
