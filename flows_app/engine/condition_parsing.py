"""Reads a trigger's `conditions` from YAML data into the classes of conditions.py, every problem placed:
`triggers[0].conditions[2].dayOfWeek: 'MONDY' is not a day of the week (MONDAY … SUNDAY)`."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from ..spec.errors import ErrorCollector, Path
from . import conditions as c
from .conditions import COMPARISONS, DATE_TIME, DAYS, DAYS_IN_MONTH, KESTRA_ONLY_STATES, LOCAL_DATE, STATES, TIME

NEW, OLD = "io.kestra.plugin.core.condition.", "io.kestra.core.models.conditions.types."


@dataclass
class _Reader:
    """One condition's map; `ok` turns false when one of its properties is wrong."""

    raw: Mapping[Any, Any]
    path: Path
    errors: ErrorCollector
    kind: str
    ok: bool = True

    def fail(self, message: str, *where: str | int) -> None:
        self.errors.add(self.path + where, message)
        self.ok = False

    def text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is None:
            self.fail(f"missing {key}", key)
        elif not isinstance(value, str) or not value.strip():
            self.fail(f"'{value}' is not a text", key)
        else:
            return value
        return None

    def choice(self, key: str, choices: tuple[str, ...], what: str, required: bool = True) -> str | None:
        value = self.raw.get(key)
        if value is None:
            if required:
                self.fail(f"missing {key}: {what} ({_listing(choices)})", key)
        elif value not in choices:
            self.fail(f"'{value}' is not {what} ({_listing(choices)})", key)
        else:
            return str(value)
        return None

    def flag(self, key: str) -> bool:
        value = self.raw.get(key, False)
        if not isinstance(value, bool):
            self.fail(f"'{value}' is not a boolean (true or false)", key)
            return False
        return value

    def date(self, parse: Callable[[str], object], what: str) -> str:
        """The templated `date`: a template is rendered when evaluated; a literal date must parse now."""
        value = self.raw.get("date")
        if value is None:
            return c.TRIGGER_DATE
        if not isinstance(value, str) or not value.strip():
            self.fail(f"'{value}' is not {what}, nor a template such as '{c.TRIGGER_DATE}'", "date")
            return c.TRIGGER_DATE
        if "{{" not in value and "{%" not in value:
            try:
                parse(value)
            except ValueError:
                self.fail(f"'{value}' is not {what}", "date")
        return value

    def bound(self, key: str, parse: Callable[[str], Any], what: str) -> Any:
        """`after` or `before`, which Kestra does not render (a ZonedDateTime or OffsetTime property)."""
        value = self.raw.get(key)
        if value is None:
            return None
        try:
            return parse(value if isinstance(value, str) else "")
        except ValueError:
            self.fail(f"'{value}' is not {what}", key)
            return None

    def states(self, key: str) -> tuple[str, ...] | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            self.fail(f"must be a list of states ({_listing(STATES)})", key)
            return None
        for i, item in enumerate(value):
            if item in KESTRA_ONLY_STATES:  # a Kestra flow may name them; harmless, but it should know
                self.errors.warn(self.path + (key, i), f"a Tern execution is never {item}: this never matches")
            elif item not in STATES:
                self.fail(f"'{item}' is not a state ({_listing(STATES)})", key, i)
        return tuple(str(item) for item in value)

    def conditions(self) -> tuple[c.Condition, ...]:
        value = self.raw.get("conditions")
        if not isinstance(value, list) or not value:
            self.fail("missing conditions" if value is None else "must be a non-empty list of conditions", "conditions")
            return ()
        children = parse_list(value, self.path + ("conditions",), self.errors, self.kind)
        self.ok = self.ok and len(children) == len(value)
        return children


def _listing(choices: tuple[str, ...]) -> str:
    return f"{choices[0]} … {choices[-1]}" if choices == DAYS else ", ".join(choices)


