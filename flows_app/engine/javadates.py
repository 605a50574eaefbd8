"""Dates the way Kestra's Pebble filters see them: Java DateTimeFormatter patterns, zones and ChronoUnits."""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Kestra formats in the JVM's default zone; a Tern server is UTC, like Kestra's docker image.
DEFAULT_ZONE: tzinfo = ZoneInfo("UTC")

# Kestra's named formats (AbstractDate.FORMATTERS); the localized styles follow Java's English (US) ones.
NAMED_FORMATS = {
    "iso": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    "iso_sec": "yyyy-MM-dd'T'HH:mm:ssXXX",
    "sql": "yyyy-MM-dd HH:mm:ss.SSSSSS",
    "sql_seq": "yyyy-MM-dd HH:mm:ss",
    "iso_date": "yyyy-MM-ddXXX",
    "iso_local_date": "yyyy-MM-dd",
    "iso_ordinal_date": "yyyy-DDDXXX",
    "full": "EEEE, MMMM d, yyyy 'at' h:mm:ss a zzzz",
    "long": "MMMM d, yyyy 'at' h:mm:ss a z",
    "medium": "MMM d, yyyy, h:mm:ss a",
    "short": "M/d/yy, h:mm a",
}

# Java's ISO_* formatters print the fraction only when it is not zero, as isoformat() does.
ISO_FORMATS: dict[str, Callable[[datetime], str]] = {
    "iso_date_time": lambda d: d.isoformat() + _zone_suffix(d),
    "iso_zoned_date_time": lambda d: d.isoformat() + _zone_suffix(d),
    "iso_offset_date_time": lambda d: d.isoformat(),
    "iso_local_date_time": lambda d: d.replace(tzinfo=None).isoformat(),
    "iso_instant": lambda d: d.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z",
    "iso_time": lambda d: d.timetz().isoformat(),
    "iso_offset_time": lambda d: d.timetz().isoformat(),
    "iso_local_time": lambda d: d.time().isoformat(),
    "rfc_1123_date_time": lambda d: _rfc_1123(d),
}

# ChronoUnits that add a fixed duration, in microseconds (the rest add calendar fields).
EXACT_UNITS = {
    "NANOS": 0.001,
    "MICROS": 1,
    "MILLIS": 1_000,
    "SECONDS": 1_000_000,
    "MINUTES": 60_000_000,
    "HOURS": 3_600_000_000,
    "HALF_DAYS": 43_200_000_000,
}
CALENDAR_UNITS = {
    "DAYS": (0, 1),
    "WEEKS": (0, 7),
    "MONTHS": (1, 0),
    "YEARS": (12, 0),
    "DECADES": (120, 0),
    "CENTURIES": (1200, 0),
    "MILLENNIA": (12000, 0),
}

MONTHS = [calendar.month_name[i] for i in range(13)]
DAYS = [calendar.day_name[i] for i in range(7)]


def zone(name: str | None) -> tzinfo:
    """The zone Java's ZoneId.of(name) means: a region id, UTC/Z, or an offset such as +02:00."""
    if name is None:
        return DEFAULT_ZONE
    if name in ("Z", "UTC", "GMT"):
        return ZoneInfo("UTC")
    offset = re.fullmatch(r"(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?", name)
    if offset:
        sign = -1 if offset.group(1) == "-" else 1
        delta = timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3) or 0))
        return timezone(sign * delta)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def to_datetime(value: Any, tz: tzinfo, existing_format: str | None = None) -> datetime:
    """Read a date as Kestra's AbstractDate.convert does, returning an aware datetime in `tz`."""
    if isinstance(value, datetime):
        return value.astimezone(tz) if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime.combine(value, time(12), tz)  # Java puts a LocalDate at noon
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz)  # epoch seconds, as Java's Long input
    if not isinstance(value, str):
        raise ValueError(f"cannot read a date from {type(value).__name__} {value!r}")
    if existing_format is not None:
        parsed = datetime.strptime(value, _strptime_pattern(existing_format))
        return to_datetime(parsed, tz)
    return to_datetime(_parse_iso(value), tz)


def _parse_iso(text: str) -> datetime:
    """Parse ISO-8601 as ZonedDateTime.parse does, also taking a `[Region/City]` suffix."""
    match = re.fullmatch(r"(.*?)(?:\[([^\]]+)\])?", text.strip())
    assert match is not None  # the pattern matches any text
    stamp, region = match.groups()
    if re.fullmatch(r"-?\d+", stamp):
        return datetime.fromtimestamp(int(stamp), UTC)
    try:
        parsed = datetime.fromisoformat(stamp)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 date") from None
    if region:
        parsed = parsed.astimezone(zone(region)) if parsed.tzinfo else parsed.replace(tzinfo=zone(region))
    return parsed


