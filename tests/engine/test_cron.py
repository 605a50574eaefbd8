"""Schedule crons: Kestra's syntax parses, or fails with a message a user can act on, and the ticks follow the
daylight-saving rules of flows_app/engine/cron.py in five zones, checked at every offset change from 2000 to 2040."""

from __future__ import annotations

import functools
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from itertools import islice, pairwise, takewhile
from pathlib import Path

import croniter
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows_app.engine.cron import (
    Cron,
    CronError,
    count_between,
    next_tick,
    parse_cron,
    previous_tick,
    ticks_after,
    ticks_between,
    zone_of,
)

ZONE_NAMES = ("Europe/Paris", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "America/Sao_Paulo")
ZONES = {name: zone_of(name) for name in ZONE_NAMES}
PARIS = ZONES["Europe/Paris"]
FIRST, END = datetime(2000, 1, 1), datetime(2041, 1, 1)  # the walk covers 2000-01-01 to 2040-12-31, local
MINUTE, HOUR, DAY, MICROSECOND = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1), timedelta(microseconds=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def instants(ticks) -> list[datetime]:
    return [tick.astimezone(UTC) for tick in ticks]


def cron_error(expression: str, with_seconds: bool = False) -> str:
    with pytest.raises(CronError) as caught:
        parse_cron(expression, with_seconds)
    return str(caught.value)


@functools.cache
def transitions(name: str) -> tuple[tuple[datetime, timedelta, timedelta], ...]:
    """(instant, offset before, offset after) of each offset change in 2000-2040: step a day, bisect to the second."""
    zone = ZONES[name]

    def offset(moment: datetime) -> timedelta:
        return moment.astimezone(zone).utcoffset()

    found = []
    moment = utc(1999, 12, 31)
    while moment < utc(2041, 1, 2):
        later = moment + timedelta(days=1)
        if offset(moment) != offset(later):
            low, high = 0, 86400  # seconds after `moment`: the offset is the old one at low, the new one at high
            while high - low > 1:
                mid = (low + high) // 2
                low, high = (mid, high) if offset(moment + timedelta(seconds=mid)) == offset(moment) else (low, mid)
            change = moment + timedelta(seconds=high)
            found.append((change, offset(moment), offset(change)))
        moment = later
    return tuple(found)


def local_walls(change: datetime, before: timedelta, after: datetime) -> tuple[datetime, datetime]:
    """The naive wall times [start, end) that a change skips (a gap) or repeats (an overlap)."""
    naive = change.replace(tzinfo=None)
    return min(naive + before, naive + after), max(naive + before, naive + after)


def ticks_on(cron: Cron, zone, day: date) -> list[datetime]:
    """The ticks whose wall date is `day`."""
    midnight = datetime.combine(day, datetime.min.time(), UTC)
    return [tick for tick in ticks_between(cron, zone, midnight - DAY, midnight + 2 * DAY) if tick.date() == day]


def facts(ticks) -> list[tuple[datetime, datetime, int]]:
    """What a tick is: its instant, its wall time and its fold (== on ticks of one zone ignores the fold)."""
    return [(tick.astimezone(UTC), tick.replace(tzinfo=None), tick.fold) for tick in ticks]


# --- the module stays pure -----------------------------------------------------------------------------------


def test_it_imports_neither_django_nor_celery():
    code = (
        "import sys, flows_app.engine.cron; "
        "bad = [m for m in ('django', 'celery') if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2]
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- Kestra's syntax -----------------------------------------------------------------------------------------

MONDAY = utc(2024, 1, 1)  # a Monday, in a leap year


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/15 * * * *", MONDAY, "2024-01-01 00:15, 2024-01-01 00:30, 2024-01-01 00:45"),
        ("10-50/20 * * * *", MONDAY, "2024-01-01 00:10, 2024-01-01 00:30, 2024-01-01 00:50"),
        ("5/20 * * * *", MONDAY, "2024-01-01 00:05, 2024-01-01 00:25, 2024-01-01 00:45"),
        ("0,30 8-9 * * *", MONDAY, "2024-01-01 08:00, 2024-01-01 08:30, 2024-01-01 09:00"),
        ("0 9 * * 1-5", utc(2024, 1, 5, 10), "2024-01-08 09:00, 2024-01-09 09:00, 2024-01-10 09:00"),
        ("0 9 * * MON-FRI", utc(2024, 1, 5, 10), "2024-01-08 09:00, 2024-01-09 09:00, 2024-01-10 09:00"),
        ("0 9 * * sat,Sun", MONDAY, "2024-01-06 09:00, 2024-01-07 09:00, 2024-01-13 09:00"),
        ("0 0 1 JAN,jul *", MONDAY, "2024-07-01 00:00, 2025-01-01 00:00, 2025-07-01 00:00"),
        ("0 0 1 */4 *", MONDAY, "2024-05-01 00:00, 2024-09-01 00:00, 2025-01-01 00:00"),
        ("0 0 1,15 * *", MONDAY, "2024-01-15 00:00, 2024-02-01 00:00, 2024-02-15 00:00"),
        ("0 0 L * *", MONDAY, "2024-01-31 00:00, 2024-02-29 00:00, 2024-03-31 00:00"),
        ("0 0 * * 5#3", MONDAY, "2024-01-19 00:00, 2024-02-16 00:00, 2024-03-15 00:00"),
        ("0 0 * * L5", MONDAY, "2024-01-26 00:00, 2024-02-23 00:00, 2024-03-29 00:00"),
        ("0 12 15W * *", utc(2024, 6, 1), "2024-06-14 12:00, 2024-07-15 12:00, 2024-08-15 12:00"),
        # both day fields restricted: either matching is enough (the 13th, or a Friday)
        ("0 0 13 * 5", MONDAY, "2024-01-05 00:00, 2024-01-12 00:00, 2024-01-13 00:00"),
        # croniter alone reads an equal range as the whole field: every minute
        ("5-5 * * * *", MONDAY, "2024-01-01 00:05, 2024-01-01 01:05, 2024-01-01 02:05"),
        ("  0 0 29 2 *\n", MONDAY, "2024-02-29 00:00, 2028-02-29 00:00, 2032-02-29 00:00"),
        ("@yearly", MONDAY, "2025-01-01 00:00, 2026-01-01 00:00, 2027-01-01 00:00"),
        ("@annually", MONDAY, "2025-01-01 00:00, 2026-01-01 00:00, 2027-01-01 00:00"),
        ("@monthly", MONDAY, "2024-02-01 00:00, 2024-03-01 00:00, 2024-04-01 00:00"),
        ("@weekly", MONDAY, "2024-01-07 00:00, 2024-01-14 00:00, 2024-01-21 00:00"),
        ("@daily", MONDAY, "2024-01-02 00:00, 2024-01-03 00:00, 2024-01-04 00:00"),
        ("@MIDNIGHT", MONDAY, "2024-01-02 00:00, 2024-01-03 00:00, 2024-01-04 00:00"),
        ("@hourly", MONDAY, "2024-01-01 01:00, 2024-01-01 02:00, 2024-01-01 03:00"),
    ],
)
def test_it_reads_kestras_cron_syntax(expression, after, expected):
    ticks = islice(ticks_after(parse_cron(expression), zone_of(None), after), 3)
    assert ", ".join(tick.strftime("%Y-%m-%d %H:%M") for tick in ticks) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("*/20 * * * * *", "2024-01-01 00:00:20, 2024-01-01 00:00:40, 2024-01-01 00:01:00"),
        ("30 0 9 * * *", "2024-01-01 09:00:30, 2024-01-02 09:00:30, 2024-01-03 09:00:30"),
        ("0 0 9 * * MON", "2024-01-01 09:00:00, 2024-01-08 09:00:00, 2024-01-15 09:00:00"),
        ("@hourly", "2024-01-01 01:00:00, 2024-01-01 02:00:00, 2024-01-01 03:00:00"),
        ("@daily", "2024-01-02 00:00:00, 2024-01-03 00:00:00, 2024-01-04 00:00:00"),
    ],
)
def test_with_seconds_the_second_comes_first(expression, expected):
    ticks = islice(ticks_after(parse_cron(expression, with_seconds=True), zone_of(None), MONDAY), 3)
    assert ", ".join(tick.strftime("%Y-%m-%d %H:%M:%S") for tick in ticks) == expected


