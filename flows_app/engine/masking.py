"""Secrets never reach the logs: every value of a SECRET_* environment variable is masked."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from typing import Any

MASK = "******"
MIN_LENGTH = 3  # shorter values would mask ordinary text


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The decoded values of SECRET_* variables (and each of their lines), longest first."""
    values: set[str] = set()
    for name, encoded in (os.environ if environ is None else environ).items():
        if not name.startswith("SECRET_"):
            continue
        try:
            value = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            continue
        for candidate in (value, *value.splitlines()):
            if len(candidate.strip()) >= MIN_LENGTH:
                values.add(candidate)
    return sorted(values, key=len, reverse=True)


def mask(text: str, values: list[str]) -> str:
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


def mask_value(value: Any, values: list[str]) -> Any:
    """`mask` through JSON-like data: strings in dicts and lists, keys included."""
    if not values:
        return value
    if isinstance(value, str):
        return mask(value, values)
    if isinstance(value, dict):
        return {mask_value(k, values): mask_value(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v, values) for v in value]
    return value
