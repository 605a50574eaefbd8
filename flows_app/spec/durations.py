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
        return _timedelta(value, seconds=value)
    text = value.strip()
    match = _ISO.match(text)
    if match:
        return _timedelta(value, **{k: float(v) for k, v in match.groupdict().items() if v})
    match = _SHORT.match(text)
    if match:
        return _timedelta(value, **{_SHORT_UNITS[match["unit"].lower()]: float(match["n"])})
    raise DurationError(f"'{value}' is not a duration")


def _timedelta(value: object, **parts: float) -> timedelta:
    """timedelta(**parts), or DurationError: it overflows past 999999999 days and refuses NaN."""
    if any(part != part for part in parts.values()):  # NaN, from `.nan` in YAML
        raise DurationError(f"'{value}' is not a duration")
    if any(part < 0 for part in parts.values()):
        raise DurationError(f"'{value}' is not a duration: it is negative")
    try:
        return timedelta(**parts)
    except (OverflowError, ValueError):
        raise DurationError(f"'{value}' is not a duration: it is longer than {timedelta.max.days} days") from None


def format_duration(delta: timedelta) -> str:
    """ISO-8601, as Kestra prints it: PT1H30M, PT0.25S; parse_duration reads it back."""
    micros = delta // timedelta(microseconds=1)  # whole numbers: no float noise, and never `1e-06S`
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, fraction = divmod(rest, 1_000_000)
    text = "PT"
    if hours:
        text += f"{hours}H"
    if minutes:
        text += f"{minutes}M"
    if rest or text == "PT":
        text += f"{seconds}.{fraction:06d}".rstrip("0").rstrip(".") + "S"
    return text