def test_with_seconds_every_ten_seconds_is_six_ticks_a_minute():
    cron, minute = parse_cron("*/10 * * * * *", with_seconds=True), utc(2024, 5, 5, 12, 7)
    ticks = list(ticks_between(cron, PARIS, minute, minute + timedelta(seconds=59)))
    assert [tick.second for tick in ticks] == [0, 10, 20, 30, 40, 50]
    assert count_between(cron, PARIS, minute, minute + 60 * MINUTE - MICROSECOND) == 360


@pytest.mark.parametrize("sunday", ["0", "7", "SUN", "sun", "7-7"])
def test_sunday_is_0_and_7(sunday):
    ticks = list(ticks_between(parse_cron(f"0 6 * * {sunday}"), zone_of(None), MONDAY, utc(2024, 12, 31)))
    assert len(ticks) == 52
    assert {tick.strftime("%A") for tick in ticks} == {"Sunday"}


def test_a_range_can_end_on_sunday_as_7():
    ticks = list(ticks_between(parse_cron("0 6 * * 5-7"), zone_of(None), MONDAY, utc(2024, 1, 14, 23)))
    assert [tick.strftime("%a %d") for tick in ticks] == ["Fri 05", "Sat 06", "Sun 07", "Fri 12", "Sat 13", "Sun 14"]