def format_date(
    value: Any,
    format: str = "iso",
    timeZone: str | None = None,
    existingFormat: str | None = None,
    locale: str | None = None,
) -> str:
    """The `date` filter: format `value` with a Kestra named format or a Java pattern (English only)."""
    tz = zone(timeZone)
    return format_datetime(to_datetime(value, tz, existingFormat).astimezone(tz), format)


def format_datetime(moment: datetime, format: str) -> str:
    """Format an aware datetime with a named format or a Java DateTimeFormatter pattern."""
    if format in ISO_FORMATS:
        return ISO_FORMATS[format](moment)
    pattern = NAMED_FORMATS.get(format, format)
    return "".join(part if isinstance(part, str) else part(moment) for part in _compile(pattern))


def date_add(
    value: Any,
    amount: int,
    unit: str,
    format: str = "iso",
    timeZone: str | None = None,
    existingFormat: str | None = None,
    locale: str | None = None,
) -> str:
    """The `dateAdd` filter: add `amount` ChronoUnits then format, like ZonedDateTime.plus."""
    tz = zone(timeZone)
    moment = to_datetime(value, tz, existingFormat).astimezone(tz)
    return format_datetime(add(moment, int(amount), unit), format)


def add(moment: datetime, amount: int, unit: str) -> datetime:
    """Add ChronoUnits: time units are exact durations, date units move the wall clock (as Java does)."""
    unit = unit.upper()
    if unit in EXACT_UNITS:
        # Aware arithmetic in Python is wall-clock; go through UTC so an hour is an hour across DST.
        utc = moment.astimezone(UTC) + timedelta(microseconds=amount * EXACT_UNITS[unit])
        return utc.astimezone(moment.tzinfo)
    if unit not in CALENDAR_UNITS:
        raise ValueError(f"unknown unit {unit!r}; expected one of {', '.join([*EXACT_UNITS, *CALENDAR_UNITS])}")
    months, days = CALENDAR_UNITS[unit]
    moment = _add_months(moment, months * amount) + timedelta(days=days * amount)
    return moment.astimezone(UTC).astimezone(moment.tzinfo)  # resolve a wall time lost to DST


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return moment.replace(year=year, month=month + 1, day=min(moment.day, last_day))  # Java clamps to month end


def epoch(value: Any, per_second: int, timeZone: str | None = None, existingFormat: str | None = None) -> int:
    """The `timestamp*` filters: the instant counted in 1/per_second units since the epoch."""
    moment = to_datetime(value, zone(timeZone), existingFormat)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    whole = (delta.days * 86400 + delta.seconds) * per_second
    return whole + delta.microseconds * per_second // 1_000_000


def now(format: str = "iso", timeZone: str | None = None, **_: Any) -> str:
    """The `now()` function: the current instant, formatted (ISO with microseconds by default)."""
    tz = zone(timeZone)
    return format_datetime(datetime.now(tz), format)


def _rfc_1123(moment: datetime) -> str:
    offset = "GMT" if not moment.utcoffset() else _offset("x", 2, moment.utcoffset())  # as Java prints it
    return format_datetime(moment, "EEE, d MMM yyyy HH:mm:ss ") + offset


def _zone_suffix(moment: datetime) -> str:
    key = getattr(moment.tzinfo, "key", None)
    return f"[{key}]" if key else ""


# --- Java DateTimeFormatter patterns -------------------------------------------------------

_PATTERN_TOKEN = re.compile(r"'((?:[^']|'')*)'|([A-Za-z])\2*|(.)", re.S)

Part = str | Callable[[datetime], str]


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> tuple[Part, ...]:
    """Split a Java pattern into literal text and field printers."""
    parts: list[Part] = []
    for match in _PATTERN_TOKEN.finditer(pattern):
        quoted, letter, other = match.groups()
        if quoted is not None:
            parts.append(quoted.replace("''", "'") if quoted else "'")
        elif letter is not None:
            parts.append(_field(letter, len(match.group(0))))
        elif other in "[]":
            continue  # optional sections: we always print them
        elif other in "#{}":
            raise ValueError(f"pattern {pattern!r} uses the reserved character {other!r}")
        else:
            parts.append(other)
    return tuple(parts)


def _num(get: Callable[[datetime], int], width: int) -> Callable[[datetime], str]:
    return lambda d: str(get(d)).zfill(width)


def _text(full: Callable[[datetime], str], count: int) -> Callable[[datetime], str]:
    """Java text fields: 1-3 letters short, 4 full, 5 narrow."""
    if count == 4:
        return full
    if count == 5:
        return lambda d: full(d)[0]
    return lambda d: full(d)[:3]


