"""Cron expressions in an IANA time zone, and the project's DST rules.

croniter matches wall times; this module decides which real instants those wall times
are (DESIGN §4), because croniter alone fires a daily `30 1 * * *` twice on fall-back day:

* Spring-forward gap: a wall time that does not exist that day fires once, at the first
  instant after the gap (02:30 -> 03:00), like Vixie cron. Interval-like expressions
  (a `*` in the minute or hour field) only fire on real instants, so they skip the gap.
* Fall-back fold: a fixed wall time that occurs twice fires once, at its first
  occurrence; interval-like expressions fire on every real instant they match.

Nothing here reads the clock or touches storage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter

from .models import epoch_ms

__all__ = [
    "CronError",
    "CronSchedule",
    "Occurrence",
    "TimezoneError",
    "check_expression",
    "check_zone_name",
    "load_zone",
    "preview",
    "schedule_for",
]

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MAX_EXPRESSION_CHARS = 255
# No zone has ever moved its offset by more than this in one transition; candidates
# this far before a transition can still map to instants after it.
TRANSITION_WINDOW = timedelta(hours=3)
# A schedule whose next match is further away than this is treated as never firing.
MAX_YEARS_BETWEEN_MATCHES = 8
_MAX_CANDIDATES = 2000


class CronError(ValueError):
    """The expression is not a 5-field cron expression that ever fires."""


class TimezoneError(ValueError):
    """The name is not an IANA time zone."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] stands for low + i

    def number(self, text: str) -> int:
        """One value of this field: a number or (month, day of week) a name."""
        lowered = text.lower()
        if lowered in self.names:
            return self.low + self.names.index(lowered)
        if not text.isascii() or not text.isdigit() or len(text) > 9:
            kinds = "a number" if not self.names else f"a number or a name ({self.names[0]}"
            kinds += f"-{self.names[-1]})" if self.names else ""
            raise CronError(f"{self.name} {text!r} is not {kinds}")
        value = int(text)
        if not self.low <= value <= self.high:
            raise CronError(f"{self.name} {value} is out of range {self.low}\u2013{self.high}")
        return value


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTHS),
    _Field("day-of-week", 0, 7, _DAYS),  # 7 is Sunday too
)


def _check_item(field: _Field, item: str) -> None:
    if not item:
        raise CronError(f"{field.name} has an empty list item (two commas, or a trailing one)")
    base, slash, step_text = item.partition("/")
    if slash:
        span = field.high - field.low
        if not step_text.isascii() or not step_text.isdigit() or len(step_text) > 9:
            raise CronError(f"{field.name} step {step_text!r} is not a number")
        step = int(step_text)
        if not 1 <= step <= span:
            raise CronError(f"{field.name} step {step} is out of range 1\u2013{span}")
    if base in ("*", "?"):
        return
    start_text, dash, end_text = base.partition("-")
    start = field.number(start_text)
    if dash:
        end = field.number(end_text)
        if start > end:
            raise CronError(
                f"{field.name} range {base} is reversed: {start_text} comes after {end_text}"
            )