@pytest.mark.parametrize(
    ("expression", "with_seconds", "fixed"),
    [
        ("30 2 * * *", False, True),
        ("0 9 * * 1-5", False, True),
        ("0 0-23/2 * * *", False, True),  # the hours are written out: the rule is about how the field is written
        ("@daily", False, True),
        ("@weekly", False, True),
        ("*/15 * * * *", False, False),
        ("0 * * * *", False, False),
        ("0 */2 * * *", False, False),
        ("@hourly", False, False),
        ("*/10 * * * * *", True, False),
        ("0 30 9 * * *", True, True),
    ],
)
def test_a_cron_is_fixed_time_unless_its_hour_field_is_a_wildcard(expression, with_seconds, fixed):
    cron = parse_cron(expression, with_seconds)
    assert (cron.fixed_hour, cron.expression, cron.with_seconds) == (fixed, expression, with_seconds)


FIVE = "a cron needs 5 (minute hour day-of-month month day-of-week), or 6 with withSeconds: true"
SIX = "with withSeconds: true a cron needs 6 (second minute hour day-of-month month day-of-week)"


@pytest.mark.parametrize(
    ("expression", "with_seconds", "message"),
    [
        ("*/15 * * *", False, f"'*/15 * * *' has 4 fields; {FIVE}"),
        ("0", False, f"'0' has 1 field; {FIVE}"),
        ("*/10 * * * * *", False, f"'*/10 * * * * *' has 6 fields; {FIVE}"),
        ("* * * * *", True, f"'* * * * *' has 5 fields; {SIX}"),
        ("0 0 0 * * * 2024", True, f"'0 0 0 * * * 2024' has 7 fields; {SIX}"),
        ("61 * * * *", False, "'61 * * * *': minute 61 is out of range 0-59"),
        ("0 24 * * *", False, "'0 24 * * *': hour 24 is out of range 0-23"),
        ("0 0 0 * *", False, "'0 0 0 * *': day-of-month 0 is out of range 1-31"),
        ("0 0 32 * *", False, "'0 0 32 * *': day-of-month 32 is out of range 1-31"),
        ("0 0 * 0-3 *", False, "'0 0 * 0-3 *': month 0 is out of range 1-12"),
        ("0 0 * 13 *", False, "'0 0 * 13 *': month 13 is out of range 1-12"),
        ("0 0 * * 8", False, "'0 0 * * 8': day-of-week 8 is out of range 0-7"),
        ("0 0 * * 1#6", False, "'0 0 * * 1#6': day-of-week #6 is out of range #1-#5"),
        ("1-60 * * * *", False, "'1-60 * * * *': minute 60 is out of range 0-59"),
        ("60 * * * * *", True, "'60 * * * * *': second 60 is out of range 0-59"),
        ("*/0 * * * *", False, "'*/0 * * * *': the minute step /0 never advances; a step is 1 or more"),
        (
            "0 0 * FOO *",
            False,
            "'0 0 * FOO *': the month field 'FOO' is not valid; use 1-12 or JAN-DEC, a-b, a,b or */n",
        ),
        ("H * * * *", False, "'H * * * *': the minute field 'H' is not valid; use 0-59, a-b, a,b or */n"),
        ("R 0 * * *", False, "'R 0 * * *': the minute field 'R' is not valid; use 0-59, a-b, a,b or */n"),
        ("0 -1 * * *", False, "'0 -1 * * *': the hour field '-1' is not valid; use 0-23, a-b, a,b or */n"),
        (
            "0 0 L-2 * *",
            False,
            "'0 0 L-2 * *': the day-of-month field 'L-2' is not valid; use 1-31, L (last day) "
            "or 15W (weekday nearest the 15th), a-b, a,b or */n",
        ),
        (
            "0 0 * * 1,2#3",
            False,
            "'0 0 * * 1,2#3': the day-of-week field '1,2#3' is not valid; use 0-7 (0 and 7 "
            "are Sunday) or SUN-SAT, L5 (last Friday) or 5#3 (third Friday), a-b, a,b or */n",
        ),
        (
            "@reboot",
            False,
            "'@reboot' is not a cron nickname; use one of @yearly, @annually, @monthly, @weekly, "
            "@daily, @midnight, @hourly",
        ),
        ("0 9 * * 1–5", False, "'0 9 * * 1–5': the character '–' has no meaning in a cron expression"),
        ("0 9 * * 1\x00", False, "'0 9 * * 1\\x00': the character '\\x00' has no meaning in a cron expression"),
        ("", False, "the cron expression is empty; write 5 fields, e.g. '0 9 * * *'"),
        (" \t\n", True, "the cron expression is empty; write 5 fields, e.g. '0 9 * * *'"),
    ],
)
def test_a_bad_expression_says_what_to_change(expression, with_seconds, message):
    assert cron_error(expression, with_seconds) == message


