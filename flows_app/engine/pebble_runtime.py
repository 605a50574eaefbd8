"""What the Jinja source rewritten from Pebble calls at render time, and how Pebble prints values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, NamedTuple

from jinja2 import Undefined

from . import budget


class Entry(NamedTuple):
    """A map entry as Pebble's for loop gives it: `entry.key`, `entry.value`, or unpacked `k, v`."""

    key: Any
    value: Any

    def __str__(self) -> str:
        return f"{to_text(self.key)}={to_text(self.value)}"  # Java's Map.Entry.toString()


def fail_if_undefined(*values: Any) -> None:
    """Raise the strict-variables error for the first undefined value."""
    for value in values:
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()


def to_text(value: Any) -> str:
    """How Pebble prints a value: null as nothing, true/false, maps and lists as compact JSON."""
    fail_if_undefined(value)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Entry):
        return str(value)
    if isinstance(value, (Mapping, list, tuple)):
        return to_json(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def to_json(value: Any) -> str:
    """Compact JSON, as Kestra's Jackson writes it (non-ASCII kept as is)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    fail_if_undefined(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return list(value)
    return str(value)


def is_set(value: Any) -> bool:
    """The `??` operator's test: defined and not null."""
    return not isinstance(value, Undefined) and value is not None


def coalesce(value: Any, fallback: Any) -> Any:
    return value if is_set(value) else fallback


def coalesce_undefined(value: Any, fallback: Any) -> Any:
    return fallback if isinstance(value, Undefined) else value


def contains(container: Any, item: Any) -> bool:
    """Pebble's `contains`: substring, map key, list element, or every element of a list."""
    fail_if_undefined(container, item)
    if container is None:
        return False
    if isinstance(container, str):
        return to_text(item) in container
    if isinstance(item, (list, tuple)) and not isinstance(container, Mapping):
        return all(element in container for element in item)
    return item in container


def concat(left: Any, right: Any) -> str:
    """Pebble's `~`: both sides printed as Pebble prints them."""
    return to_text(left) + to_text(right)


def pebble_range(start: Any, end: Any, step: int = 1) -> list[Any]:
    """Pebble's range and `..`: both ends included; single letters give a range of letters."""
    fail_if_undefined(start, end)
    letters = isinstance(start, str) and isinstance(end, str)
    low, high = (ord(start), ord(end)) if letters else (int(start), int(end))
    if step == 0:
        raise ValueError(f"range({start!r}, {end!r}, {step}): the step cannot be 0")
    budget.ensure_items(abs(high - low) // abs(step) + 1)
    numbers = range(low, high + (1 if step > 0 else -1), step)
    return [chr(n) for n in numbers] if letters else list(numbers)


def iterate(value: Any) -> Any:
    """What a Pebble for loop walks: nothing for null, entries for a map, the items otherwise."""
    fail_if_undefined(value)
    if value is None:
        return ()
    if isinstance(value, Mapping):
        return [Entry(key, item) for key, item in value.items()]
    return value


RUNTIME_GLOBALS = {
    "_pebble_coalesce": coalesce,
    "_pebble_coalesce_undefined": coalesce_undefined,
    "_pebble_contains": contains,
    "_pebble_concat": concat,
    "_pebble_range": pebble_range,
    "_pebble_iter": iterate,
}
RUNTIME_TESTS = {"_pebble_set": is_set}
