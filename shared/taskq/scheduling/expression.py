"""EventBridge schedule expressions for periodic tasks: parsing, validation and fire times.

`@task(schedule=..., schedule_tz=...)` takes the expressions EventBridge takes, so a schedule
written for one works on the other. A ScheduleExpression is a pure value: every process that
evaluates it gets the same fire times, to the second, and exactly-once runs rely on that.
Fire times are epoch seconds on whole minutes.

rate(value unit)
    value is a positive whole number; unit is minute, hour or day, singular exactly when the
    value is 1 (EventBridge rejects rate(1 minutes) and rate(5 minute)). Fire times are the
    multiples of the period counted from the Unix epoch, 1970-01-01T00:00Z: rate(5 minutes)
    fires at :00, :05, ... UTC, rate(1 day) at 00:00 UTC, rate(7 days) every seventh day from
    1970-01-01 (a Thursday). The time zone is checked but ignored: a day is 24 hours, as
    EventBridge Scheduler counts it across daylight saving changes.

cron(minutes hours day-of-month month day-of-week year)
    EventBridge's six fields, all required:

        minutes       0-59                 , - * /
        hours         0-23                 , - * /
        day-of-month  1-31                 , - * ? / L W
        month         1-12 or JAN-DEC      , - * /
        day-of-week   1-7 or SUN-SAT       , - * ? L #      (1 = SUN, 7 = SAT)
        year          1970-2199            , - * /

    Exactly one of day-of-month and day-of-week is `?`. `a/n` and `*/n` step by n from a (or
    the field's lowest value) to the field's highest; `a-b/n` within a-b. Ranges do not wrap
    (write 22-23,0-2, not 22-2). Names are case-insensitive. In day-of-month, `L` is the
    month's last day and `nW` the weekday (MON-FRI) nearest day n within the same month: 1W
    on a Saturday is Monday the 3rd, 31W on a Sunday is Friday the 29th, and a month without
    day n has none. In day-of-week, `L` alone is 7 (SAT), `nL` the month's last weekday n
    (6L: last Friday) and `n#k` its k-th weekday n (2#1: first Monday); with `#` the field
    holds that one term only. `LW` and `L-n`, which EventBridge's documentation never shows,
    are rejected. After the last year of the year field, next_after() is None.

Time zones and daylight saving
    A cron expression is read as wall-clock time in `tz` (an IANA name; UTC by default). The
    DST rule is EventBridge Scheduler's (User Guide, "Daylight savings time on EventBridge
    Scheduler"): a local time that a spring-forward skips does not fire that day (30 2 in
    Europe/Berlin has no fire on 2026-03-29), and a local time that a fall-back repeats fires
    once, at its first occurrence (on 2026-10-25 at 02:30 CEST = 00:30Z, not at 02:30 CET).
    So every local time fires at most once, and every local time that exists fires once.

Hand-written rather than croniter 7.0.0, because measured against these rules croniter
fires 30 2 Berlin twice on the fall-back day and at 03:00 on the spring-forward day,
rejects `6L` and a year field, and has no `?` rule (pyawscron takes UTC datetimes only).
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from taskq.errors import ConfigError

MAX_SPAN_S = 400 * 86_400  # the longest window fires_between and latest_at_or_before look at
_UNITS = {"minute": 60, "hour": 3_600, "day": 86_400}
_CRON_HINT = "cron(minutes hours day-of-month month day-of-week year), e.g. cron(0 3 * * ? *)"


@dataclass(frozen=True)
class _Spec:
    """One cron field: its name, its range and, for month and day-of-week, its names."""

    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] stands for low + i
    steps: bool = True


_MINUTES = _Spec("minutes", 0, 59)
_HOURS = _Spec("hours", 0, 23)
_DOM = _Spec("day-of-month", 1, 31)
_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTH = _Spec("month", 1, 12, _MONTH_NAMES)
_DOW = _Spec("day-of-week", 1, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), False)
_YEAR = _Spec("year", 1970, 2199)
_LAST_DAY = date(_YEAR.high, 12, 31)


@dataclass(frozen=True)
class _Rate:
    period_s: int


@dataclass(frozen=True)
class _Days:
    """The day fields: which days of a month the expression names."""

    by_weekday: bool  # day-of-month is `?`: the day-of-week terms pick the days
    days: frozenset[int] = frozenset()
    last_day: bool = False
    near_weekday: frozenset[int] = frozenset()  # nW terms
    weekdays: frozenset[int] = frozenset()  # 1 = SUN ... 7 = SAT
    last_weekday: frozenset[int] = frozenset()  # nL terms
    nth_weekday: tuple[int, int] | None = None  # n#k

    def days_in(self, year: int, month: int) -> list[int]:
        """The days of this month that the expression names, ascending."""
        first, length = calendar.monthrange(year, month)

        def aws_weekday(day: int) -> int:  # Python counts MON = 0, EventBridge SUN = 1
            return (first + day) % 7 + 1

        if self.by_weekday:
            found = {d for d in range(1, length + 1) if aws_weekday(d) in self.weekdays}
            for wd in self.last_weekday:
                found.add(max(d for d in range(length - 6, length + 1) if aws_weekday(d) == wd))
            if self.nth_weekday:
                wd, k = self.nth_weekday
                day = next(d for d in range(1, 8) if aws_weekday(d) == wd) + 7 * (k - 1)
                found.update([day] if day <= length else [])
            return sorted(found)
        found = {d for d in self.days if d <= length}
        found.update([length] if self.last_day else [])
        for n in (n for n in self.near_weekday if n <= length):
            if aws_weekday(n) == 7:  # Saturday: the Friday before, unless that is last month
                found.add(n - 1 if n > 1 else n + 2)
            elif aws_weekday(n) == 1:  # Sunday: the Monday after, unless that is next month
                found.add(n + 1 if n < length else n - 2)
            else:
                found.add(n)
        return sorted(found)


@dataclass(frozen=True)
class _Cron:
    """A parsed cron expression: days are matched per month, times per local day."""

    times: tuple[int, ...]  # minutes after local midnight, ascending
    months: frozenset[int]
    years: tuple[int, ...]  # ascending
    days: _Days


def _bad(text: str, problem: str) -> ConfigError:
    return ConfigError(f"schedule {text!r}: {problem}")


def _value(text: str, spec: _Spec, raw: str) -> int:
    """One number or name of a field, range-checked."""
    if raw.upper() in spec.names:
        return spec.low + spec.names.index(raw.upper())
    names = f" or {spec.names[0]}-{spec.names[-1]}" if spec.names else ""
    if not raw:
        raise _bad(text, f"{spec.name} has an empty value: expected {spec.low}-{spec.high}{names}")
    if not re.fullmatch(r"[0-9]+", raw):
        raise _bad(text, f"{spec.name} has {raw!r}: expected {spec.low}-{spec.high}{names}")
    if not spec.low <= int(raw) <= spec.high:
        raise _bad(
            text, f"{spec.name} value {int(raw)} is out of range: use {spec.low}-{spec.high}{names}"
        )
    return int(raw)


def _term(text: str, spec: _Spec, raw: str) -> range:
    """`*`, `a`, `a-b`, each optionally followed by `/n`."""
    base, slash, step = raw.partition("/")
    if slash and not spec.steps:
        raise _bad(text, f"{spec.name} takes no steps ({raw!r}): list the values, e.g. 2,4,6")
    if base == "*":
        low, high = spec.low, spec.high
    elif "-" in base:
        start, _, stop = base.partition("-")
        low, high = _value(text, spec, start), _value(text, spec, stop)
        if low > high:
            raise _bad(text, f"{spec.name} range {base!r} runs backwards: ranges do not wrap")
    else:
        low = _value(text, spec, base)
        high = spec.high if slash else low
    if slash and not re.fullmatch(r"0*[1-9][0-9]*", step):
        raise _bad(text, f"{spec.name} step {raw!r} needs a positive whole number: 0/15")
    return range(low, high + 1, int(step) if slash else 1)


def _field(text: str, spec: _Spec, raw: str) -> frozenset[int]:
    return frozenset(v for term in raw.split(",") for v in _term(text, spec, term))


def _day_of_month(text: str, raw: str) -> _Days:
    days: set[int] = set()
    near: set[int] = set()
    last = False
    for term in raw.upper().split(","):
        if term == "L":
            last = True
        elif term.startswith("L"):
            raise _bad(text, f"day-of-month {term!r} is not supported: use L (last day) or nW")
        elif term.endswith("W"):
            near.add(_value(text, _DOM, term[:-1]))
        else:
            days.update(_term(text, _DOM, term))
    return _Days(False, days=frozenset(days), last_day=last, near_weekday=frozenset(near))


def _day_of_week(text: str, raw: str) -> _Days:
    if "#" in raw:
        weekday, _, k = raw.partition("#")
        if "," in raw or not re.fullmatch(r"[1-5]", k):
            raise _bad(text, f"day-of-week {raw!r}: write one n#k with k 1-5, e.g. 2#1")
        return _Days(True, nth_weekday=(_value(text, _DOW, weekday), int(k)))
    weekdays: set[int] = set()
    last: set[int] = set()
    for term in raw.upper().split(","):
        if term == "L":
            weekdays.add(_DOW.high)
        elif term.endswith("L"):
            last.add(_value(text, _DOW, term[:-1]))
        else:
            weekdays.update(_term(text, _DOW, term))
    return _Days(True, weekdays=frozenset(weekdays), last_weekday=frozenset(last))


def _parse_cron(text: str, body: str) -> _Cron:
    fields = body.split()
    if len(fields) != 6:
        raise _bad(text, f"cron takes 6 fields, got {len(fields)}: {_CRON_HINT}")
    minutes, hours, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise _bad(
            text,
            "exactly one of day-of-month and day-of-week must be '?': "
            "cron(0 3 * * ? *) or cron(0 3 ? * MON *)",
        )
    days = _day_of_week(text, dow) if dom == "?" else _day_of_month(text, dom)
    times = sorted(
        h * 60 + m for h in _field(text, _HOURS, hours) for m in _field(text, _MINUTES, minutes)
    )
    return _Cron(
        times=tuple(times),
        months=_field(text, _MONTH, month),
        years=tuple(sorted(_field(text, _YEAR, year))),
        days=days,
    )


def _parse_rate(text: str, body: str) -> _Rate:
    parts = body.split()
    if len(parts) != 2:
        raise _bad(text, "rate takes a value and a unit: rate(5 minutes)")
    value, unit = parts
    if not re.fullmatch(r"[0-9]+", value) or int(value) == 0:
        raise _bad(
            text, f"the value must be a positive whole number, not {value!r}: rate(5 minutes)"
        )
    singular = unit.removesuffix("s")
    if singular not in _UNITS:
        raise _bad(
            text, f"unknown unit {unit!r}: use minute(s), hour(s) or day(s): rate(5 minutes)"
        )
    n = int(value)
    if n == 1 and unit != singular:
        raise _bad(text, f"the unit must be singular when the value is 1: rate(1 {singular})")
    if n != 1 and unit == singular:
        raise _bad(text, f"the unit must be plural when the value is not 1: rate({n} {unit}s)")
    return _Rate(n * _UNITS[singular])


def _parse(text: str) -> _Rate | _Cron:
    match = re.fullmatch(r"\s*(rate|cron)\((.*)\)\s*", text, re.DOTALL)
    if match is None:
        raise _bad(text, f"expected rate(value unit), e.g. rate(5 minutes), or {_CRON_HINT}")
    kind, body = match.groups()
    return _parse_rate(text, body) if kind == "rate" else _parse_cron(text, body)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ConfigError(
            f"unknown time zone {name!r}: use an IANA name, e.g. Europe/Berlin"
        ) from exc


def _epoch(day: date, minute: int, zone: ZoneInfo) -> int | None:
    """The instant of a local wall time on `day`; None if a spring-forward skips it.

    fold=0 (the default) picks the first of two instants when a fall-back repeats the time.
    """
    wall = datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=zone)
    epoch = int(wall.timestamp())
    back = datetime.fromtimestamp(epoch, zone)
    return epoch if back.replace(tzinfo=None) == wall.replace(tzinfo=None) else None


def _fires_on(cron: _Cron, zone: ZoneInfo, day: date) -> list[int]:
    """The day's fire times, ascending; the fast path holds on days without a DST change."""
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = start + timedelta(days=1)  # wall-clock arithmetic: the next local midnight
    offsets = {d.replace(fold=f).utcoffset() for d in (start, end) for f in (0, 1)}
    if len(offsets) == 1:
        offset = offsets.pop() or timedelta(0)
        midnight = int(start.replace(tzinfo=UTC).timestamp() - offset.total_seconds())
        return [midnight + 60 * minute for minute in cron.times]
    epochs = (_epoch(day, minute, zone) for minute in cron.times)
    return sorted(e for e in epochs if e is not None)


