"""A Flow trigger's `preconditions` (Kestra 1.x), and the older MultipleCondition among its `conditions`:
read into the pure engine's Preconditions, each error placed."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import time, timedelta
from typing import Any

from ..engine.condition_parsing import parse_conditions
from ..engine.conditions import Condition
from ..engine.preconditions import (
    FIELDS,
    FILTER_TYPES,
    OPERANDS,
    TAKE_VALUES,
    WINDOW_TYPES,
    Check,
    ExecutionFilter,
    Filter,
    Preconditions,
    TimeWindow,
    UpstreamFlow,
)
from .errors import ErrorCollector, Path
from .properties import check_keys, read_duration, read_states

MULTIPLE = (
    "io.kestra.plugin.core.condition.MultipleCondition",
    "io.kestra.core.models.conditions.types.MultipleCondition",
)


MULTIPLE_KEYS = {"id", "type", "conditions", "window", "windowAdvance", "timeWindow", "resetOnSuccess"}
PRECONDITIONS_KEYS = {"id", "flows", "where", "timeWindow", "resetOnSuccess"}
UPSTREAM_KEYS = {"namespace", "flowId", "states", "labels"}
WHERE_KEYS = {"id", "operand", "filters"}
FILTER_KEYS = {"field", "type", "value", "values"}
WINDOW_KEYS = {"type", "window", "windowAdvance", "deadline", "startTime", "endTime"}
WINDOW_TAKES = {  # Kestra's TimeWindowValidator: what each type of window may say, and must
    "DURATION_WINDOW": ({"window", "windowAdvance"}, ()),
    "SLIDING_WINDOW": ({"window"}, ()),
    "DAILY_TIME_DEADLINE": ({"deadline"}, ("deadline",)),
    "DAILY_TIME_WINDOW": ({"startTime", "endTime"}, ("startTime", "endTime")),
}
PRECONDITIONS_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]*")  # Kestra's @Pattern
_CLOCK = re.compile(r"(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?")  # LocalTime.parse, ISO_LOCAL_TIME
_SIGNED = re.compile(  # java.time.Duration.parse, whose parts may each have a sign: PT-4H
    r"P(?:(?P<days>[-+]?\d+)D)?(?:T(?:(?P<hours>[-+]?\d+)H)?(?:(?P<minutes>[-+]?\d+)M)?"
    r"(?:(?P<seconds>[-+]?\d+(?:\.\d+)?)S)?)?",
    re.IGNORECASE,
)


@dataclass
class _Placed(ErrorCollector):
    """Passes its errors on to `into`, those said at `at` placed at `to` instead: a condition parsed alone,
    out of a list or a map, keeps its own index or name."""

    into: ErrorCollector = field(default_factory=ErrorCollector)
    at: Path = ()
    to: Path = ()

    def add(self, path: Path, message: str) -> None:
        self.into.add(self._moved(path), message)

    def warn(self, path: Path, message: str) -> None:
        self.into.warn(self._moved(path), message)

    def _moved(self, path: Path) -> Path:
        path = tuple(path)
        return self.to + path[len(self.at) :] if path[: len(self.at)] == self.at else path


def is_multiple(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") in MULTIPLE


def conditions_at(items: Iterable[tuple[str | int, Any]], path: Path, errors: ErrorCollector) -> tuple[Condition, ...]:
    """Conditions on the ending execution, each parsed alone and placed at `path` + its index or name."""
    found: list[Condition] = []
    for key, raw in items:
        placed = _Placed(lines=errors.lines, into=errors, at=path + (0,), to=path + (key,))
        found.extend(parse_conditions([raw], path, placed, kind="flow"))
    return tuple(found)


def parse_preconditions(value: Any, path: Path, errors: ErrorCollector) -> Preconditions | None:
    """Kestra 1.x's `preconditions`: `flows` and `where` checks, named as Kestra names them (condition_1, …;
    condition_3_<id> for a `where`), to be met inside a `timeWindow`."""
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.add(path, "must be a map (id, flows, where, timeWindow, resetOnSuccess)")
        return None
    check_keys(value, PRECONDITIONS_KEYS, path, errors, "preconditions")
    checks: list[tuple[str, Check]] = []
    flows = _list_of(value.get("flows"), path + ("flows",), errors, "flows, each a map with a `namespace`")
    for i, item in enumerate(flows):
        upstream = _upstream_flow(item, path + ("flows", i), errors)
        if upstream is not None:
            checks.append((f"condition_{i + 1}", upstream))
    where = _list_of(value.get("where"), path + ("where",), errors, "filters, each a map with `id` and `filters`")
    for i, item in enumerate(where):
        execution_filter = _execution_filter(item, path + ("where", i), errors)
        if execution_filter is not None:
            checks.append((f"condition_{len(flows) + i + 1}_{execution_filter.id}", execution_filter))
    return _preconditions_of(value, path, errors, tuple(checks), _time_window(value.get("timeWindow"), path, errors))


def parse_multiple_condition(value: dict[str, Any], path: Path, errors: ErrorCollector) -> Preconditions | None:
    """The older MultipleCondition: `conditions: {name: condition}` to be met inside a window, given as
    `timeWindow` or as `window` and `windowAdvance` (which override the time window's)."""
    check_keys(value, MULTIPLE_KEYS, path, errors, "a MultipleCondition")
    time_window = _time_window(value.get("timeWindow"), path, errors)
    window = _duration_longer_than_zero(value.get("window"), path + ("window",), errors)
    advance = _signed_duration(value.get("windowAdvance"), path + ("windowAdvance",), errors)
    for key, given, takes in (
        ("window", window, ("DURATION_WINDOW", "SLIDING_WINDOW")),
        ("windowAdvance", advance, ("DURATION_WINDOW",)),
    ):
        if given is not None and time_window.type not in takes:
            errors.add(path + (key,), f"a {time_window.type} time window takes no `{key}`")
    time_window = replace(
        time_window,
        window=window if window is not None else time_window.window,
        window_advance=advance if advance is not None else time_window.window_advance,
    )
    conditions = value.get("conditions")
    if not isinstance(conditions, dict) or not conditions:
        what = "missing conditions" if conditions is None else "must be a map of name: condition"
        errors.add(path + ("conditions",), f"{what} (each name keeps whether it was met)")
        conditions = {}
    checks: list[tuple[str, Check]] = []
    for name, raw in conditions.items():
        checks.extend((str(name), c) for c in conditions_at([(str(name), raw)], path + ("conditions",), errors))
    return _preconditions_of(value, path, errors, tuple(checks), time_window)


def _preconditions_of(
    value: Mapping[str, Any],
    path: Path,
    errors: ErrorCollector,
    checks: tuple[tuple[str, Check], ...],
    window: TimeWindow,
) -> Preconditions | None:
    identifier = value.get("id")
    if not isinstance(identifier, str) or not PRECONDITIONS_ID.fullmatch(identifier) or len(identifier) > 100:
        message = "missing id" if identifier is None else f"'{identifier}' is not a valid id"
        errors.add(
            path + ("id",), f"{message} (a letter or digit, then letters, digits, '-' and '_'): it names the window"
        )
        return None
    reset = value.get("resetOnSuccess", True)
    if not isinstance(reset, bool):
        errors.add(path + ("resetOnSuccess",), f"'{reset}' is not a boolean (true or false)")
        reset = True
    return Preconditions(identifier, checks, window, reset, path)


def _upstream_flow(value: Any, path: Path, errors: ErrorCollector) -> UpstreamFlow | None:
    if not isinstance(value, dict):
        errors.add(path, "a flow must be a map with `namespace` (and `flowId`, `states`, `labels`)")
        return None
    check_keys(value, UPSTREAM_KEYS, path, errors, "a precondition's flow")
    namespace = _text_of(value.get("namespace"), path + ("namespace",), errors, "namespace")
    flow_id = value.get("flowId")
    if flow_id is not None:
        flow_id = _text_of(flow_id, path + ("flowId",), errors, "flowId")
    states = read_states(value["states"], path + ("states",), errors) if value.get("states") is not None else None
    labels = value.get("labels") or {}
    if not isinstance(labels, dict):
        errors.add(path + ("labels",), "must be a map of key: value")
        labels = {}
    pairs = []
    for key, label in labels.items():
        if isinstance(label, (dict, list)) or label is None:
            errors.add(path + ("labels", str(key)), f"'{label}' is not a label's value (a text, number or boolean)")
        else:
            pairs.append((str(key), _scalar(label)))
    if namespace is None:
        return None
    return UpstreamFlow(namespace, flow_id, states, tuple(pairs))


def _execution_filter(value: Any, path: Path, errors: ErrorCollector) -> ExecutionFilter | None:
    if not isinstance(value, dict):
        errors.add(path, "a filter must be a map with `id` and `filters` (and `operand`)")
        return None
    check_keys(value, WHERE_KEYS, path, errors, "a precondition's filter")
    identifier = _text_of(value.get("id"), path + ("id",), errors, "id")
    operand = value.get("operand", "AND")
    if operand not in OPERANDS:
        errors.add(path + ("operand",), f"'{operand}' is not one of {', '.join(OPERANDS)}")
    raw_filters = value.get("filters")
    if not isinstance(raw_filters, list) or not raw_filters:
        errors.add(
            path + ("filters",), "missing filters" if raw_filters is None else "must be a non-empty list of filters"
        )
        raw_filters = []
    filters = [f for i, raw in enumerate(raw_filters) if (f := _filter(raw, path + ("filters", i), errors))]
    if identifier is None or operand not in OPERANDS or len(filters) != len(raw_filters):
        return None
    return ExecutionFilter(identifier, tuple(filters), operand)


def _filter(value: Any, path: Path, errors: ErrorCollector) -> Filter | None:
    """Kestra's Filter and its validator: IN and NOT_IN take `values`, every other type a `value`."""
    if not isinstance(value, dict):
        errors.add(path, "a filter must be a map with `field`, `type` and `value` (or `values`)")
        return None
    check_keys(value, FILTER_KEYS, path, errors, "a filter")
    ok = True
    for key, choices in (("field", FIELDS), ("type", FILTER_TYPES)):
        if value.get(key) not in choices:
            given = value.get(key)
            errors.add(
                path + (key,), f"missing {key}" if given is None else f"'{given}' is not one of {', '.join(choices)}"
            )
            ok = False
    if not ok:
        return None
    kind = value["type"]
    wanted, unwanted = ("values", "value") if kind in TAKE_VALUES else ("value", "values")
    if value.get(unwanted) is not None:
        errors.add(path + (unwanted,), f"a {kind} filter takes `{wanted}`, not `{unwanted}`")
        ok = False
    given = value.get(wanted)
    if given is None:
        errors.add(path + (wanted,), f"missing {wanted}: a {kind} filter needs one")
        return None
    if wanted == "values":
        if not isinstance(given, list) or any(isinstance(v, (dict, list)) or v is None for v in given):
            errors.add(path + ("values",), "must be a list of texts")
            return None
        return Filter(value["field"], kind, values=tuple(_scalar(v) for v in given)) if ok else None
    if isinstance(given, (dict, list)):
        errors.add(path + ("value",), "must be a text")
        return None
    text = _scalar(given)
    if kind == "REGEX":
        try:
            re.compile(text)
        except re.error as exc:
            errors.add(path + ("value",), f"'{text}' is not a regular expression: {exc}")
            return None
    return Filter(value["field"], kind, value=text) if ok else None


def _time_window(value: Any, parent: Path, errors: ErrorCollector) -> TimeWindow:
    """Kestra's TimeWindow: DURATION_WINDOW (a day from midnight) unless it says otherwise."""
    path = parent + ("timeWindow",)
    if value is None:
        return TimeWindow()
    if not isinstance(value, dict):
        errors.add(
            path, "must be a map with a `type` (and `window`, `windowAdvance`, `deadline`, `startTime`, `endTime`)"
        )
        return TimeWindow()
    check_keys(value, WINDOW_KEYS, path, errors, "a time window")
    kind = value.get("type", "DURATION_WINDOW")
    if kind not in WINDOW_TYPES:
        errors.add(path + ("type",), f"'{kind}' is not one of {', '.join(WINDOW_TYPES)}")
        return TimeWindow()
    takes, needs = WINDOW_TAKES[kind]
    for key in sorted(WINDOW_KEYS - {"type"} - takes):
        if value.get(key) is not None:
            errors.add(path + (key,), f"a {kind} time window takes no `{key}`")
    for key in needs:
        if value.get(key) is None:
            errors.add(path + (key,), f"missing {key}: a {kind} time window needs one")
    clocks = {key: _clock(value.get(key), path + (key,), errors) for key in ("deadline", "startTime", "endTime")}
    window = TimeWindow(
        kind,
        _duration_longer_than_zero(value.get("window"), path + ("window",), errors),
        _signed_duration(value.get("windowAdvance"), path + ("windowAdvance",), errors),
        clocks["deadline"],
        clocks["startTime"],
        clocks["endTime"],
    )
    if kind == "DAILY_TIME_WINDOW" and window.start_time and window.end_time and window.start_time >= window.end_time:
        errors.warn(path, "never open: `startTime` is not before `endTime` (a window does not wrap past midnight)")
    return window


def _list_of(value: Any, path: Path, errors: ErrorCollector, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        errors.add(path, f"must be a list of {what}")
        return []
    return value


def _text_of(value: Any, path: Path, errors: ErrorCollector, name: str) -> str | None:
    if value is None:
        errors.add(path, f"missing {name}")
        return None
    if not isinstance(value, str) or not value.strip():
        errors.add(path, f"'{value}' is not a text")
        return None
    return value


def _scalar(value: Any) -> str:
    """A value as Kestra's String.valueOf gives it: `true`, not `True`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _clock(value: Any, path: Path, errors: ErrorCollector) -> time | None:
    """A time of day without an offset (Kestra's LocalTime): 09:00, 09:00:00, 09:00:00.5."""
    if value is None:
        return None
    match = _CLOCK.fullmatch(value.strip()) if isinstance(value, str) else None
    hint = "" if isinstance(value, str) else " (quote it: YAML reads 9:30 as a number)"
    if match is not None and int(match[1]) < 24 and int(match[2]) < 60 and int(match[3] or 0) < 60:
        micros = int((match[4] or "0").ljust(6, "0")[:6])
        return time(int(match[1]), int(match[2]), int(match[3] or 0), micros)
    errors.add(path, f"'{value}' is not a time of day (HH:MM:SS, e.g. 09:00:00){hint}")
    return None


def _duration_longer_than_zero(value: Any, path: Path, errors: ErrorCollector) -> timedelta | None:
    duration = read_duration(value, path, errors)
    if duration is not None and duration <= timedelta():
        errors.add(path, f"'{value}' is not longer than zero")
        return None
    return duration


def _signed_duration(value: Any, path: Path, errors: ErrorCollector) -> timedelta | None:
    """A duration that may be negative, as Java's Duration: -PT4H, or PT-4H (windowAdvance: PT-4H starts the
    windows at 20:00)."""
    if not isinstance(value, str):
        return read_duration(value, path, errors)
    text = value.strip()
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("-+")
    match = _SIGNED.fullmatch(body)
    if match is not None and "-" in body and any(match.groupdict().values()):
        parts = {unit: float(n) for unit, n in match.groupdict().items() if n}
        return sign * timedelta(**parts)
    duration = read_duration(body, path, errors)
    return None if duration is None else sign * duration