def test_a_huge_number_is_out_of_range_not_a_crash():
    assert (
        cron_error("9" * 5000 + " * * * *") == f"{'9' * 5000 + ' * * * *'!r}: minute {'9' * 5000} is out of range 0-59"
    )
    assert cron_error("0 1-" + "1" * 5000 + " * * *").endswith(f"hour {'1' * 5000} is out of range 0-23")


CRON_TEXT = st.text(alphabet="0123456789*,-/#?LWlwHR @ \tJANFEBjanMONSUNsun", max_size=30)


@settings(max_examples=600)
@given(text=st.one_of(st.text(), CRON_TEXT), with_seconds=st.booleans())
def test_any_text_is_a_cron_or_a_cron_error(text, with_seconds):
    try:
        cron = parse_cron(text, with_seconds)
    except CronError as error:
        message = str(error)
        assert message and "Traceback" not in message and "Croniter" not in message
    else:
        assert isinstance(cron, Cron) and cron.expression == text
        # what parses also iterates: croniter accepted it, so it must match it too
        ticks = list(islice(ticks_after(cron, PARIS, utc(2024, 3, 30)), 3))
        assert instants(ticks) == sorted(set(instants(ticks)))


def test_a_zone_is_an_iana_name_and_none_is_utc():
    assert zone_of(None).key == "UTC"
    assert zone_of("Asia/Kolkata").utcoffset(datetime(2024, 1, 1)) == timedelta(hours=5, minutes=30)
    for name in ("Mars/Base", "", "Europe", "../etc/passwd", "utc "):
        with pytest.raises(CronError) as caught:
            zone_of(name)
        assert str(caught.value) == f"unknown time zone {name!r}"