def check_expression(expression: str) -> str:
    """The normalised expression if every field is valid; otherwise a CronError that
    names the field and says why (`hour 25 is out of range 0\u201323`).

    The rule for new schedules. Stored schedules are read with `schedule_for` alone,
    so an expression accepted by an older, laxer check still fires.
    """
    if not isinstance(expression, str):
        raise CronError("Cron expression must be a string")
    text = " ".join(expression.split())
    text = ALIASES.get(text.lower(), text)
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CronError("Cron expression is too long")
    parts = text.split(" ")
    if len(parts) != 5:
        raise CronError(
            f"Invalid cron expression {expression[:80]!r}: expected 5 fields "
            f"(minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    for field, part in zip(_FIELDS, parts, strict=True):
        for item in part.split(","):
            try:
                _check_item(field, item)
            except CronError as exc:
                raise CronError(f"Invalid cron expression {text!r}: {exc}") from None
    return _normalise(text)


_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    # The IANA names, without the files that are not zones (`localtime` is whatever
    # this host is set to; `Factory` is a placeholder) and without the `posix/` and
    # `right/` copies (`right/` counts leap seconds, which no client expects).
    return frozenset(
        name
        for name in available_timezones()
        if name not in _NOT_ZONES and not name.startswith(("posix/", "right/"))
    )


def check_zone_name(name: object) -> str:
    """`name` if it is a canonical IANA zone name; raises TimezoneError otherwise."""
    if not isinstance(name, str) or name not in _zone_names():
        shown = name[:64] if isinstance(name, str) else name
        raise TimezoneError(
            f"Unknown timezone: {shown!r}; use an IANA zone name such as 'Europe/Berlin' or 'UTC'"
        )
    load_zone(name)
    return name


@lru_cache(maxsize=512)
def load_zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; raises TimezoneError for anything else."""
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise TimezoneError(f"Unknown timezone: {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise TimezoneError(f"Unknown timezone: {name!r}") from exc


@dataclasses.dataclass(frozen=True, slots=True)
class Occurrence:
    """One fire instant, and a note when a DST gap or fold decided it."""

    at_ms: int
    wall: datetime  # the matching wall time (naive, in the schedule's zone)
    note: str | None = None


def _normalise(expression: str) -> str:
    text = " ".join(expression.split())
    text = ALIASES.get(text.lower(), text)
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CronError("Cron expression is too long")
    if len(text.split(" ")) != 5:
        raise CronError(
            f"Invalid cron expression {expression!r}: expected 5 fields "
            "(minute hour day-of-month month day-of-week)"
        )
    if not croniter.is_valid(text):
        raise CronError(f"Invalid cron expression {expression!r}")
    return text


def _from_ms(at_ms: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(zone)


class CronSchedule:
    """A validated cron expression bound to a zone; answers "when does it fire next?"."""

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        self.expression = _normalise(expression)
        self.zone = load_zone(timezone)
        minute, hour = self.expression.split(" ")[:2]
        self.interval_like = minute.startswith("*") or hour.startswith("*")
        self._iter = croniter(
            self.expression,
            datetime(2000, 1, 1),
            max_years_between_matches=MAX_YEARS_BETWEEN_MATCHES,
        )
        self._fixed = self._zone_is_fixed(self.zone)
        # The last two answers (see next_occurrence).
        self._last: tuple[int, Occurrence] | None = None
        self._before_last: tuple[int, Occurrence] | None = None
        if self.next_after(0) is None:
            raise CronError(f"Cron expression {expression!r} never fires")

    @staticmethod
    def _zone_is_fixed(zone: ZoneInfo) -> bool:
        return str(zone.key) in {"UTC", "Etc/UTC", "Etc/GMT", "GMT", "Etc/Universal", "Zulu"}

    def _next_wall(self, after: datetime) -> datetime | None:
        """The first wall time strictly after `after` (naive) that the expression matches."""
        self._iter.set_current(after, force=True)
        try:
            result: Any = self._iter.get_next(datetime)
        except Exception:  # croniter raises CroniterBadDateError when nothing matches
            return None
        return result if isinstance(result, datetime) else None

    def _resolve(self, wall: datetime) -> tuple[list[int], str | None]:
        """The instants that the wall time `wall` fires at, under the DST rules."""
        first = wall.replace(tzinfo=self.zone, fold=0)
        second = wall.replace(tzinfo=self.zone, fold=1)
        if first.utcoffset() == second.utcoffset():
            return [epoch_ms(first)], None
        first_utc = first.astimezone(UTC)
        exists = first_utc.astimezone(self.zone).replace(tzinfo=None) == wall
        if exists:  # a fold: the wall time happens twice
            instants = [epoch_ms(first), epoch_ms(second)]
            if self.interval_like:
                return instants, f"{wall:%H:%M} occurs twice (DST fold); fires at both"
            return instants[:1], f"{wall:%H:%M} occurs twice (DST fold); fires at the first"
        if self.interval_like:
            return [], None
        after_gap = self._gap_end_ms(wall)
        local = _from_ms(after_gap, self.zone)
        return [after_gap], f"{wall:%H:%M} does not exist (DST gap); fires at {local:%H:%M}"

    def _gap_end_ms(self, wall: datetime) -> int:
        """The first real instant after the gap that swallowed the wall time `wall`."""
        # fold=1 reads the wall time with the offset after the gap, fold=0 with the one
        # before; the transition instant lies between the two readings.
        low = epoch_ms(wall.replace(tzinfo=self.zone, fold=1))
        high = epoch_ms(wall.replace(tzinfo=self.zone, fold=0))
        low, high = min(low, high), max(low, high)
        after = _from_ms(high, self.zone).utcoffset()
        while high - low > 1000:
            middle = (low + high) // 2
            if _from_ms(middle, self.zone).utcoffset() == after:
                high = middle
            else:
                low = middle
        return high

    def next_occurrence(self, after_ms: int) -> Occurrence | None:
        """The first fire instant strictly after `after_ms`, or None if there is none."""
        # The answer is the same for every instant from an earlier question up to the
        # occurrence it found: cues created (or succeeding) within one interval share it,
        # so re-arming a million cues' checks at start computes once per interval. Two
        # answers are kept: a missed window asks for the occurrence after its start and
        # then for the one after that, in turn for every cue.
        for known in (self._last, self._before_last):
            if known is not None and known[0] <= after_ms < known[1].at_ms:
                return known[1]
        found = _next_cached(self, after_ms)
        if found is not None:
            self._last, self._before_last = (after_ms, found), self._last
        return found

    def next_after(self, after_ms: int) -> int | None:
        occurrence = self.next_occurrence(after_ms)
        return None if occurrence is None else occurrence.at_ms

    def _compute_next(self, after_ms: int) -> Occurrence | None:
        if self._fixed:
            wall_after = datetime.fromtimestamp(after_ms / 1000, UTC).replace(tzinfo=None)
            wall = self._next_wall(wall_after)
            return None if wall is None else Occurrence(epoch_ms(wall.replace(tzinfo=UTC)), wall)
        now = _from_ms(after_ms, self.zone)
        cursor = now.replace(tzinfo=None)
        window_ms = int(TRANSITION_WINDOW.total_seconds() * 1000)
        before = _from_ms(after_ms - window_ms, self.zone).utcoffset()
        ahead = _from_ms(after_ms + window_ms, self.zone).utcoffset()
        if before != now.utcoffset() or ahead != now.utcoffset():
            # Near a transition a wall time before `now` may still be ahead of us (the
            # second pass of a fold): look back far enough to see it.
            cursor -= TRANSITION_WINDOW
        best: Occurrence | None = None
        for _ in range(_MAX_CANDIDATES):
            wall = self._next_wall(cursor)
            if wall is None:
                break
            cursor = wall
            instants, note = self._resolve(wall)
            for at_ms in instants:
                if at_ms > after_ms and (best is None or at_ms < best.at_ms):
                    best = Occurrence(at_ms, wall, note)
            if note is None and instants and instants[0] > after_ms:
                # An ordinary wall time: nothing later can map to an earlier instant.
                break
            if best is not None and wall > best.wall + TRANSITION_WINDOW:
                break
        return best

    def between(self, start_ms: int, end_ms: int, limit: int) -> Iterator[Occurrence]:
        """Occurrences with start_ms <= at_ms <= end_ms, oldest first, at most `limit`."""
        cursor = start_ms - 1
        for _ in range(limit):
            occurrence = self.next_occurrence(cursor)
            if occurrence is None or occurrence.at_ms > end_ms:
                return
            yield occurrence
            cursor = occurrence.at_ms

    def __hash__(self) -> int:
        return hash((self.expression, self.zone.key))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, CronSchedule)
            and other.expression == self.expression
            and other.zone.key == self.zone.key
        )


@lru_cache(maxsize=8192)
def _next_cached(schedule: CronSchedule, after_ms: int) -> Occurrence | None:
    # Many cues share a schedule and fire at the same instant: compute their next
    # occurrence once (a burst of 10,000 `* * * * *` cues needs one computation).
    return schedule._compute_next(after_ms)


@lru_cache(maxsize=2048)
def schedule_for(expression: str, timezone: str) -> CronSchedule:
    """A cached CronSchedule; raises CronError or TimezoneError."""
    return CronSchedule(expression, timezone)


def preview(schedule: CronSchedule, after_ms: int, count: int) -> list[dict[str, str | None]]:
    """The next `count` fire instants after `after_ms`, in local time and UTC, each with
    the note of a DST gap or fold that moved it (what `explain` shows)."""
    rows: list[dict[str, str | None]] = []
    for occurrence in schedule.between(after_ms + 1, 2**62, count):
        moment = datetime.fromtimestamp(occurrence.at_ms / 1000, UTC)
        rows.append(
            {
                "local": moment.astimezone(schedule.zone).isoformat(),
                "utc": moment.isoformat(),
                "note": occurrence.note,
            }
        )
    return rows
