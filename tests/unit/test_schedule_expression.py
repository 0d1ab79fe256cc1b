"""EventBridge schedule expressions: parsing, fire times, time zones and daylight saving.

Every expected time below is worked out by hand from a calendar, not by the code under test;
the DST sweep compares against an independent oracle (every half hour of a year in UTC).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from taskq.errors import ConfigError
from taskq.scheduling.expression import MAX_SPAN_S, ScheduleExpression


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


def fires(text: str, start: float, end: float, tz: str = "UTC") -> list[float]:
    return ScheduleExpression.parse(text, tz).fires_between(start, end)


# --- rate: anchored on the Unix epoch, in UTC ---------------------------------------------


def test_rate_minutes_fire_on_multiples_of_the_period_since_the_epoch() -> None:
    got = fires("rate(5 minutes)", utc(2026, 5, 4, 10, 2), utc(2026, 5, 4, 10, 17))
    assert got == [utc(2026, 5, 4, 10, 5), utc(2026, 5, 4, 10, 10), utc(2026, 5, 4, 10, 15)]


def test_rate_one_minute_fires_every_minute() -> None:
    every = ScheduleExpression.parse("rate(1 minute)")
    assert every.next_after(utc(2026, 5, 4, 10, 2) + 0.5) == utc(2026, 5, 4, 10, 3)
    assert len(every.fires_between(utc(2026, 5, 4), utc(2026, 5, 5))) == 1440


def test_rate_hours_and_days_are_anchored_on_midnight_utc() -> None:
    assert ScheduleExpression.parse("rate(1 hour)").next_after(utc(2026, 5, 4, 1, 30)) == utc(
        2026, 5, 4, 2
    )
    assert ScheduleExpression.parse("rate(2 hours)").next_after(utc(2026, 5, 4, 1)) == utc(
        2026, 5, 4, 2
    )
    assert ScheduleExpression.parse("rate(1 day)").next_after(utc(2026, 5, 4, 13)) == utc(
        2026, 5, 5
    )


def test_rate_in_days_counts_whole_periods_from_1970_01_01() -> None:
    # 2026-05-07 is day 20580 since the epoch, a multiple of 3 and of 7 (and a Thursday,
    # like 1970-01-01).
    weekly = ScheduleExpression.parse("rate(7 days)")
    assert weekly.next_after(utc(2026, 5, 4)) == utc(2026, 5, 7)
    assert weekly.next_after(utc(2026, 5, 7)) == utc(2026, 5, 14)
    assert ScheduleExpression.parse("rate(3 days)").next_after(utc(2026, 5, 7)) == utc(2026, 5, 10)


def test_rate_ignores_the_time_zone() -> None:
    berlin = ScheduleExpression.parse("rate(1 day)", "Europe/Berlin")
    assert berlin.next_after(utc(2026, 7, 1, 12)) == utc(2026, 7, 2)  # midnight UTC, not local


def test_rate_latest_at_or_before_includes_t_itself() -> None:
    five = ScheduleExpression.parse("rate(5 minutes)")
    assert five.latest_at_or_before(utc(2026, 5, 4, 10, 5)) == utc(2026, 5, 4, 10, 5)
    assert five.latest_at_or_before(utc(2026, 5, 4, 10, 9) + 59.9) == utc(2026, 5, 4, 10, 5)


def test_equal_expressions_are_equal_and_hash_alike() -> None:
    a = ScheduleExpression.parse("cron(0 3 * * ? *)", "Europe/Berlin")
    b = ScheduleExpression("cron(0 3 * * ? *)", "Europe/Berlin")
    assert a == b and len({a, b}) == 1
    assert a.text == "cron(0 3 * * ? *)" and a.tz == "Europe/Berlin"
    assert a != ScheduleExpression.parse("cron(0 3 * * ? *)")
    assert ScheduleExpression.parse("rate(5 minutes)").tz == "UTC"
    start, end = utc(2026, 1, 1), utc(2026, 12, 31)
    assert a.fires_between(start, end) == b.fires_between(start, end)


# --- cron: every field feature ------------------------------------------------------------


def test_cron_lists_of_minutes_and_hours() -> None:
    day = utc(2026, 5, 4)
    assert fires("cron(0,30 9,17 * * ? *)", day, day + 86_400) == [
        utc(2026, 5, 4, 9),
        utc(2026, 5, 4, 9, 30),
        utc(2026, 5, 4, 17),
        utc(2026, 5, 4, 17, 30),
    ]


def test_cron_ranges() -> None:
    day = utc(2026, 5, 4)
    assert fires("cron(0 9-11 * * ? *)", day, day + 86_400) == [
        utc(2026, 5, 4, 9),
        utc(2026, 5, 4, 10),
        utc(2026, 5, 4, 11),
    ]


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        ("0/15", [0, 15, 30, 45]),
        ("*/10", [0, 10, 20, 30, 40, 50]),
        ("5/20", [5, 25, 45]),
        ("10-30/10", [10, 20, 30]),
    ],
)
def test_cron_minute_steps(minutes: str, expected: list[int]) -> None:
    hour = utc(2026, 5, 4, 9)
    got = fires(f"cron({minutes} 9 * * ? *)", hour - 1, hour + 3_599)
    assert got == [hour + 60 * m for m in expected]


def test_cron_steps_in_hours_and_days() -> None:
    day = utc(2026, 5, 4)
    assert fires("cron(0 8-18/5 * * ? *)", day, day + 86_400) == [
        utc(2026, 5, 4, 8),
        utc(2026, 5, 4, 13),
        utc(2026, 5, 4, 18),
    ]
    assert fires("cron(0 0 */10 * ? *)", utc(2026, 4, 30), utc(2026, 5, 31, 1)) == [
        utc(2026, 5, 1),
        utc(2026, 5, 11),
        utc(2026, 5, 21),
        utc(2026, 5, 31),
    ]


def test_cron_day_31_skips_shorter_months() -> None:
    assert fires("cron(0 0 31 * ? *)", utc(2026, 3, 1), utc(2026, 8, 1)) == [
        utc(2026, 3, 31),
        utc(2026, 5, 31),
        utc(2026, 7, 31),
    ]


def test_cron_l_in_day_of_month_is_the_last_day_leap_years_included() -> None:
    assert fires("cron(0 0 L * ? *)", utc(2028, 1, 1), utc(2028, 4, 1)) == [
        utc(2028, 1, 31),
        utc(2028, 2, 29),
        utc(2028, 3, 31),
    ]


def test_cron_nl_in_day_of_week_is_the_last_such_weekday() -> None:
    # EventBridge's own example: 6L = the last Friday of each month.
    assert fires("cron(15 10 ? * 6L *)", utc(2026, 1, 1), utc(2026, 4, 1)) == [
        utc(2026, 1, 30, 10, 15),
        utc(2026, 2, 27, 10, 15),
        utc(2026, 3, 27, 10, 15),
    ]


def test_cron_l_alone_in_day_of_week_is_saturday() -> None:
    every_saturday = ScheduleExpression.parse("cron(0 0 ? * L *)")
    assert every_saturday.next_after(utc(2026, 5, 4)) == utc(2026, 5, 9)  # 2026-05-09 a Sat
    assert every_saturday.next_after(utc(2026, 5, 9)) == utc(2026, 5, 16)


@pytest.mark.parametrize(
    ("day_of_month", "month", "expected_day"),
    [
        ("15W", 4, 15),  # Wed the 15th: itself
        ("15W", 2, 16),  # Sun the 15th: Monday after
        ("15W", 8, 14),  # Sat the 15th: Friday before
        ("1W", 8, 3),  # Sat the 1st: Monday the 3rd, never the month before
        ("1W", 3, 2),  # Sun the 1st: Monday the 2nd
        ("31W", 5, 29),  # Sun the 31st, the last day: Friday the 29th, never the month after
        ("31W", 1, 30),  # Sat the 31st: Friday the 30th
        ("28W", 2, 27),  # Sat the 28th, February's last day: Friday the 27th
    ],
)
def test_cron_w_is_the_nearest_weekday_within_the_month(
    day_of_month: str, month: int, expected_day: int
) -> None:
    start = utc(2026, month, 1) - 1
    end = (datetime(2026, month, 1, tzinfo=UTC) + timedelta(days=31)).replace(day=1).timestamp()
    assert fires(f"cron(0 9 {day_of_month} * ? *)", start, end) == [
        utc(2026, month, expected_day, 9)
    ]


def test_cron_w_for_a_day_the_month_lacks_does_not_fire() -> None:
    assert fires("cron(0 9 31W * ? *)", utc(2026, 4, 1), utc(2026, 5, 1)) == []  # April: 30


def test_cron_hash_is_the_nth_weekday_of_the_month() -> None:
    first_monday = [utc(2026, 1, 5, 9), utc(2026, 2, 2, 9), utc(2026, 3, 2, 9)]
    assert fires("cron(0 9 ? * 2#1 *)", utc(2026, 1, 1), utc(2026, 4, 1)) == first_monday
    assert fires("cron(0 9 ? * MON#1 *)", utc(2026, 1, 1), utc(2026, 4, 1)) == first_monday
    # A fifth Friday only in the months that have one: Jan (30th) and May (29th) by June.
    assert fires("cron(0 9 ? * 6#5 *)", utc(2026, 1, 1), utc(2026, 6, 1)) == [
        utc(2026, 1, 30, 9),
        utc(2026, 5, 29, 9),
    ]


def test_cron_day_of_week_counts_sunday_as_1() -> None:
    sundays = ScheduleExpression.parse("cron(0 0 ? * 1 *)")
    assert sundays.next_after(utc(2026, 5, 4)) == utc(2026, 5, 10)  # Mon -> next Sunday
    saturdays = ScheduleExpression.parse("cron(0 0 ? * 7 *)")
    assert saturdays.next_after(utc(2026, 5, 4)) == utc(2026, 5, 9)


def test_cron_month_and_day_names_case_insensitive() -> None:
    weekdays_in_july = fires("cron(0 12 ? jul MON-FRI *)", utc(2026, 7, 1), utc(2026, 7, 6))
    assert weekdays_in_july == [utc(2026, 7, d, 12) for d in (1, 2, 3)]  # Wed-Fri, not the w/e
    assert fires("cron(0 0 1 JAN,JUL ? *)", utc(2026, 1, 1) - 1, utc(2026, 12, 31)) == [
        utc(2026, 1, 1),
        utc(2026, 7, 1),
    ]
    assert fires("cron(0 0 1 MAR/4 ? *)", utc(2026, 1, 1), utc(2026, 12, 31)) == [
        utc(2026, 3, 1),
        utc(2026, 7, 1),
        utc(2026, 11, 1),
    ]
    assert fires("cron(0 0 ? * sat,SUN *)", utc(2026, 5, 4), utc(2026, 5, 11)) == [
        utc(2026, 5, 9),
        utc(2026, 5, 10),
    ]


def test_cron_year_range_fires_in_its_years_only() -> None:
    new_year = ScheduleExpression.parse("cron(0 0 1 1 ? 2027-2029)")
    assert new_year.next_after(utc(2026, 6, 1)) == utc(2027, 1, 1)
    assert new_year.next_after(utc(2027, 1, 1)) == utc(2028, 1, 1)
    assert new_year.next_after(utc(2028, 1, 1)) == utc(2029, 1, 1)
    assert new_year.next_after(utc(2029, 1, 1)) is None  # the range has ended
    listed = ScheduleExpression.parse("cron(0 0 1 1 ? 2030,2032)")
    assert listed.next_after(utc(2030, 1, 1)) == utc(2032, 1, 1)


def test_cron_year_range_that_ended_has_no_next_fire() -> None:
    ended = ScheduleExpression.parse("cron(15 10 ? * 6L 2019-2022)")
    assert ended.next_after(utc(2026, 1, 1)) is None
    assert ended.next_after(utc(2019, 1, 1)) == utc(2019, 1, 25, 10, 15)
    assert ended.latest_at_or_before(utc(2023, 1, 10)) == utc(2022, 12, 30, 10, 15)
    assert ended.latest_at_or_before(utc(2026, 1, 1)) is None  # more than 400 days back


def test_cron_every_year_ends_after_2199() -> None:
    daily = ScheduleExpression.parse("cron(0 0 * * ? *)")
    assert daily.next_after(utc(2199, 12, 30, 12)) == utc(2199, 12, 31)
    assert daily.next_after(utc(2199, 12, 31)) is None


def test_cron_february_29th_is_found_years_ahead() -> None:
    leap = ScheduleExpression.parse("cron(0 0 29 2 ? *)")
    assert leap.next_after(utc(2026, 6, 1)) == utc(2028, 2, 29)
    assert leap.next_after(utc(2096, 3, 1)) == utc(2104, 2, 29)  # 2100 is not a leap year
    assert leap.latest_at_or_before(utc(2026, 6, 1)) is None  # 2024-02-29 is > 400 days back


# --- bounds of the window queries ---------------------------------------------------------


def test_fires_between_excludes_start_and_includes_end() -> None:
    five = ScheduleExpression.parse("rate(5 minutes)")
    assert five.fires_between(utc(2026, 5, 4, 10), utc(2026, 5, 4, 10, 10)) == [
        utc(2026, 5, 4, 10, 5),
        utc(2026, 5, 4, 10, 10),
    ]
    hourly = ScheduleExpression.parse("cron(0 * * * ? *)")
    assert hourly.fires_between(utc(2026, 5, 4, 10), utc(2026, 5, 4, 12)) == [
        utc(2026, 5, 4, 11),
        utc(2026, 5, 4, 12),
    ]
    assert hourly.fires_between(utc(2026, 5, 4, 12), utc(2026, 5, 4, 12)) == []
    assert hourly.fires_between(utc(2026, 5, 4, 12), utc(2026, 5, 4, 11)) == []


def test_fires_between_refuses_more_than_400_days() -> None:
    minutely = ScheduleExpression.parse("cron(* * * * ? *)")
    start = utc(2026, 1, 1)
    assert len(minutely.fires_between(start, start + MAX_SPAN_S)) == 400 * 1440
    with pytest.raises(ValueError, match="400 days"):
        minutely.fires_between(start, start + MAX_SPAN_S + 60)
    with pytest.raises(ValueError, match="400 days"):
        ScheduleExpression.parse("rate(1 minute)").fires_between(start, start + MAX_SPAN_S + 60)


def test_latest_at_or_before_for_cron() -> None:
    at_three = ScheduleExpression.parse("cron(0 3 * * ? *)")
    assert at_three.latest_at_or_before(utc(2026, 5, 4, 3)) == utc(2026, 5, 4, 3)
    assert at_three.latest_at_or_before(utc(2026, 5, 4, 2, 59)) == utc(2026, 5, 3, 3)
    yearly = ScheduleExpression.parse("cron(0 0 1 1 ? *)")
    assert yearly.latest_at_or_before(utc(2026, 6, 1)) == utc(2026, 1, 1)


def test_latest_at_or_before_looks_back_400_days_exactly() -> None:
    once = ScheduleExpression.parse("cron(0 0 1 1 ? 2026)")
    assert once.latest_at_or_before(utc(2026, 1, 1) + MAX_SPAN_S) == utc(2026, 1, 1)
    assert once.latest_at_or_before(utc(2026, 1, 1) + MAX_SPAN_S + 3_600) is None


def test_next_after_is_strictly_after() -> None:
    at_three = ScheduleExpression.parse("cron(0 3 * * ? *)")
    assert at_three.next_after(utc(2026, 5, 4, 3)) == utc(2026, 5, 5, 3)
    assert at_three.next_after(utc(2026, 5, 4, 3) - 0.001) == utc(2026, 5, 4, 3)


# --- time zones and daylight saving -------------------------------------------------------


def test_berlin_three_am_is_one_utc_in_summer_and_two_utc_in_winter() -> None:
    at_three = ScheduleExpression.parse("cron(0 3 * * ? *)", "Europe/Berlin")
    assert at_three.next_after(utc(2026, 7, 1)) == utc(2026, 7, 1, 1)  # CEST, UTC+2
    assert at_three.next_after(utc(2026, 1, 15)) == utc(2026, 1, 15, 2)  # CET, UTC+1


def test_berlin_spring_forward_skips_a_local_time_that_does_not_exist() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:30 never happens. EventBridge
    # Scheduler skips the invocation; the days around it fire as usual.
    got = fires("cron(30 2 * * ? *)", utc(2026, 3, 27, 12), utc(2026, 3, 30, 12), "Europe/Berlin")
    assert got == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 30, 0, 30)]
    half_hourly = fires(
        "cron(0/30 1-3 * * ? *)", utc(2026, 3, 28, 12), utc(2026, 3, 29, 12), "Europe/Berlin"
    )
    assert half_hourly == [
        utc(2026, 3, 29, 0),  # 01:00 CET
        utc(2026, 3, 29, 0, 30),  # 01:30 CET
        utc(2026, 3, 29, 1),  # 03:00 CEST (02:00 and 02:30 do not exist)
        utc(2026, 3, 29, 1, 30),  # 03:30 CEST
    ]
    berlin = ScheduleExpression.parse("cron(30 2 * * ? *)", "Europe/Berlin")
    assert berlin.next_after(utc(2026, 3, 28, 2)) == utc(2026, 3, 30, 0, 30)


def test_berlin_fall_back_fires_a_repeated_local_time_once_at_its_first_occurrence() -> None:
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice.
    got = fires("cron(30 2 * * ? *)", utc(2026, 10, 24, 12), utc(2026, 10, 26, 12), "Europe/Berlin")
    assert got == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]  # 02:30 CEST, then CET
    half_hourly = fires(
        "cron(0/30 1-3 * * ? *)", utc(2026, 10, 24, 12), utc(2026, 10, 25, 12), "Europe/Berlin"
    )
    assert half_hourly == [
        utc(2026, 10, 24, 23),  # 01:00 CEST
        utc(2026, 10, 24, 23, 30),  # 01:30 CEST
        utc(2026, 10, 25, 0),  # 02:00 CEST
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST; not again at 02:00 and 02:30 CET
        utc(2026, 10, 25, 2),  # 03:00 CET
        utc(2026, 10, 25, 2, 30),  # 03:30 CET
    ]
    berlin = ScheduleExpression.parse("cron(30 2 * * ? *)", "Europe/Berlin")
    assert berlin.latest_at_or_before(utc(2026, 10, 25, 1, 45)) == utc(2026, 10, 25, 0, 30)
    assert berlin.next_after(utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 26, 1, 30)


def test_new_york_spring_forward_and_fall_back() -> None:
    ny = "America/New_York"
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT; 02:30 is skipped that day.
    assert fires("cron(30 2 * * ? *)", utc(2026, 3, 7), utc(2026, 3, 10), ny) == [
        utc(2026, 3, 7, 7, 30),  # 02:30 EST
        utc(2026, 3, 9, 6, 30),  # 02:30 EDT
    ]
    # 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 fires once, as EDT.
    assert fires("cron(30 1 * * ? *)", utc(2026, 10, 31, 12), utc(2026, 11, 2, 12), ny) == [
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT, not again at 06:30Z (01:30 EST)
        utc(2026, 11, 2, 6, 30),  # 01:30 EST
    ]
    # 02:30 exists once on the fall-back day: it fires, as EST.
    assert fires("cron(30 2 * * ? *)", utc(2026, 11, 1), utc(2026, 11, 2), ny) == [
        utc(2026, 11, 1, 7, 30)
    ]


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
def test_every_existing_local_time_fires_exactly_once_for_a_year(tz: str) -> None:
    """The oracle: every half hour of 2026 in UTC, read as local time, first occurrence kept."""
    zone = ZoneInfo(tz)
    start, end = utc(2026, 1, 1), utc(2026, 12, 31)
    expected: dict[datetime, float] = {}
    for step in range(1, int(end - start) // 1800 + 1):
        instant = start + 1800 * step
        local = datetime.fromtimestamp(instant, zone).replace(tzinfo=None, fold=0)
        if local.minute in (0, 30):
            expected.setdefault(local, instant)
    got = fires("cron(0/30 * * * ? *)", start, end, tz)
    assert got == sorted(expected.values())
    assert len({datetime.fromtimestamp(t, zone).replace(tzinfo=None, fold=0) for t in got}) == len(
        got
    )


# --- malformed expressions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rate(1 minutes)", "the unit must be singular when the value is 1: rate(1 minute)"),
        ("rate(1 days)", "the unit must be singular when the value is 1: rate(1 day)"),
        ("rate(5 minute)", "the unit must be plural when the value is not 1: rate(5 minutes)"),
        ("rate(0 minutes)", "the value must be a positive whole number, not '0'"),
        ("rate(-5 minutes)", "the value must be a positive whole number, not '-5'"),
        ("rate(1.5 hours)", "the value must be a positive whole number, not '1.5'"),
        ("rate(5 weeks)", "unknown unit 'weeks': use minute(s), hour(s) or day(s)"),
        ("rate(30 seconds)", "unknown unit 'seconds'"),
        ("rate(5)", "rate takes a value and a unit: rate(5 minutes)"),
        ("every 5 minutes", "expected rate(value unit), e.g. rate(5 minutes), or cron("),
        ("", "expected rate(value unit)"),
        ("cron 0 3 * * ? *", "expected rate(value unit)"),
        ("cron(0 3 * * ?)", "cron takes 6 fields, got 5: cron(minutes hours day-of-month"),
        ("cron(0 3 * * ? * *)", "cron takes 6 fields, got 7"),
        ("cron(0 3 * * * *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 3 ? * ? *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 3 1 * MON *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(60 3 * * ? *)", "minutes value 60 is out of range: use 0-59"),
        ("cron(0 24 * * ? *)", "hours value 24 is out of range: use 0-23"),
        ("cron(0 3 32 * ? *)", "day-of-month value 32 is out of range: use 1-31"),
        ("cron(0 3 0 * ? *)", "day-of-month value 0 is out of range: use 1-31"),
        ("cron(0 3 * 13 ? *)", "month value 13 is out of range: use 1-12 or JAN-DEC"),
        ("cron(0 3 ? * 8 *)", "day-of-week value 8 is out of range: use 1-7 or SUN-SAT"),
        ("cron(0 3 ? * 0 *)", "day-of-week value 0 is out of range: use 1-7 or SUN-SAT"),
        ("cron(0 3 * * ? 1969)", "year value 1969 is out of range: use 1970-2199"),
        ("cron(0 3 * * ? 2200)", "year value 2200 is out of range: use 1970-2199"),
        ("cron(0 3 * FOO ? *)", "month has 'FOO': expected 1-12 or JAN-DEC"),
        ("cron(L 3 * * ? *)", "minutes has 'L': expected 0-59"),
        ("cron(0 3 1,,2 * ? *)", "day-of-month has an empty value"),
        ("cron(0 22-2 * * ? *)", "hours range '22-2' runs backwards: ranges do not wrap"),
        ("cron(0/0 3 * * ? *)", "minutes step '0/0' needs a positive whole number"),
        ("cron(0 3 ? * 1/2 *)", "day-of-week takes no steps ('1/2')"),
        ("cron(0 3 ? * 2#6 *)", "write one n#k with k 1-5"),
        ("cron(0 3 ? * 2#1,3#1 *)", "write one n#k with k 1-5"),
        ("cron(0 3 LW * ? *)", "day-of-month 'LW' is not supported: use L (last day) or nW"),
        ("cron(0 3 L-2 * ? *)", "day-of-month 'L-2' is not supported"),
    ],
)
def test_malformed_expressions_say_what_is_wrong_on_one_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        ScheduleExpression.parse(text)
    assert str(caught.value).startswith(f"schedule {text!r}: ")
    assert "\n" not in str(caught.value)


def test_the_singular_rule_message_in_full() -> None:
    with pytest.raises(ConfigError) as caught:
        ScheduleExpression.parse("rate(1 minutes)")
    assert str(caught.value) == (
        "schedule 'rate(1 minutes)': the unit must be singular when the value is 1: rate(1 minute)"
    )


@pytest.mark.parametrize("tz", ["Europe/Berln", "", "../etc/passwd", "/etc/localtime", "Europe"])
def test_unknown_time_zones_are_refused(tz: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"unknown time zone {tz!r}")):
        ScheduleExpression.parse("cron(0 3 * * ? *)", tz)
    with pytest.raises(ConfigError, match=re.escape(f"unknown time zone {tz!r}")):
        ScheduleExpression.parse("rate(5 minutes)", tz)  # checked even where it is ignored


def test_constructing_directly_validates_too() -> None:
    with pytest.raises(ConfigError, match="cron takes 6 fields"):
        ScheduleExpression("cron(0 3 * *)")