def _field(letter: str, count: int) -> Callable[[datetime], str]:
    """The printer for `count` repetitions of pattern letter `letter`."""
    if letter in "yu":
        if count == 2:
            return lambda d: str(d.year % 100).zfill(2)
        return _num(lambda d: d.year, count)
    if letter in "ML":
        if count >= 3:
            return _text(lambda d: MONTHS[d.month], count)
        return _num(lambda d: d.month, count)
    if letter in "EecQq" or letter == "G":
        return _text_field(letter, count)
    simple = {
        "d": lambda d: d.day,
        "D": lambda d: d.timetuple().tm_yday,
        "H": lambda d: d.hour,
        "k": lambda d: d.hour or 24,
        "K": lambda d: d.hour % 12,
        "h": lambda d: d.hour % 12 or 12,
        "m": lambda d: d.minute,
        "s": lambda d: d.second,
        "n": lambda d: d.microsecond * 1000,
        "A": lambda d: ((d.hour * 60 + d.minute) * 60 + d.second) * 1000 + d.microsecond // 1000,
    }
    if letter in simple:
        return _num(simple[letter], count)
    if letter == "S":
        if count > 9:
            raise ValueError("too many pattern letters 'S'")
        return lambda d: f"{d.microsecond:06d}000"[:count]
    if letter == "a":
        return lambda d: "AM" if d.hour < 12 else "PM"
    if letter in "XxZO":
        return lambda d: _offset(letter, count, d.utcoffset())
    if letter == "z":
        return lambda d: (d.tzname() or "") if count < 4 else _zone_id(d)
    if letter == "V":
        return _zone_id
    raise ValueError(f"pattern letter {letter!r} is not supported")


def _text_field(letter: str, count: int) -> Callable[[datetime], str]:
    if letter == "G":
        return lambda d: "AD" if count < 4 else "Anno Domini"
    if letter in "Qq":
        if count <= 2:
            return _num(_quarter, count)
        names = ["1st", "2nd", "3rd", "4th"]
        return lambda d: f"Q{_quarter(d)}" if count == 3 else f"{names[_quarter(d) - 1]} quarter"
    if letter in "ec" and count <= 2:
        return _num(lambda d: (d.weekday() + 1) % 7 + 1, count)  # US week: Sunday is day 1
    return _text(lambda d: DAYS[d.weekday()], count)


def _quarter(moment: datetime) -> int:
    return (moment.month - 1) // 3 + 1


def _zone_id(moment: datetime) -> str:
    key = getattr(moment.tzinfo, "key", None)
    return key or _offset("X", 3, moment.utcoffset())


def _offset(letter: str, count: int, offset: timedelta | None) -> str:
    """Print a UTC offset the way Java's X, x, Z and O letters do."""
    seconds = int(offset.total_seconds()) if offset else 0
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if letter == "O":
        if not seconds:
            return "GMT"
        if count == 1:
            return f"GMT{sign}{hours}" + (f":{minutes:02d}" if minutes else "")
        return f"GMT{sign}{hours:02d}:{minutes:02d}"
    if letter == "Z":
        if count == 4:
            return "GMT" if not seconds else f"GMT{sign}{hours:02d}:{minutes:02d}"
        letter, count = ("X", 5) if count == 5 else ("x", 2)
    if letter == "X" and not seconds:
        return "Z"
    colon = ":" if count in (3, 5) else ""
    text = f"{sign}{hours:02d}"
    if count > 1 or minutes:
        text += f"{colon}{minutes:02d}"
    if count >= 4 and secs:
        text += f"{colon}{secs:02d}"
    return text


# Java pattern letters that strptime can read back, for the `existingFormat` argument.
_STRPTIME = {
    ("y", 4): "%Y",
    ("u", 4): "%Y",
    ("y", 2): "%y",
    ("u", 2): "%y",
    ("M", 1): "%m",
    ("M", 2): "%m",
    ("M", 3): "%b",
    ("M", 4): "%B",
    ("d", 1): "%d",
    ("d", 2): "%d",
    ("D", 3): "%j",
    ("H", 1): "%H",
    ("H", 2): "%H",
    ("h", 1): "%I",
    ("h", 2): "%I",
    ("m", 1): "%M",
    ("m", 2): "%M",
    ("s", 1): "%S",
    ("s", 2): "%S",
    ("a", 1): "%p",
    ("E", 3): "%a",
    ("E", 4): "%A",
    ("X", 1): "%z",
    ("X", 2): "%z",
    ("X", 3): "%z",
    ("x", 2): "%z",
    ("x", 3): "%z",
    ("Z", 1): "%z",
}


@functools.lru_cache(maxsize=64)
def _strptime_pattern(pattern: str) -> str:
    """Translate a Java parsing pattern into a strptime one, or say which letter has no equivalent."""
    out = []
    for match in _PATTERN_TOKEN.finditer(NAMED_FORMATS.get(pattern, pattern)):
        quoted, letter, other = match.groups()
        if quoted is not None:
            out.append((quoted.replace("''", "'") if quoted else "'").replace("%", "%%"))
        elif letter is not None:
            count = len(match.group(0))
            if letter == "S" and count <= 6:
                out.append("%f")
            elif (letter, count) in _STRPTIME:
                out.append(_STRPTIME[letter, count])
            else:
                raise ValueError(f"cannot parse dates with pattern letters {match.group(0)!r}")
        elif other not in "[]":
            out.append(other.replace("%", "%%"))
    return "".join(out)