# --- daylight saving: the documented examples --------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "expression", "after", "expected"),
    [
        # spring forward: a fixed time in the gap fires at the transition, once
        ("Europe/Paris", "30 2 * * *", utc(2024, 3, 30, 12), "2024-03-31 01:00Z, 2024-04-01 00:30Z"),
        ("Europe/Paris", "0,30 2 * * *", utc(2024, 3, 30, 12), "2024-03-31 01:00Z, 2024-04-01 00:00Z"),
        ("Europe/Paris", "0 2,3 * * *", utc(2024, 3, 30, 12), "2024-03-31 01:00Z, 2024-04-01 00:00Z"),
        ("America/New_York", "30 2 * * *", utc(2024, 3, 9, 12), "2024-03-10 07:00Z, 2024-03-11 06:30Z"),
        ("Australia/Sydney", "30 2 * * *", utc(2024, 10, 5), "2024-10-05 16:00Z, 2024-10-06 15:30Z"),
        ("America/Sao_Paulo", "0 0 * * *", utc(2018, 11, 3, 12), "2018-11-04 03:00Z, 2018-11-05 02:00Z"),
        # fall back: a fixed time in the overlap fires at its first occurrence only
        ("Europe/Paris", "30 2 * * *", utc(2024, 10, 26, 12), "2024-10-27 00:30Z, 2024-10-28 01:30Z"),
        ("America/New_York", "30 1 * * *", utc(2024, 11, 2, 12), "2024-11-03 05:30Z, 2024-11-04 06:30Z"),
        ("Australia/Sydney", "30 2 * * *", utc(2024, 4, 6), "2024-04-06 15:30Z, 2024-04-07 16:30Z"),
        ("America/Sao_Paulo", "30 23 * * *", utc(2018, 2, 17, 12), "2018-02-18 01:30Z, 2018-02-19 02:30Z"),
        # no daylight saving, a half-hour offset
        ("Asia/Kolkata", "0 9 * * *", utc(2024, 3, 30, 12), "2024-03-31 03:30Z, 2024-04-01 03:30Z"),
        # a wildcard hour follows real time: skips the gap, fires in both passes of the overlap
        ("Europe/Paris", "*/30 * * * *", utc(2024, 3, 31, 0, 15), "2024-03-31 00:30Z, 2024-03-31 01:00Z"),
        ("Europe/Paris", "*/30 * * * *", utc(2024, 10, 27, 0), "2024-10-27 00:30Z, 2024-10-27 01:00Z"),
        ("Europe/Paris", "45 * * * *", utc(2024, 10, 26, 23, 50), "2024-10-27 00:45Z, 2024-10-27 01:45Z"),
        # Nuuk's gap of 2024 ends at midnight: 23:00 moves to 00:00, which the cron names too
        ("America/Nuuk", "0 0,23 * * *", utc(2024, 3, 30, 12), "2024-03-31 01:00Z, 2024-04-01 00:00Z"),
        # Goose Bay's overlap of 1990 ran over midnight, 23:01 to 00:01
        ("America/Goose_Bay", "30 23 * * *", utc(1990, 10, 27, 12), "1990-10-28 02:30Z, 1990-10-29 03:30Z"),
        ("America/Goose_Bay", "0 0 * * *", utc(1990, 10, 27, 12), "1990-10-28 03:00Z, 1990-10-29 04:00Z"),
        ("America/Goose_Bay", "*/30 * * * *", utc(1990, 10, 28, 2, 45), "1990-10-28 03:00Z, 1990-10-28 03:30Z"),
    ],
)
def test_the_documented_examples(zone, expression, after, expected):
    cron, zone = parse_cron(expression), zone_of(zone)
    ticks = list(islice(ticks_after(cron, zone, after), 2))
    assert ", ".join(instant.strftime("%Y-%m-%d %H:%MZ") for instant in instants(ticks)) == expected
    # and the counting shortcut agrees with the walk around each of them
    around = (after - 2 * DAY, after + 3 * DAY)
    assert count_between(cron, zone, *around) == len(list(ticks_between(cron, zone, *around)))


def test_an_autumn_overlap_comes_out_in_instant_order_with_the_right_fold():
    ticks = list(ticks_between(parse_cron("*/15 * * * *"), PARIS, utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 1, 15)))
    assert [(tick.strftime("%H:%M"), tick.fold) for tick in ticks] == [
        ("02:30", 0),
        ("02:45", 0),
        ("02:00", 1),
        ("02:15", 1),
    ]
    assert all(tick.tzinfo is PARIS for tick in ticks)


def test_a_gap_tick_is_the_first_valid_wall_time():
    tick = next_tick(parse_cron("30 2 * * *"), PARIS, utc(2024, 3, 31))
    assert (tick.isoformat(), tick.fold, tick.tzinfo) == ("2024-03-31T03:00:00+02:00", 0, PARIS)
    assert next_tick(parse_cron("30 2 * * *"), PARIS, tick, inclusive=True) == tick
    assert next_tick(parse_cron("30 2 * * *"), PARIS, tick).isoformat() == "2024-04-01T02:30:00+02:00"
    assert previous_tick(parse_cron("30 2 * * *"), PARIS, tick + MICROSECOND) == tick


