"""When a Schedule trigger's cron fires: the ticks of a Kestra cron expression in a time zone, across daylight saving.

croniter matches the fields on naive local wall times (pure calendar arithmetic, it never sees a zone); this
module turns each matching wall time into instants by these rules:

1. A fixed-time cron (the hour field is not a wildcard: `30 2 * * *`, `0 9 * * 1-5`, `@daily`) fires once per
   matching wall time per day. A wall time in a spring-forward gap (it does not exist) fires at the first instant
   after the gap, the transition itself: `30 2 * * *` in Europe/Paris on 2024-03-31 fires at 03:00 CEST (01:00
   UTC), and `0 0 * * *` in America/Sao_Paulo on 2018-11-04, when midnight did not exist, at 01:00. Several
   matches in one gap (`0,30 2 * * *`) give one tick, as ticks are distinct instants. A wall time in an autumn
   overlap (it exists twice) fires at its first occurrence only (fold=0).
2. A cron whose hour field is a wildcard (`*`, `*/n`: `*/15 * * * *`, `@hourly`) follows elapsed time: wall
   times inside a gap do not exist and are skipped; wall times in an overlap fire at both occurrences (fold=0,
   then fold=1). So `*/15 * * * *` fires every 15 minutes of real time all year in any zone whose offsets are
   multiples of 15 minutes, and `0 * * * *` fires 23 times on a spring-forward day and 25 on an autumn one.
3. Ticks come out strictly increasing by instant, without duplicates. Walking wall times in order does not give
   instants in order across an overlap (02:45 fold=0 comes before 02:00 fold=1), so the second occurrences of
   an overlap are held back until the walk leaves the overlap; nothing assumes how long a shift may be.

These are Debian cron's rules (the healthchecks blog, "How Debian cron handles DST transitions", 2021). Kestra
skips a fixed-time job whose time falls in the gap (kestra-io/kestra#524); Prefect has run jobs twice after
the autumn change (PrefectHQ/prefect#7461) and Airflow has stalled a five-minute DAG through the repeated hour
(apache/airflow#4117). We do neither. A schedule without a time zone runs in UTC (`zone_of(None)`).

Tick values are aware datetimes in the zone with the right `fold`. Compare them by instant
(`tick.astimezone(timezone.utc)`): Python compares two datetimes that share a tzinfo by wall time, ignoring
fold. Syntax: 5 fields `minute hour day-of-month month day-of-week`, or with `with_seconds` (Kestra's
`withSeconds: true`) 6 with the second first; ranges, lists, steps, JAN-DEC, SUN-SAT, day-of-week 0-7 (0 and 7
are Sunday), croniter's `L`, `#` and `W`, and @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly.
When both day fields are restricted, either one matching is enough (Vixie cron, croniter's `day_or`).
"""

from __future__ import annotations

import re
import string
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice, product
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import croniter

# croniter gives up when no day matches within this many years of the last (`0 0 30 2 *` never fires); the
# longest real wait, February 29th across 2100, is 8 years, and a fifth Monday of February up to 40.
HORIZON_YEARS = 50

