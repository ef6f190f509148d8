"""Schedules in plain words, and the badge and colour rules of the dashboard."""

from __future__ import annotations

import pytest

from cueapi_lite.web.health import cue_health, outcome_category
from cueapi_lite.web.schedule_words import describe


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("* * * * *", "every minute"),
        ("*/15 * * * *", "every 15 minutes"),
        ("0 * * * *", "every hour at :00"),
        ("5 */2 * * *", "every 2 hours at :05"),
        ("0 9 * * *", "every day at 09:00"),
        ("@daily", "every day at 00:00"),
        ("30 9 * * 1-5", "every weekday at 09:30"),
        ("0 9,17 * * *", "every day at 09:00 and 17:00"),
        ("0 8 * * mon,fri", "every Monday and Friday at 08:00"),
        ("15 10 * * 7", "every Sunday at 10:15"),
        ("0 9 * * 0,6", "every Saturday and Sunday at 09:00"),
        ("0 0 1 * *", "on the 1st of every month at 00:00"),
        ("0 0 1 1 *", "on the 1st of January at 00:00"),
        ("0 12 * 6-8 *", "every day in June, July and August at 12:00"),
        ("*/5 9-17 * * 1-5", "every 5 minutes from 09:00 to 17:59, every weekday"),
        ("0   9  *  *  *", "every day at 09:00"),
    ],
)
def test_common_schedules_read_as_words(cron: str, words: str) -> None:
    assert describe(cron) == words


@pytest.mark.parametrize(
    "cron", ["0 9 1 * 1", "0 0 L * *", "1,2,3,4,5,6,7 1,2 * * *", "0 9 * *", "5-1 * * * *"]
)
def test_shapes_without_plain_words_show_the_expression(cron: str) -> None:
    assert describe(cron) == "cron " + " ".join(cron.split())


@pytest.mark.parametrize(
    ("status", "state", "category"),
    [
        ("success", None, "success"),
        ("success", "reported_failure", "failure"),  # delivered, but the agent failed
        ("success", "verification_failed", "verification_failed"),
        ("success", "unknown", "unknown"),
        ("success", "verification_pending", "pending"),
        ("delivering", None, "running"),
        ("retrying", None, "running"),
        ("failed", None, "failure"),
        ("missed", None, "missed"),
        ("failed", "verified_success", "success"),
    ],
)
def test_outcome_state_decides_the_colour_before_delivery_status(
    status: str, state: str | None, category: str
) -> None:
    assert outcome_category(status, state) == category


def test_cue_badges() -> None:
    assert cue_health("paused", "failed", None) == "paused"
    assert cue_health("completed", "success", None) == "completed"
    assert cue_health("failed", None, None) == "failing"
    assert cue_health("active", None, None) == "healthy"
    assert cue_health("active", "missed", None) == "failing"
    assert cue_health("active", "success", "verification_failed") == "failing"
    assert cue_health("active", "success", "verified_success") == "healthy"


async def test_snapshots_are_reused_until_a_commit_and_two_seconds() -> None:
    from cueapi_lite import ManualClock
    from cueapi_lite.web.snapshots import Snapshots

    clock = ManualClock()
    version = [1]
    reads: list[int] = []

    async def read() -> int:
        reads.append(version[0])
        return version[0]

    snapshots = Snapshots(clock, lambda: version[0])
    assert await snapshots.get("k", read) == 1
    version[0] = 2
    clock.advance(1)
    assert await snapshots.get("k", read) == 1  # committed, but read under 2 s ago
    clock.advance(1)
    assert await snapshots.get("k", read) == 2
    clock.advance(3600)
    assert await snapshots.get("k", read) == 2  # nothing committed: reused however old
    assert reads == [1, 2]
    for n in range(300):
        await snapshots.get(n, read)
    assert len(snapshots._entries) == 64