def test_after_may_be_given_in_any_zone_and_inside_an_overlap():
    cron = parse_cron("*/30 * * * *")
    second_pass = datetime(2024, 10, 27, 2, 10, fold=1, tzinfo=PARIS)  # 01:10 UTC
    assert str(next_tick(cron, PARIS, second_pass).astimezone(UTC)) == "2024-10-27 01:30:00+00:00"
    first_pass = datetime(2024, 10, 27, 2, 40, tzinfo=PARIS)  # 00:40 UTC: 02:00 and 02:30 come round again
    ticks = islice(ticks_after(cron, PARIS, first_pass), 3)
    assert [(t.strftime("%H:%M"), t.fold) for t in ticks] == [("02:00", 1), ("02:30", 1), ("03:00", 0)]
    in_new_york = datetime(2024, 10, 26, 20, 40, tzinfo=ZONES["America/New_York"])  # the same instant
    assert next_tick(cron, PARIS, in_new_york) == next_tick(cron, PARIS, first_pass)


def test_a_cron_that_never_fires_has_no_next_or_previous_tick():
    never = parse_cron("0 0 30 2 *")
    assert next_tick(never, PARIS, utc(2024, 1, 1)) is None
    assert previous_tick(never, PARIS, utc(2024, 1, 1)) is None
    assert list(ticks_after(never, PARIS, utc(2024, 1, 1))) == []
    assert count_between(never, PARIS, utc(2000, 1, 1), utc(2040, 1, 1)) == 0


def test_a_range_that_ends_before_it_starts_is_empty():
    quarter = parse_cron("*/15 * * * *")
    assert list(ticks_between(quarter, PARIS, utc(2024, 1, 2), utc(2024, 1, 1))) == []
    assert count_between(quarter, PARIS, utc(2024, 1, 2), utc(2024, 1, 1)) == 0
    assert count_between(quarter, PARIS, utc(2024, 1, 1), utc(2024, 1, 1)) == 1  # both ends are included


def test_february_29th_waits_eight_years_across_2100():
    leap = parse_cron("0 0 29 2 *")
    assert str(next_tick(leap, zone_of(None), utc(2096, 3, 1))) == "2104-02-29 00:00:00+00:00"
    assert str(previous_tick(leap, zone_of(None), utc(2104, 2, 1))) == "2096-02-29 00:00:00+00:00"


def test_the_calendar_ends_in_year_9999_without_an_error():
    end = datetime.max.replace(tzinfo=UTC)
    assert next_tick(parse_cron("*/15 * * * *"), PARIS, end) is None
    assert next_tick(parse_cron("0 0 1 1 *"), PARIS, utc(9999, 6, 1)) is None
    assert str(previous_tick(parse_cron("0 0 1 1 *"), zone_of(None), end)) == "9999-01-01 00:00:00+00:00"


def test_a_naive_datetime_is_refused():
    with pytest.raises(ValueError, match="has no time zone"):
        next_tick(parse_cron("@daily"), PARIS, datetime(2024, 1, 1))


# --- daylight saving: every offset change of 2000-2040 -----------------------------------------------------


def test_the_walk_sees_every_offset_change():
    counts = {name: len(transitions(name)) for name in ZONE_NAMES}
    assert counts["Asia/Kolkata"] == 0
    for name in ("Europe/Paris", "America/New_York", "Australia/Sydney"):
        assert counts[name] >= 80, counts  # two a year
    assert counts["America/Sao_Paulo"] >= 36, counts  # until Brazil dropped daylight saving in 2019
    for name in ZONE_NAMES:
        for _, before, after in transitions(name):
            assert abs(after - before) == HOUR  # the hour the counts below rely on


@pytest.mark.parametrize("name", ZONE_NAMES)
def test_a_fixed_time_in_a_gap_or_overlap_fires_once_that_day(name):
    zone = ZONES[name]
    for change, before, after in transitions(name):
        start, end = local_walls(change, before, after)
        middle = start + (end - start) / 2
        assert start.hour == middle.hour
        cron = parse_cron(f"{start.minute},{middle.minute} {middle.hour} * * *")  # both in the gap or overlap
        ticks = ticks_on(cron, zone, middle.date())
        if after > before:  # a gap: both wall times are skipped forward to the transition, one tick
            assert instants(ticks) == [change], (name, change)
            assert ticks[0].replace(tzinfo=None) == end  # the wall time just after the gap
        else:  # an overlap: the first pass of each, never the second
            expected = [start - before, middle - before]
            assert [t.replace(tzinfo=None) for t in instants(ticks)] == expected, (name, change)
            assert [tick.fold for tick in ticks] == [0, 0]