def _text(value: Any) -> str | None:
    """A label's key or value as Kestra keeps it (String.valueOf of a scalar); None if it is not a scalar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, (str, int, float)) else None


# --- one builder per condition ------------------------------------------------------------------------------


def _day_week(r: _Reader) -> c.Condition | None:
    day = r.choice("dayOfWeek", DAYS, "a day of the week")
    date = r.date(c.parse_local_date, LOCAL_DATE)
    return None if day is None else c.DayWeek(day, date, r.path)


def _day_week_in_month(r: _Reader) -> c.Condition | None:
    day = r.choice("dayOfWeek", DAYS, "a day of the week")
    nth = r.choice("dayInMonth", DAYS_IN_MONTH, "a day in the month")
    date = r.date(c.parse_local_date, LOCAL_DATE)
    return None if day is None or nth is None else c.DayWeekInMonth(day, nth, date, r.path)


def _weekend(r: _Reader) -> c.Condition | None:
    return c.Weekend(r.date(c.parse_local_date, LOCAL_DATE), r.path)


def _public_holiday(r: _Reader) -> c.Condition | None:
    """Kestra takes the server's locale when `country` is missing; Tern has none to take, so it is required."""
    country = r.text("country")
    division = r.raw.get("subDivision")
    if division is not None and (not isinstance(division, str) or not division.strip()):
        r.fail(f"'{division}' is not a text", "subDivision")
        division = None
    date = r.date(c.parse_local_date, LOCAL_DATE)
    if country is None:
        return None
    literal = not any(mark in f"{country}{division or ''}" for mark in ("{{", "{%"))
    if literal:
        try:
            c.holiday_calendar(country, division)
        except ValueError as exc:
            r.fail(str(exc), "subDivision" if division and "subdivision" in str(exc) else "country")
            return None
    return c.PublicHoliday(country, division, date, r.path)


def _date_time_between(r: _Reader) -> c.Condition | None:
    after = r.bound("after", c.parse_date_time, DATE_TIME)
    before = r.bound("before", c.parse_date_time, DATE_TIME)
    date = r.date(c.parse_date_time, DATE_TIME)
    _check_window(r, "DateTimeBetween", after, before, lambda moment: moment)
    return c.DateTimeBetween(after, before, date, r.path)


def _time_between(r: _Reader) -> c.Condition | None:
    after = r.bound("after", c.parse_time, TIME)
    before = r.bound("before", c.parse_time, TIME)
    date = r.date(c.parse_date_time, DATE_TIME)
    # without offsets both take the date's, whatever it is; with one each, they compare as they are
    comparable = after is None or before is None or (after.tzinfo is None) == (before.tzinfo is None)
    _check_window(
        r, "TimeBetween", after, before, lambda clock: c.day_time_key(clock, timedelta()) if comparable else None
    )
    return c.TimeBetween(after, before, date, r.path)


def _check_window(r: _Reader, name: str, after: Any, before: Any, key: Callable[[Any], Any]) -> None:
    """A window needs a side; an empty one never holds, which Kestra allows but the author should know. (`key`
    orders the bounds, None when they cannot be compared before the date is known.)"""
    if "after" not in r.raw and "before" not in r.raw:
        r.fail(f"{name} needs `after`, `before` or both")
    elif after is None or before is None or key(after) is None or key(after) < key(before):
        return
    else:
        wrap = " (it does not wrap past midnight: use an Or of two TimeBetween)" if name == "TimeBetween" else ""
        r.errors.warn(
            r.path, f"never holds: `after` {after.isoformat()} is not before `before` {before.isoformat()}{wrap}"
        )


def _not(r: _Reader) -> c.Condition | None:
    return c.Not(r.conditions(), r.path)


def _or(r: _Reader) -> c.Condition | None:
    return c.Or(r.conditions(), r.path)


def _expression(r: _Reader) -> c.Condition | None:
    expression = r.text("expression")
    return None if expression is None else c.Expression(expression, r.path)


def _execution_outputs(r: _Reader) -> c.Condition | None:
    expression = r.text("expression")
    return None if expression is None else c.ExecutionOutputs(expression, r.path)


def _execution_status(r: _Reader) -> c.Condition | None:
    return c.ExecutionStatus(r.states("in"), r.states("notIn"), r.path)


def _has_retry_attempt(r: _Reader) -> c.Condition | None:
    return c.HasRetryAttempt(r.states("in"), r.states("notIn"), r.path)


