"""Sizes as Kestra and Docker write them: 536870912, "512MB", "0.5GB", "512Mi"."""

from __future__ import annotations

import re
from typing import Any

from plugins_app.base import PluginError

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_bytes(value: Any, name: str) -> int:
    """A size as Kestra and Docker write it, case-insensitive: 536870912, "512MB", "512Mb", "512m", "0.5GB",
    "512Mi". Units are powers of 1024, as `docker run --memory` reads them."""
    match = (
        _SIZE.match(str(value).strip())
        if isinstance(value, (str, int, float)) and not isinstance(value, bool)
        else None
    )
    if match is None or (match.group(3).lower() == "i" and not match.group(2)):
        raise PluginError(f"{name}: '{value}' is not a size such as 512MB, 1GB or 512Mi", retryable=False)
    size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if size <= 0:
        raise PluginError(f"{name}: '{value}' must be more than zero", retryable=False)
    return size