@pytest.mark.parametrize("name", ZONE_NAMES)
def test_an_hourly_cron_fires_23_times_in_spring_and_25_in_autumn(name):
    zone, hourly = ZONES[name], parse_cron("0 * * * *")
    for change, before, after in transitions(name):
        start, _ = local_walls(change, before, after)
        ticks = ticks_on(hourly, zone, start.date())
        assert len(ticks) == (23 if after > before else 25), (name, change)
        assert all(later - earlier == HOUR for earlier, later in pairwise(instants(ticks)))


@pytest.mark.parametrize("name", ZONE_NAMES)
def test_every_15_minutes_is_15_minutes_of_real_time_across_each_change(name):
    zone, quarter = ZONES[name], parse_cron("*/15 * * * *")
    for change, _, _ in transitions(name):
        ticks = instants(ticks_between(quarter, zone, change - 3 * HOUR, change + 3 * HOUR))
        assert len(ticks) == 25 and ticks[0] == change - 3 * HOUR, (name, change)
        assert {later - earlier for earlier, later in pairwise(ticks)} == {15 * MINUTE}, (name, change)
    # and all through 2018, a year in which each zone but Kolkata sprang forward and fell back
    year = instants(ticks_between(quarter, zone, utc(2018, 1, 1), utc(2019, 1, 1)))
    assert len(year) == 365 * 96 + 1 and {later - earlier for earlier, later in pairwise(year)} == {15 * MINUTE}


@pytest.mark.parametrize("name", ZONE_NAMES)
def test_2000_to_2040_counts_are_exact(name):
    zone = ZONES[name]
    start, end = FIRST.replace(tzinfo=zone), END.replace(tzinfo=zone)
    days = (END - FIRST).days
    for expression in ("0 0 * * *", "0 12 * * *", "30 2 * * *", "30 1 * * *", "30 23 * * *"):
        assert count_between(parse_cron(expression), zone, start, end - MICROSECOND) == days, (name, expression)
    # 02:00 and 02:30 both fall in a 02:00-03:00 gap and become one tick at the transition
    gaps_at_2 = [
        c for c, before, after in transitions(name) if after > before and local_walls(c, before, after)[0].hour == 2
    ]
    assert count_between(parse_cron("0,30 2 * * *"), zone, start, end - MICROSECOND) == 2 * days - len(gaps_at_2)
    elapsed = int((end.astimezone(UTC) - start.astimezone(UTC)).total_seconds())
    assert count_between(parse_cron("*/15 * * * *"), zone, start, end - MICROSECOND) == elapsed // 900
    assert count_between(parse_cron("0 * * * *"), zone, start, end - MICROSECOND) == elapsed // 3600
    assert elapsed % 3600 == 0


# --- properties of random crons, zones and moments -------------------------------------------------------

CRONS = st.builds(
    "{} {} {} {} {}".format,
    st.sampled_from(["0", "30", "*/15", "5,35", "10-20/5", "59", "*/7", "*"]),
    st.sampled_from(["*", "2", "1-3", "*/6", "0", "23", "9-17", "0,2", "*/2", "1"]),
    st.sampled_from(["*", "*", "*", "1", "15", "L", "1-7"]),
    st.sampled_from(["*", "*", "*", "3", "10,11", "*/2"]),
    st.sampled_from(["*", "*", "0", "1-5", "7", "SAT,SUN"]),
)


@st.composite
def zone_and_moment(draw) -> tuple[str, datetime]:
    """A zone, and a moment that is often within a day of one of its offset changes."""
    name = draw(st.sampled_from(ZONE_NAMES))
    if transitions(name) and draw(st.booleans()):
        change = draw(st.sampled_from(transitions(name)))[0]
        return name, change + draw(st.timedeltas(min_value=-DAY, max_value=DAY))
    return name, draw(st.datetimes(min_value=FIRST, max_value=END)).replace(tzinfo=UTC)