def _execution_flow(r: _Reader) -> c.Condition | None:
    namespace, flow_id = r.text("namespace"), r.text("flowId")
    return None if namespace is None or flow_id is None else c.ExecutionFlow(namespace, flow_id, r.path)


def _execution_namespace(r: _Reader) -> c.Condition | None:
    namespace = r.text("namespace")
    comparison = r.choice("comparison", COMPARISONS, "a comparison", required=False)
    prefix = r.flag("prefix")  # Kestra: only read when `comparison` is not set
    comparison = comparison or ("PREFIX" if prefix else "EQUALS")
    return None if namespace is None else c.ExecutionNamespace(namespace, comparison, r.path)


def _execution_labels(r: _Reader) -> c.Condition | None:
    """Kestra's ListOrMapOfLabelDeserializer: a map of key: value, or a list of {key, value}."""
    value = r.raw.get("labels")
    pairs: list[tuple[Any, Any, tuple[str | int, ...]]] = []
    if isinstance(value, dict):
        pairs = [(k, v, ("labels", str(k))) for k, v in value.items()]
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict) and "key" in item and "value" in item:
                pairs.append((item["key"], item["value"], ("labels", i)))
            else:
                r.fail("a label must be a map with `key` and `value`", "labels", i)
    else:
        r.fail(
            "missing labels" if value is None else "must be a map of key: value, or a list of {key, value}", "labels"
        )
    labels = []
    for key, val, where in pairs:
        key_text, val_text = _text(key), _text(val)
        if key_text is None or val_text is None:
            r.fail(f"'{key}: {val}' is not a label (a text, number or boolean for its key and value)", *where)
        elif key_text.startswith("system."):  # Kestra's NoSystemLabelValidation
            r.fail(f"label '{key_text}': the `system.` prefix is reserved", *where)
        else:
            labels.append((key_text, val_text))
    return c.ExecutionLabels(tuple(labels), r.path)


# --- the types, as Kestra names them ------------------------------------------------------------------------

SCHEDULE, FLOW = frozenset({"schedule"}), frozenset({"flow"})


@dataclass(frozen=True)
class _Spec:
    build: Callable[[_Reader], c.Condition | None]
    keys: frozenset[str]
    kinds: frozenset[str]
    legacy: str = ""  # the pre-0.17 name when it is not <Name>Condition

    def names(self, short: str) -> tuple[str, ...]:
        """The current name and the @Plugin(aliases) of Kestra's class."""
        return NEW + short, OLD + (self.legacy or short + "Condition"), NEW + short + "Condition"


SPECS: dict[str, _Spec] = {
    "DayWeek": _Spec(_day_week, frozenset({"dayOfWeek", "date"}), SCHEDULE),
    "DayWeekInMonth": _Spec(_day_week_in_month, frozenset({"dayOfWeek", "dayInMonth", "date"}), SCHEDULE),
    "DateTimeBetween": _Spec(_date_time_between, frozenset({"after", "before", "date"}), SCHEDULE),
    "TimeBetween": _Spec(_time_between, frozenset({"after", "before", "date"}), SCHEDULE),
    "Weekend": _Spec(_weekend, frozenset({"date"}), SCHEDULE),
    "PublicHoliday": _Spec(_public_holiday, frozenset({"country", "subDivision", "date"}), SCHEDULE),
    "ExecutionStatus": _Spec(_execution_status, frozenset({"in", "notIn"}), FLOW),
    "ExecutionFlow": _Spec(_execution_flow, frozenset({"namespace", "flowId"}), FLOW),
    "ExecutionNamespace": _Spec(_execution_namespace, frozenset({"namespace", "comparison", "prefix"}), FLOW),
    "ExecutionLabels": _Spec(_execution_labels, frozenset({"labels"}), FLOW),
    "ExecutionOutputs": _Spec(_execution_outputs, frozenset({"expression"}), FLOW),
    "HasRetryAttempt": _Spec(_has_retry_attempt, frozenset({"in", "notIn"}), FLOW),
    "Expression": _Spec(_expression, frozenset({"expression"}), SCHEDULE | FLOW, legacy="VariableCondition"),
    "Not": _Spec(_not, frozenset({"conditions"}), SCHEDULE | FLOW),
    "Or": _Spec(_or, frozenset({"conditions"}), SCHEDULE | FLOW),
}
NAMES = {name: short for short, spec in SPECS.items() for name in spec.names(short)}