_Wall = tuple[int, int, int, int, int, int]  # a naive wall time's fields: building datetimes is the hot path
_ZERO = timedelta(0)
_DAY = timedelta(days=1)
_SECOND = timedelta(seconds=1)
_MICROSECOND = timedelta(microseconds=1)
_NICKNAMES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0"}
_NICKNAMES |= {"@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_RANGES = {"second": (0, 59), "minute": (0, 59), "hour": (0, 23), "day-of-month": (1, 31), "month": (1, 12)}
_RANGES["day-of-week"] = (0, 7)
_HINTS = {
    "day-of-month": "1-31, L (last day) or 15W (weekday nearest the 15th)",
    "month": "1-12 or JAN-DEC",
    "day-of-week": "0-7 (0 and 7 are Sunday) or SUN-SAT, L5 (last Friday) or 5#3 (third Friday)",
}
_ALLOWED = frozenset(string.ascii_letters + string.digits + "*,-/#? \t")
_EQUAL_RANGE = re.compile(r"([a-z]+|\d+)-([a-z]+|\d+)")


class CronError(ValueError):
    """A cron expression or time zone a user wrote is wrong; the message says what to change."""


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression; build it with `parse_cron` (a bad expression raises CronError).

    `croniter_expression` is what croniter matches wall times against (with `second_at_beginning` when
    `with_seconds`); the other derived fields are this module's plan for walking it.
    """

    expression: str  # as written
    with_seconds: bool = False
    fixed_hour: bool = field(init=False)  # the hour field is not a wildcard: DST rule 1 rather than 2
    croniter_expression: str = field(init=False, repr=False)  # what croniter matches, seconds first if any
    seconds: tuple[int, ...] = field(init=False, repr=False, compare=False)
    minutes: tuple[int, ...] = field(init=False, repr=False, compare=False)
    hours: tuple[int, ...] = field(init=False, repr=False, compare=False)
    day_expression: str = field(init=False, repr=False, compare=False)  # `0 0 dom month dow`: which days match
    every_day: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tokens = _tokens(self.expression, self.with_seconds)
        names = (("second",) if self.with_seconds else ()) + _FIELDS
        fields = [_field(self.expression, name, token) for name, token in zip(names, tokens, strict=True)]
        expanded = _expand(self.expression, " ".join(fields), self.with_seconds)
        minute, hour, dom, month, dow, *second = expanded
        values = {
            "seconds": (second[0] or tuple(range(60))) if second else (0,),
            "minutes": minute or tuple(range(60)),
            "hours": hour or tuple(range(24)),
            "fixed_hour": not fields[-4].startswith("*"),
            "croniter_expression": " ".join(fields),
            "day_expression": " ".join(["0", "0", *fields[-3:]]),
            "every_day": dom is month is dow is None,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)  # a frozen dataclass sets its derived fields once, here


def parse_cron(expression: str, with_seconds: bool = False) -> Cron:
    """The cron `expression` (6 fields, second first, when `with_seconds`); raises CronError."""
    return Cron(expression, with_seconds)


def zone_of(name: str | None) -> ZoneInfo:
    """The IANA time zone `name`; a schedule without one runs in UTC."""
    if name is None:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory such as 'Europe'
        raise CronError(f"unknown time zone {name!r}") from None


def ticks_after(cron: Cron, zone: ZoneInfo, after: datetime, *, inclusive: bool = False) -> Iterator[datetime]:
    """The ticks strictly after `after` (or at it, with `inclusive`), in instant order: a generator that ends only
    when the cron never fires again (`0 0 30 2 *`) or the calendar does (year 9999)."""
    return (tick for _, tick in _ticks(cron, zone, _utc(after), inclusive=inclusive))


def next_tick(cron: Cron, zone: ZoneInfo, after: datetime, *, inclusive: bool = False) -> datetime | None:
    """The first tick after `after`, or None when the cron never fires again (`0 0 30 2 *`)."""
    return next(ticks_after(cron, zone, after, inclusive=inclusive), None)


def previous_tick(cron: Cron, zone: ZoneInfo, before: datetime) -> datetime | None:
    """The last tick strictly before `before`, or None when there is none within HORIZON_YEARS."""
    end = _utc(before)
    anchor, window, jumped = end, timedelta(minutes=1), False
    # Ticks are found walking forward, so walk from ever further back (fourfold) until one turns up. When the last
    # minute has none, croniter's backward search says where to look; the walk still runs on to `end`, so the
    # answer holds even were croniter wrong.
    while window < timedelta(days=366 * HORIZON_YEARS):
        found = None
        for instant, tick in _ticks(cron, zone, max(anchor, datetime.min + window) - window):
            if instant >= end:
                break
            found = tick
        if found is not None:
            return found
        if jumped:
            window *= 4
        else:
            anchor, jumped = _after_last_wall(cron, zone, end), True
    return None


def ticks_between(cron: Cron, zone: ZoneInfo, start: datetime, end: datetime) -> Iterator[datetime]:
    """The ticks from `start` to `end`, both included, in instant order."""
    last = _utc(end)
    for instant, tick in _ticks(cron, zone, _utc(start), inclusive=True):
        if instant > last:
            return
        yield tick


def count_between(cron: Cron, zone: ZoneInfo, start: datetime, end: datetime) -> int:
    """How many ticks `ticks_between` gives, by arithmetic on each day clear of offset changes.

    That assumes no zone changes its offset twice within one day: in tzdata no two changes are closer than
    3 days anywhere since 1900. Days with a change are placed wall time by wall time, as `_ticks` does.
    """
    first, last = _utc(start), _utc(end) + _MICROSECOND  # the instants in [first, last)
    if last <= first:
        return 0
    count, placed = 0, set[datetime]()  # placed: instants from days with a change, where a gap's tick may repeat one
    try:
        since = (first - 2 * _DAY).replace(hour=0, minute=0, second=0, microsecond=0)
        for day in _days(cron, since):
            if day > last + 2 * _DAY:  # any offset is less than a day, so later walls fire after `last`
                break
            # A fold=0 offset changes where a gap or overlap ends, so these moments catch one ending in the day
            # or at its midnight (a gap's tick is then also this day's 00:00, to be counted once), and fold=1 at
            # the next midnight catches one running over it. (A constructor: datetime.replace is 5 times slower.)
            following = day + _DAY
            offsets = {zone.utcoffset(moment) for moment in (day - _MICROSECOND, day, following)}
            offsets.add(zone.utcoffset(datetime(following.year, following.month, following.day, fold=1)))
            if len(offsets) == 1:
                offset = offsets.pop() or _ZERO
                count += _walls_before(cron, day, last + offset) - _walls_before(cron, day, first + offset)
                continue
            for hms in product(cron.hours, cron.minutes, cron.seconds):
                places = _place(cron, zone, (day.year, day.month, day.day, *hms))
                placed.update(instant for instant, _ in places if first <= instant < last)
    except OverflowError:  # the calendar ends in year 9999
        pass
    return count + len(placed)


# --- parsing -------------------------------------------------------------------------------------------------


def _tokens(expression: str, with_seconds: bool) -> list[str]:
    """The fields of `expression`, nicknames spelt out; checks the characters and the number of fields."""
    if not isinstance(expression, str):
        raise CronError(f"a cron expression is text, not {type(expression).__name__}")
    text = expression.strip(" \t\r\n")
    if not text:
        raise CronError("the cron expression is empty; write 5 fields, e.g. '0 9 * * *'")
    if text.startswith("@"):
        if text.lower() not in _NICKNAMES:
            raise CronError(f"{expression!r} is not a cron nickname; use one of {', '.join(_NICKNAMES)}")
        return (["0"] if with_seconds else []) + _NICKNAMES[text.lower()].split()
    bad = next((char for char in text if char not in _ALLOWED), None)
    if bad is not None:
        raise CronError(f"{expression!r}: the character {bad!r} has no meaning in a cron expression")
    tokens = text.split()
    if len(tokens) != (6 if with_seconds else 5):
        has = f"{expression!r} has {len(tokens)} field{'s' * (len(tokens) != 1)}"
        if with_seconds:
            raise CronError(f"{has}; with withSeconds: true a cron needs 6 (second {' '.join(_FIELDS)})")
        raise CronError(f"{has}; a cron needs 5 ({' '.join(_FIELDS)}), or 6 with withSeconds: true")
    return tokens


def _field(expression: str, name: str, token: str) -> str:
    """`token` with its numbers range-checked and croniter's quirks removed; croniter then judges the rest."""
    low, high = _RANGES[name]
    elements = []
    for element in token.lower().split(","):
        base, slash, step = element.partition("/")
        if slash and step and not step.strip("0"):
            raise CronError(f"{expression!r}: the {name} step /0 never advances; a step is 1 or more")
        equal = _EQUAL_RANGE.fullmatch(base)
        if equal and equal[1].lstrip("0") == equal[2].lstrip("0"):  # `05-5` too; names have no zeros to lose
            base = equal[1]  # croniter reads `5-5` as every minute and `JAN-JAN` as every month
        core = base
        if name in ("day-of-month", "day-of-week"):
            core, _, nth = base.partition("#")
            core = core.strip("lw")  # L (last) and W (weekday) decorate a number
            if nth.isdigit() and not _within(nth, 1, 5):
                raise CronError(f"{expression!r}: day-of-week #{nth} is out of range #1-#5")
        for number in core.split("-"):
            if number.isdigit() and not _within(number, low, high):
                raise CronError(f"{expression!r}: {name} {number} is out of range {low}-{high}")
        elements.append(base + slash + step)
    normalised = ",".join(elements)
    # H and R (hashed, random) are Jenkins syntax that croniter accepts but Kestra does not.
    if normalised[0] in "hr" or not _croniter_accepts(name, normalised):
        hint = _HINTS.get(name, f"{low}-{high}")
        raise CronError(f"{expression!r}: the {name} field {token!r} is not valid; use {hint}, a-b, a,b or */n")
    return normalised


def _within(number: str, low: int, high: int) -> bool:
    digits = number.lstrip("0") or "0"
    return len(digits) < 5 and low <= int(digits) <= high  # int() refuses over 4300 digits; none is in range


def _croniter_accepts(name: str, token: str) -> bool:
    """Whether croniter takes `token` in field `name` of a cron that is `*` elsewhere: its verdict names a field."""
    names = ("second", *_FIELDS) if name == "second" else _FIELDS
    probe = " ".join(token if other == name else "*" for other in names)
    try:
        croniter.croniter.expand(probe, second_at_beginning=name == "second")
    except Exception:  # croniter is third-party: whatever it raises on a user's text means "not a cron"
        return False
    return True


def _expand(expression: str, normalised: str, with_seconds: bool) -> list[tuple[int, ...] | None]:
    """Each field's numbers in croniter's order (minute hour dom month dow second), None for `*`.

    Only the time fields' numbers are used; the day fields may also hold `l` or `2#3`, which croniter matches.
    """
    try:
        expanded, _ = croniter.croniter.expand(normalised, second_at_beginning=with_seconds)
    except Exception:  # each field passed alone, so the fields disagree with each other
        raise CronError(f"{expression!r} is not a valid cron expression") from None
    return [None if values == ["*"] else tuple(sorted(v for v in values if isinstance(v, int))) for values in expanded]


# --- ticks ---------------------------------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    """`moment` as a naive UTC datetime: instants compare exactly, whatever zone they came in."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; ticks are computed from aware datetimes")
    try:
        return moment.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:  # an instant beyond the calendar, before year 1 or after 9999
        return datetime.min if moment.year == 1 else datetime.max


def _ticks(
    cron: Cron, zone: ZoneInfo, bound: datetime, *, inclusive: bool = False
) -> Iterator[tuple[datetime, datetime]]:
    """(instant as naive UTC, tick) for the ticks after the naive UTC `bound` (or at it), by the DST rules."""
    try:
        last = bound - _MICROSECOND if inclusive else bound  # the instant the next tick must pass
        local = last.replace(tzinfo=UTC).astimezone(zone)
        start = local.replace(tzinfo=None, fold=0)
        if local.fold == 0:
            # `last` is in the first pass of an overlap: wall times back to its start come again after it.
            overlap = (zone.utcoffset(start) or _ZERO) - (zone.utcoffset(start.replace(fold=1)) or _ZERO)
            start -= max(overlap, _ZERO)
        pending: deque[tuple[datetime, datetime]] = deque()  # second occurrences in an overlap (rule 3)
        for parts in _walls(cron, start):
            places = _place(cron, zone, parts)
            if not places:
                continue
            instant, tick = places[0]
            while pending and pending[0][0] < instant:
                held = pending.popleft()
                if held[0] > last:
                    last = held[0]
                    yield held
            if instant > last:  # past `bound`, and not a second match in the same gap
                last = instant
                yield instant, tick
            pending.extend(places[1:])
        yield from (held for held in pending if held[0] > last)
    except OverflowError:  # the calendar ends in year 9999, and so do the ticks
        return


def _place(cron: Cron, zone: ZoneInfo, parts: _Wall) -> tuple[tuple[datetime, datetime], ...]:
    """The (instant as naive UTC, tick) at which a matching wall time fires: none, one or two."""
    wall = datetime(*parts)
    # `or _ZERO` only tells mypy what ZoneInfo guarantees: an offset, never None.
    before, after = zone.utcoffset(wall) or _ZERO, zone.utcoffset(datetime(*parts, fold=1)) or _ZERO
    if before == after:
        return ((wall - before, datetime(*parts, 0, zone)),)
    if before > after:  # an overlap: the wall time happens twice
        first = (wall - before, datetime(*parts, 0, zone))
        return (first,) if cron.fixed_hour else (first, (wall - after, datetime(*parts, 0, zone, fold=1)))
    if cron.fixed_hour:  # a gap: fire at the transition, which lies between the wall time's two readings
        instant = _transition(zone, wall - after, wall - before)
        return ((instant, instant.replace(tzinfo=UTC).astimezone(zone)),)
    return ()


def _after_last_wall(cron: Cron, zone: ZoneInfo, end: datetime) -> datetime:
    """Just after the ticks of the last wall time before `end`'s that the cron names; both naive UTC."""
    try:
        local = end.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
        wall = croniter.croniter(cron.croniter_expression, local, second_at_beginning=cron.with_seconds).get_prev(
            datetime
        )
    except (ValueError, OverflowError):  # none within HORIZON_YEARS, or the calendar's start
        return end
    offsets = (zone.utcoffset(wall) or _ZERO, zone.utcoffset(wall.replace(fold=1)) or _ZERO)
    return min(end, wall - min(offsets) + _SECOND)  # a gap's tick, the transition, also comes before this


def _walls(cron: Cron, start: datetime) -> Iterator[_Wall]:
    """The wall times from `start` on that match the cron, in order, as (year, month, day, hour, minute, second)."""
    first = start.replace(hour=0, minute=0, second=0, microsecond=0)
    for day in _days(cron, first):
        date = (day.year, day.month, day.day)
        times: Iterator[tuple[int, int, int]] = product(cron.hours, cron.minutes, cron.seconds)
        if day == first:  # skip the times before `start`; islice does it in C
            times = islice(times, _walls_before(cron, first, start), None)
        for hms in times:
            yield date + hms


def _walls_before(cron: Cron, day: datetime, moment: datetime) -> int:
    """How many of the cron's wall times on `day` come strictly before the naive `moment`."""
    if moment <= day or moment >= day + _DAY:
        return 0 if moment <= day else len(cron.hours) * len(cron.minutes) * len(cron.seconds)
    hour, minute, second = moment.hour, moment.minute, moment.second + (moment.microsecond > 0)
    count = bisect_left(cron.hours, hour) * len(cron.minutes) * len(cron.seconds)
    if hour in cron.hours:
        count += bisect_left(cron.minutes, minute) * len(cron.seconds)
        if minute in cron.minutes:
            count += bisect_left(cron.seconds, second)
    return count


def _days(cron: Cron, first: datetime) -> Iterator[datetime]:
    """The midnights, from `first` on, of the days whose date matches the cron."""
    if cron.every_day:
        day = first
        while True:
            yield day
            day += _DAY
    finder = croniter.croniter(
        cron.day_expression, first - timedelta(minutes=1), ret_type=datetime, max_years_between_matches=HORIZON_YEARS
    )
    while True:
        try:
            day = finder.get_next()
        except ValueError:  # CroniterBadDateError: no day matches within HORIZON_YEARS
            return
        yield day


def _transition(zone: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """The instant in (low, high] where `zone` changes offset, bisected to the second (tzdata's resolution)."""

    def offset(seconds: int) -> timedelta | None:
        return zone.fromutc((low + seconds * _SECOND).replace(tzinfo=zone)).utcoffset()

    before, lo, hi = offset(0), 0, int((high - low).total_seconds())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if offset(mid) == before else (lo, mid)
    return low + hi * _SECOND


def tick_text(moment: datetime | None) -> str | None:
    """A tick as a trigger's `date`, `next` and `previous` say it: ISO 8601 with the zone's offset, `Z` in UTC."""
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z") if moment.utcoffset() == _ZERO else moment.isoformat()
