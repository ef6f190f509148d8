"""Cron expressions in plain words ("every day at 09:00"), for people reading the dashboard.

Covers the shapes people write (every N minutes, hourly, daily, weekdays, days of the
month, months); anything else is shown as the expression itself. Cached: a page of cues
that share schedules describes each one once.
"""

from __future__ import annotations

from functools import lru_cache

from ..cron import ALIASES

__all__ = ["describe"]

_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
)  # fmt: skip
_DAY_NAMES = {name[:3].lower(): index for index, name in enumerate(_DAYS)}
_MONTH_NAMES = {name[:3].lower(): index + 1 for index, name in enumerate(_MONTHS)}


class _Unsupported(Exception):
    pass


def _values(field: str, low: int, high: int, names: dict[str, int] | None = None) -> list[int]:
    """The numbers a field of plain values, lists and ranges names (no steps)."""
    found: set[int] = set()
    for part in field.split(","):
        bounds = part.split("-")
        if len(bounds) > 2 or "/" in part:
            raise _Unsupported
        numbers = [_number(bound, names) for bound in bounds]
        if not all(low <= n <= high for n in numbers) or numbers[0] > numbers[-1]:
            raise _Unsupported
        found.update(range(numbers[0], numbers[-1] + 1))
    return sorted(found)


def _number(text: str, names: dict[str, int] | None) -> int:
    if names and text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise _Unsupported
    return int(text)


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _step(field: str) -> int | None:
    """N for `*/N`, 1 for `*`, None otherwise."""
    if field == "*":
        return 1
    if field.startswith("*/") and field[2:].isdigit() and int(field[2:]) > 0:
        return int(field[2:])
    return None


def _time_of_day(minute: str, hour: str) -> str:
    """ "every minute", "every 15 minutes", "every hour at :05", "at 09:00 and 17:00"."""
    minute_step, hour_step = _step(minute), _step(hour)
    if minute_step is not None:
        every = "every minute" if minute_step == 1 else f"every {minute_step} minutes"
        if hour_step == 1:
            return every
        hours = _values(hour, 0, 23)
        if len(hours) > 2 and hours == list(range(hours[0], hours[-1] + 1)):
            return f"{every} from {hours[0]:02d}:00 to {hours[-1]:02d}:59"
        return f"{every} during hour{'s' if len(hours) > 1 else ''} " + _join(
            [f"{h:02d}:00" for h in hours]
        )
    minutes = _values(minute, 0, 59)
    if hour_step is not None:
        at = _join([f":{m:02d}" for m in minutes])
        return f"every hour at {at}" if hour_step == 1 else f"every {hour_step} hours at {at}"
    hours = _values(hour, 0, 23)
    if len(hours) * len(minutes) > 6:
        raise _Unsupported
    return "at " + _join([f"{h:02d}:{m:02d}" for h in hours for m in minutes])


def _days(day_of_month: str, month: str, day_of_week: str) -> str:
    """ "every day", "every weekday", "on Monday and Friday", "on the 1st of every month"."""
    if day_of_week in ("*", "?"):
        weekdays: list[int] | None = None
    else:
        weekdays = sorted({d % 7 for d in _values(day_of_week, 0, 7, _DAY_NAMES)})
    months = None if month == "*" else _values(month, 1, 12, _MONTH_NAMES)
    dates = None if day_of_month in ("*", "?") else _values(day_of_month, 1, 31)
    if dates is not None and weekdays is not None:
        raise _Unsupported  # cron's "either matches" rule reads badly in words
    if weekdays is not None:
        if weekdays == [1, 2, 3, 4, 5]:
            words = "every weekday"
        elif weekdays == [0, 6]:
            words = "every Saturday and Sunday"
        else:
            words = "every " + _join([_DAYS[d] for d in weekdays])
    elif dates is not None:
        words = "on the " + _join([_ordinal(d) for d in dates])
        words += " of every month" if months is None else ""
    else:
        words = "every day"
    if months is not None:
        words += (" of " if dates is not None else " in ") + _join([_MONTHS[m - 1] for m in months])
    return words


@lru_cache(maxsize=4096)
def describe(expression: str) -> str:
    """The cron expression in words, or `cron <expression>` when it has no plain form."""
    text = " ".join(expression.split())
    text = ALIASES.get(text.lower(), text)
    fields = text.split(" ")
    if len(fields) != 5:
        return f"cron {expression}"
    minute, hour, day_of_month, month, day_of_week = fields
    try:
        when = _time_of_day(minute, hour)
        days = _days(day_of_month, month, day_of_week)
    except (_Unsupported, ValueError):
        return f"cron {text}"
    if when.startswith("every") and days == "every day":
        return when
    if when.startswith("every"):
        return f"{when}, {days}"
    return f"{days} {when}"
