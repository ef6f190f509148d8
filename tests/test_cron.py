"""Cron in a time zone across real DST transitions (DESIGN §4)."""

from __future__ import annotations

import pytest

from cueapi_lite.cron import CronError, CronSchedule, TimezoneError

from .helpers import ms, utc


def fires(expression: str, zone: str, start: str, end: str) -> list[str]:
    schedule = CronSchedule(expression, zone)
    return [utc(o.at_ms) for o in schedule.between(ms(start), ms(end), 1000)]


def test_daily_wall_time_in_fall_back_fold_fires_once_at_first_occurrence() -> None:
    # New York, 2026-11-01: 01:00-01:59 happens twice (EDT, then EST).
    assert fires("30 1 * * *", "America/New_York", "2026-10-31T00:00Z", "2026-11-02T12:00Z") == [
        "2026-10-31T05:30:00Z",
        "2026-11-01T05:30:00Z",  # 01:30 EDT only; not again at 01:30 EST (06:30Z)
        "2026-11-02T06:30:00Z",
    ]


def test_interval_expression_fires_on_every_real_instant_of_a_fold() -> None:
    got = fires("*/30 * * * *", "America/New_York", "2026-11-01T04:30Z", "2026-11-01T07:00Z")
    assert got == [
        "2026-11-01T04:30:00Z",  # 00:30 EDT
        "2026-11-01T05:00:00Z",  # 01:00 EDT
        "2026-11-01T05:30:00Z",  # 01:30 EDT
        "2026-11-01T06:00:00Z",  # 01:00 EST
        "2026-11-01T06:30:00Z",  # 01:30 EST
        "2026-11-01T07:00:00Z",  # 02:00 EST
    ]


def test_hourly_expression_fires_in_both_passes_of_the_repeated_hour() -> None:
    got = fires("0 * * * *", "Europe/London", "2026-10-25T00:00Z", "2026-10-25T02:00Z")
    # London falls back at 02:00 BST -> 01:00 GMT: 01:00 local is 00:00Z and 01:00Z.
    assert got == ["2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"]


def test_wall_time_in_spring_forward_gap_fires_once_right_after_the_gap() -> None:
    # New York, 2026-03-08: 02:00-02:59 does not exist; 02:30 fires at 03:00 EDT (07:00Z).
    got = fires("30 2 * * *", "America/New_York", "2026-03-07T00:00Z", "2026-03-09T12:00Z")
    assert got == ["2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]


def test_interval_expression_skips_the_gap_without_extra_fires() -> None:
    got = fires("*/30 * * * *", "America/New_York", "2026-03-08T06:00Z", "2026-03-08T08:00Z")
    # 01:00, 01:30 EST, then straight to 03:00 EDT: nothing for the missing 02:xx.
    assert got == [
        "2026-03-08T06:00:00Z",
        "2026-03-08T06:30:00Z",
        "2026-03-08T07:00:00Z",
        "2026-03-08T07:30:00Z",
        "2026-03-08T08:00:00Z",
    ]


def test_half_hour_gap_of_lord_howe_moves_a_fixed_time_to_the_end_of_the_gap() -> None:
    # Lord Howe springs forward 30 minutes at 02:00 local on 2026-10-04 (02:00 -> 02:30).
    got = fires("15 2 * * *", "Australia/Lord_Howe", "2026-10-02T00:00Z", "2026-10-04T23:00Z")
    assert got == [
        "2026-10-02T15:45:00Z",  # 02:15 +10:30
        "2026-10-03T15:30:00Z",  # 02:15 does not exist: fires at 02:30 +11:00
        "2026-10-04T15:15:00Z",  # 02:15 +11:00
    ]


def test_next_after_from_inside_the_first_pass_of_a_fold_finds_the_second_pass() -> None:
    schedule = CronSchedule("*/15 * * * *", "America/New_York")
    # 01:55 EDT: the next real quarter hour is 01:00 EST, an hour of wall time "earlier".
    assert utc(schedule.next_after(ms("2026-11-01T05:55:00Z")) or 0) == "2026-11-01T06:00:00Z"


def test_notes_flag_fires_that_dst_decided() -> None:
    schedule = CronSchedule("30 2 * * *", "America/New_York")
    occurrence = schedule.next_occurrence(ms("2026-03-08T00:00:00Z"))
    assert occurrence is not None
    assert occurrence.note == "02:30 does not exist (DST gap); fires at 03:00"
    ordinary = schedule.next_occurrence(occurrence.at_ms)
    assert ordinary is not None
    assert ordinary.note is None


def test_utc_schedules_are_plain() -> None:
    assert fires("0 9 * * 1-5", "UTC", "2026-11-20T00:00Z", "2026-11-24T00:00Z") == [
        "2026-11-20T09:00:00Z",
        "2026-11-23T09:00:00Z",
    ]


def test_aliases_are_accepted() -> None:
    assert CronSchedule("@daily").expression == "0 0 * * *"


@pytest.mark.parametrize(
    "expression",
    ["61 * * * *", "* * * *", "* * * * * *", "", "0 0 30 2 *", "every day", "H * * * *"],
)
def test_bad_expressions_are_refused(expression: str) -> None:
    with pytest.raises(CronError):
        CronSchedule(expression)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd", "EST5EDT/../x"])
def test_bad_zones_are_refused(zone: str) -> None:
    with pytest.raises(TimezoneError):
        CronSchedule("* * * * *", zone)
