"""Small readers of trigger properties shared by the trigger specs: each error names its place."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ..engine.conditions import KESTRA_ONLY_STATES
from ..engine.states import State
from .durations import DurationError, parse_duration
from .errors import ErrorCollector, Path

STATE_NAMES = tuple(s.value for s in State)


def check_keys(raw: Mapping[Any, Any], known: set[str], path: Path, errors: ErrorCollector, of: str) -> None:
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            errors.add(path + (str(key),), f"unknown property of {of}{hint}")


def read_mapping(value: Any, path: Path, errors: ErrorCollector) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.add(path, "must be a map of name: value")
        return {}
    return value


def read_duration(value: Any, path: Path, errors: ErrorCollector) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except DurationError as exc:
        errors.add(path, str(exc))
        return None


def read_states(value: Any, path: Path, errors: ErrorCollector) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        errors.add(path, "must be a list of states (SUCCESS, WARNING, FAILED, KILLED, ...)")
        return ()
    states = []
    for i, item in enumerate(value):
        if item in KESTRA_ONLY_STATES:  # a Kestra flow may name them; harmless, but it should know
            errors.warn(path + (i,), f"a Tern execution is never {item}: this never matches")
        elif item not in STATE_NAMES:
            errors.add(path + (i,), f"'{item}' is not a state ({', '.join(STATE_NAMES)})")
        else:
            states.append(item)
    return tuple(states)