def _days(cron: _Cron, first: date, last: date, reverse: bool = False) -> Iterator[date]:
    """The days in [first, last] that the expression names, month by month."""
    first = max(first, date(cron.years[0], 1, 1))
    last = min(last, date(cron.years[-1], 12, 31))
    months = range(first.year * 12 + first.month - 1, last.year * 12 + last.month)
    years = set(cron.years)
    for index in reversed(months) if reverse else months:
        year, month = divmod(index, 12)
        if year in years and month + 1 in cron.months:
            found = [date(year, month + 1, d) for d in cron.days.days_in(year, month + 1)]
            yield from (d for d in (found[::-1] if reverse else found) if first <= d <= last)


@dataclass(frozen=True)
class ScheduleExpression:
    """A validated schedule: equal text and tz mean equal fire times, in any process."""

    text: str
    tz: str = "UTC"
    _rule: _Rate | _Cron = field(init=False, repr=False, compare=False)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_rule", _parse(self.text))
        object.__setattr__(self, "_zone", _zone(self.tz))

    @classmethod
    def parse(cls, text: str, tz: str = "UTC") -> ScheduleExpression:
        """Check a task's schedule at import time, so a typo fails the deploy, not 3 a.m."""
        return cls(text, tz)

    def _local_date(self, t: float) -> date:
        limit = datetime(_YEAR.high + 1, 1, 2, tzinfo=UTC).timestamp()
        return datetime.fromtimestamp(min(max(t, 0.0), limit), self._zone).date()

    def fires_between(self, start: float, end: float) -> list[float]:
        """Every fire t with start < t <= end: what a scheduler tick since `start` owes."""
        if end - start > MAX_SPAN_S:
            raise ValueError(f"fires_between spans at most {MAX_SPAN_S // 86_400} days")
        if end <= start:
            return []
        rule = self._rule
        if isinstance(rule, _Rate):
            first = int(start // rule.period_s + 1) * rule.period_s
            return [float(t) for t in range(first, math.floor(end) + 1, rule.period_s)]
        last = min(self._local_date(end) + timedelta(days=1), _LAST_DAY)
        days = _days(rule, self._local_date(start) - timedelta(days=1), last)
        fires = (t for day in days for t in _fires_on(rule, self._zone, day))
        return [float(t) for t in fires if start < t <= end]

    def next_after(self, t: float) -> float | None:
        """The first fire strictly after t; None once the year field has run out."""
        rule = self._rule
        if isinstance(rule, _Rate):
            return float(int(t // rule.period_s + 1) * rule.period_s)
        for day in _days(rule, self._local_date(t) - timedelta(days=1), _LAST_DAY):
            for fire in _fires_on(rule, self._zone, day):
                if fire > t:
                    return float(fire)
        return None

    def latest_at_or_before(self, t: float) -> float | None:
        """The last fire at or before t within 400 days: the run a late tick still owes."""
        rule = self._rule
        if isinstance(rule, _Rate):
            fire = float(int(t // rule.period_s) * rule.period_s)
            return fire if t - fire <= MAX_SPAN_S else None
        first = self._local_date(t - MAX_SPAN_S) - timedelta(days=1)
        last = min(self._local_date(t) + timedelta(days=1), _LAST_DAY)
        for day in _days(rule, first, last, reverse=True):
            for fire in reversed(_fires_on(rule, self._zone, day)):
                if t - MAX_SPAN_S <= fire <= t:
                    return float(fire)
        return None