# Kestra's conditions Tern refuses, each with why (MultipleCondition is the Flow trigger's `preconditions` now).
_FLOW = "FlowCondition (deprecated in Kestra) is not supported by Tern: use ExecutionFlow"
_FLOW_NAMESPACE = "FlowNamespaceCondition (deprecated in Kestra) is not supported by Tern: use ExecutionNamespace"
_MULTIPLE = "MultipleCondition is not taken in `conditions` by Tern: give the Flow trigger `preconditions`"
REFUSED = {
    **dict.fromkeys((NEW + "FlowCondition", OLD + "FlowCondition"), _FLOW),
    **dict.fromkeys((NEW + "FlowNamespaceCondition", OLD + "FlowNamespaceCondition"), _FLOW_NAMESPACE),
    **dict.fromkeys((NEW + "MultipleCondition", OLD + "MultipleCondition"), _MULTIPLE),
}

_FOR = {kind: ", ".join(short for short, spec in SPECS.items() if kind in spec.kinds) for kind in ("schedule", "flow")}
WRONG_KIND = {
    "schedule": "{} is a condition on an ending execution; a Schedule trigger takes date conditions: "
    + _FOR["schedule"],
    "flow": "{} is a condition on a schedule's date; a Flow trigger takes conditions on the ending execution: "
    + _FOR["flow"],
}


def parse_conditions(
    value: object, path: Path, errors: ErrorCollector, *, kind: Literal["schedule", "flow"]
) -> tuple[c.Condition, ...]:
    """A trigger's `conditions` (None: none) read into conditions; each problem goes to `errors` with its place,
    and only the conditions that are whole are returned. `kind` is the trigger's: a Schedule takes conditions on
    its date, a Flow trigger conditions on the ending execution; Expression, Not and Or go on both."""
    return parse_list(value, path, errors, kind)


def parse_list(value: object, path: Path, errors: ErrorCollector, kind: str) -> tuple[c.Condition, ...]:
    """conditions.parse_conditions: the conditions that are whole; the problems of the others in `errors`."""
    if value is None:
        return ()
    if not isinstance(value, list):
        errors.add(path, "must be a list of conditions, each a map with a `type`")
        return ()
    found = (_parse_one(item, path + (i,), errors, kind) for i, item in enumerate(value))
    return tuple(condition for condition in found if condition is not None)


def _parse_one(raw: object, path: Path, errors: ErrorCollector, kind: str) -> c.Condition | None:
    if not isinstance(raw, dict) or "type" not in raw:
        errors.add(path, "a condition must be a map with a `type`")
        return None
    type_name = raw["type"]
    short = NAMES.get(type_name) if isinstance(type_name, str) else None
    if short is None:
        refusal = REFUSED.get(type_name) if isinstance(type_name, str) else None
        errors.add(path + ("type",), refusal or f"unknown condition type '{type_name}'{_hint(str(type_name))}")
        return None
    spec = SPECS[short]
    if kind not in spec.kinds:
        errors.add(path + ("type",), WRONG_KIND[kind].format(short))
        return None
    reader = _Reader(raw, path, errors, kind)
    for key in raw:
        if key != "type" and key not in spec.keys:
            close = difflib.get_close_matches(str(key), sorted(spec.keys), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            reader.fail(f"unknown property of {short}{hint}", str(key))
    condition = spec.build(reader)
    return condition if reader.ok else None


def _hint(type_name: str) -> str:
    """The known name closest to `type_name`, or to its last part (`DayWeek` alone means Kestra's DayWeek)."""
    close = difflib.get_close_matches(type_name, sorted(NAMES) + sorted(REFUSED), n=1)
    if not close:
        tail = type_name.rsplit(".", 1)[-1].removesuffix("Condition")
        close = [NEW + short for short in difflib.get_close_matches(tail, sorted(SPECS), n=1)]
    return f"; did you mean '{close[0]}'?" if close else ""