def oracle(cron: Cron, name: str, start: datetime, end: datetime) -> list[datetime]:
    """The instants of the ticks in [start, end] by the documented rules, from croniter's naive wall times, zoneinfo
    round trips and this file's own list of offset changes."""
    zone, found = ZONES[name], set()
    walls = croniter.croniter(
        cron.croniter_expression, start.astimezone(zone).replace(tzinfo=None) - 4 * HOUR, ret_type=datetime
    )
    while (wall := walls.get_next()) < end.astimezone(zone).replace(tzinfo=None) + 4 * HOUR:
        real = sorted(
            {
                at.astimezone(UTC)
                for fold in (0, 1)
                if (at := wall.replace(tzinfo=zone, fold=fold)).astimezone(UTC).astimezone(zone).replace(tzinfo=None)
                == wall
            }
        )
        if real:  # one instant, or two in an overlap, of which a fixed-time cron takes the first
            found.update(real[:1] if cron.fixed_hour else real)
        elif cron.fixed_hour:  # in a gap: the transition it falls in
            found.update(
                c
                for c, before, after in transitions(name)
                if local_walls(c, before, after)[0] <= wall < local_walls(c, before, after)[1]
            )
    return sorted(instant for instant in found if start <= instant <= end)


@settings(max_examples=100)
@given(expression=CRONS, where=zone_and_moment())
def test_ticks_increase_are_real_wall_times_and_match_the_cron(expression, where):
    (name, after), cron = where, parse_cron(expression)
    zone = ZONES[name]
    ticks = list(islice(ticks_after(cron, zone, after), 20))
    assert len(ticks) == 20
    moments = instants(ticks)
    assert after < moments[0] and all(earlier < later for earlier, later in pairwise(moments))
    for tick in ticks:
        back = tick.astimezone(UTC).astimezone(zone)
        assert tick.tzinfo is zone and (back.replace(tzinfo=None), back.fold) == (tick.replace(tzinfo=None), tick.fold)
        wall = tick.replace(tzinfo=None, fold=0)
        if tick.fold:
            assert not cron.fixed_hour  # only a wildcard hour fires in the second pass of an overlap
        if croniter.croniter.match(cron.croniter_expression, wall):
            continue
        # Not a time the cron names, so a fixed time moved out of a gap: the tick is the transition, and a time
        # the cron does name lies in the gap just before it.
        gap = tick.utcoffset() - (tick.astimezone(UTC) - MICROSECOND).astimezone(zone).utcoffset()
        assert cron.fixed_hour and gap > timedelta(0), (expression, name, tick)
        named = croniter.croniter(cron.croniter_expression, wall - gap - MICROSECOND, ret_type=datetime).get_next()
        assert wall - gap <= named < wall, (expression, name, tick)


@settings(max_examples=80)
@given(expression=CRONS, where=zone_and_moment(), hours=st.integers(min_value=0, max_value=8))
def test_ticks_between_are_the_oracles(expression, where, hours):
    (name, start), cron = where, parse_cron(expression)
    end = start + hours * HOUR
    assert instants(ticks_between(cron, ZONES[name], start, end)) == oracle(cron, name, start, end)


@settings(max_examples=100)
@given(expression=CRONS, where=zone_and_moment(), span=st.timedeltas(min_value=timedelta(0), max_value=3 * DAY))
def test_between_and_count_agree_with_after(expression, where, span):
    (name, start), cron = where, parse_cron(expression)
    zone, end = ZONES[name], start + span
    between = list(ticks_between(cron, zone, start, end))
    after = takewhile(lambda tick: tick.astimezone(UTC) <= end, ticks_after(cron, zone, start - MICROSECOND))
    assert facts(between) == facts(after)
    assert count_between(cron, zone, start, end) == len(between)


@settings(max_examples=100)
@given(expression=CRONS, where=zone_and_moment())
def test_previous_and_next_tick_agree(expression, where):
    (name, moment), cron = where, parse_cron(expression)
    zone = ZONES[name]
    following = next_tick(cron, zone, moment)
    preceding = previous_tick(cron, zone, following)
    assert preceding.astimezone(UTC) <= moment < following.astimezone(UTC)
    assert facts([next_tick(cron, zone, preceding)]) == facts([following])
    if preceding.astimezone(UTC) < moment:
        assert facts([previous_tick(cron, zone, moment)]) == facts([preceding])
    assert facts([next_tick(cron, zone, following, inclusive=True)]) == facts([following])
