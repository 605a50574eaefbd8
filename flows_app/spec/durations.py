"""Durations as users write them: ISO-8601 (`PT15M`, `P1DT2H`, `PT0.5S`) or Kestra's short form (`10M`, `30s`)."""
from __future__ import annotations

import re
from datetime import timedelta

_ISO = re.compile(
    r"^P(?!$)(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
_SHORT = re.compile(r"^(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d|w)$", re.IGNORECASE)
_SHORT_UNITS = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class DurationError(ValueError):
    pass


def parse_duration(value: object) -> timedelta:
    """Parse a duration; raise DurationError("'PT15X' is not a duration") otherwise."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DurationError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):  # a bare number is seconds
        return timedelta(seconds=value)
    text = value.strip()
    match = _ISO.match(text)
    if match:
        parts = {k: float(v) for k, v in match.groupdict().items() if v}
        return timedelta(**parts)
    match = _SHORT.match(text)
    if match:
        return timedelta(**{_SHORT_UNITS[match["unit"].lower()]: float(match["n"])})
    raise DurationError(f"'{value}' is not a duration")


def format_duration(delta: timedelta) -> str:
    """ISO-8601, as Kestra prints it: PT1H30M, PT0.25S."""
    total = delta.total_seconds()
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "PT"
    if hours:
        text += f"{int(hours)}H"
    if minutes:
        text += f"{int(minutes)}M"
    if seconds or text == "PT":
        text += f"{seconds:g}S"
    return text
