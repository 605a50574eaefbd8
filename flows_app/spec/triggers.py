"""A flow's `triggers`: each checked against its type's properties, with errors that name their place.

The types carry Kestra's names, current (`io.kestra.plugin.core.trigger.Schedule`) and seed-era
(`io.kestra.core.models.triggers.types.Schedule`); the spec keeps the current one.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from ..engine.condition_parsing import parse_conditions
from ..engine.conditions import Condition
from ..engine.cron import Cron, CronError, parse_cron, zone_of
from ..engine.preconditions import Preconditions
from ..engine.states import TERMINAL, State
from .errors import ErrorCollector, Path
from .event_triggers import EVENT_KINDS, EVENT_TYPES, parse_event_trigger, type_label
from .model import TriggerSpec
from .preconditions import conditions_at, is_multiple, parse_multiple_condition, parse_preconditions
from .properties import check_keys, read_duration, read_mapping, read_states

SCHEDULE = ("io.kestra.plugin.core.trigger.Schedule", "io.kestra.core.models.triggers.types.Schedule")
FLOW_TRIGGER = ("io.kestra.plugin.core.trigger.Flow", "io.kestra.core.models.triggers.types.Flow")
WEBHOOK = ("io.kestra.plugin.core.trigger.Webhook", "io.kestra.core.models.triggers.types.Webhook")
TRIGGER_TYPES = {name: group[0] for group in (SCHEDULE, FLOW_TRIGGER, WEBHOOK) for name in group}
TRIGGER_TYPES |= {name: kind.names[0] for name, kind in EVENT_TYPES.items()}  # polling and realtime ones

# Kestra's AbstractTrigger: what every trigger may say.
COMMON_KEYS = {"id", "type", "description", "conditions", "disabled", "stopAfter", "labels", "logLevel", "logToFile"}
COMMON_KEYS |= {"workerGroup"}
RECOVERY = ("ALL", "LAST", "NONE")  # Kestra's RecoverMissedSchedules; ALL by default, as in Kestra


@dataclass(frozen=True)
class BackfillSpec:
    """`backfill: {start, end}` (Kestra's deprecated property, which the seed uses): the ticks from `start`
    to `end` (or to now) run once, progressively, besides the schedule's own ticks."""

    start: datetime
    end: datetime | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ScheduleSpec:
    cron: Cron
    timezone: str = "UTC"  # without one, a schedule runs in UTC
    inputs: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    conditions: tuple[Condition, ...] = ()
    recover: str = "ALL"
    late_maximum_delay: timedelta | None = None
    stop_after: tuple[str, ...] = ()
    backfill: BackfillSpec | None = None


@dataclass(frozen=True)
class FlowTriggerSpec:
    inputs: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    conditions: tuple[Condition, ...] = ()  # but MultipleCondition, which is one of `preconditions` here
    states: tuple[str, ...] = ()  # empty: any final state
    preconditions: tuple[Preconditions, ...] = ()  # the MultipleConditions of `conditions`, then `preconditions`
    stop_after: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebhookSpec:
    key: str
    labels: Mapping[str, str] = field(default_factory=dict)
    conditions: tuple[Condition, ...] = ()
    stop_after: tuple[str, ...] = ()


KEYS = {
    SCHEDULE[0]: {"cron", "withSeconds", "timezone", "inputs", "recoverMissedSchedules", "lateMaximumDelay"}
    | {"backfill", "scheduleConditions", "interval"},
    FLOW_TRIGGER[0]: {"inputs", "states", "preconditions"},
    WEBHOOK[0]: {"key", "wait", "returnOutputs", "responseContentType"},
    **{kind.names[0]: set(kind.keys) for kind in EVENT_KINDS},
}


def parse_triggers(
    value: Any, errors: ErrorCollector, labels: Callable[[Any, Path], dict[str, str]]
) -> tuple[TriggerSpec, ...]:
    """The flow's triggers; `labels` parses a labels property at a path (the flow's own rules)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        errors.add(("triggers",), "must be a list of triggers")
        return ()
    triggers, seen = [], set()
    for i, raw in enumerate(value):
        path: Path = ("triggers", i)
        if not isinstance(raw, dict):
            errors.add(path, "a trigger must be a map with `id` and `type`")
            continue
        trigger_id = _id(raw.get("id"), path + ("id",), errors)
        if trigger_id in seen:
            errors.add(path + ("id",), f"duplicate trigger id '{trigger_id}'")
        seen.add(trigger_id)
        type_name = raw.get("type")
        canonical = TRIGGER_TYPES.get(type_name) if isinstance(type_name, str) else None
        if canonical is None:
            close = difflib.get_close_matches(str(type_name), list(TRIGGER_TYPES), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            errors.add(path + ("type",), f"unknown trigger type '{type_name}'{hint}")
            continue
        check_keys(raw, KEYS[canonical] | COMMON_KEYS, path, errors, f"a {type_label(canonical)} trigger")
        parser: Callable[..., Any] = PARSERS.get(canonical, parse_event_trigger)
        parsed = parser({**raw, "type": canonical}, path, errors, labels)
        props = {k: v for k, v in raw.items() if k not in ("id", "type", "disabled")}
        disabled = raw.get("disabled")
        if disabled is not None and not isinstance(disabled, bool):
            errors.add(path + ("disabled",), f"'{disabled}' is not a boolean (true or false)")
        if trigger_id:
            triggers.append(TriggerSpec(trigger_id, canonical, props, disabled is True, parsed))
    return tuple(triggers)


def _id(value: Any, path: Path, errors: ErrorCollector) -> str | None:
    from .tasks import ID_PATTERN

    if value is None:
        errors.add(path, "missing id")
        return None
    if not isinstance(value, str) or not ID_PATTERN.match(value) or len(value) > 100:
        errors.add(path, f"'{value}' is not a valid id (letters, digits, '-' and '_', at most 100)")
        return None
    return value


def _schedule(raw: Mapping[str, Any], path: Path, errors: ErrorCollector, labels: Any) -> ScheduleSpec | None:
    with_seconds = raw.get("withSeconds", False)
    if not isinstance(with_seconds, bool):
        errors.add(path + ("withSeconds",), f"'{with_seconds}' is not a boolean (true or false)")
        with_seconds = False
    cron: Cron | None = None
    if not isinstance(raw.get("cron"), str):
        errors.add(path + ("cron",), "missing cron expression" if raw.get("cron") is None else "must be a text")
    else:
        try:
            cron = parse_cron(raw["cron"], with_seconds)
        except CronError as exc:
            errors.add(path + ("cron",), str(exc))
    timezone = raw.get("timezone") or "UTC"
    try:
        zone_of(timezone if isinstance(timezone, str) else str(timezone))
    except CronError as exc:
        errors.add(path + ("timezone",), str(exc))
    recover = raw.get("recoverMissedSchedules", "ALL")
    if recover not in RECOVERY:
        errors.add(path + ("recoverMissedSchedules",), f"'{recover}' is not one of {', '.join(RECOVERY)}")
    late = read_duration(raw.get("lateMaximumDelay"), path + ("lateMaximumDelay",), errors)
    conditions = parse_conditions(raw.get("conditions"), path + ("conditions",), errors, kind="schedule")
    conditions += parse_conditions(
        raw.get("scheduleConditions"), path + ("scheduleConditions",), errors, kind="schedule"
    )
    if raw.get("interval") is not None:
        errors.add(path + ("interval",), "a Schedule trigger takes a `cron`, not an `interval`")
    spec = ScheduleSpec(
        cron=cron,  # type: ignore[arg-type]  # None only when an error was recorded
        timezone=timezone if isinstance(timezone, str) else "UTC",
        inputs=read_mapping(raw.get("inputs"), path + ("inputs",), errors),
        labels=labels(raw.get("labels"), path + ("labels",)),
        conditions=conditions,
        recover=recover if recover in RECOVERY else "ALL",
        late_maximum_delay=late,
        stop_after=read_states(raw.get("stopAfter"), path + ("stopAfter",), errors),
        backfill=_backfill(raw.get("backfill"), path + ("backfill",), errors, labels),
    )
    return spec if cron is not None else None


def _flow(raw: Mapping[str, Any], path: Path, errors: ErrorCollector, labels: Any) -> FlowTriggerSpec:
    """Kestra's Flow trigger. Its `conditions` filter the ending execution, but a MultipleCondition among them,
    the older spelling of `preconditions`, is read as one of those."""
    value, multiple = raw.get("conditions"), []
    if isinstance(value, list):
        plain = [(i, c) for i, c in enumerate(value) if not is_multiple(c)]
        conditions = conditions_at(plain, path + ("conditions",), errors)
        found = (
            parse_multiple_condition(c, path + ("conditions", i), errors) for i, c in enumerate(value) if is_multiple(c)
        )
        multiple = [m for m in found if m is not None]
    else:
        conditions = parse_conditions(value, path + ("conditions",), errors, kind="flow")
    block = parse_preconditions(raw.get("preconditions"), path + ("preconditions",), errors)
    preconditions = [*multiple, *([block] if block is not None and block.checks else [])]
    for i, later in enumerate(preconditions):
        if any(earlier.id == later.id for earlier in preconditions[:i]):
            errors.add(later.path + ("id",), f"duplicate preconditions id '{later.id}': each keeps its own window")
    states = read_states(raw.get("states"), path + ("states",), errors)
    for i, state in enumerate(raw["states"] if isinstance(raw.get("states"), list) else ()):
        if state in states and State(state) not in TERMINAL:  # Kestra hears every change of state
            errors.warn(
                path + ("states", i), f"a Tern Flow trigger hears executions as they end: {state} never matches"
            )
    return FlowTriggerSpec(
        inputs=read_mapping(raw.get("inputs"), path + ("inputs",), errors),
        labels=labels(raw.get("labels"), path + ("labels",)),
        conditions=conditions,
        states=states,
        preconditions=tuple(preconditions),
        stop_after=read_states(raw.get("stopAfter"), path + ("stopAfter",), errors),
    )


def _webhook(raw: Mapping[str, Any], path: Path, errors: ErrorCollector, labels: Any) -> WebhookSpec:
    key = raw.get("key")
    if not isinstance(key, str) or not key:
        errors.add(path + ("key",), "missing key: the secret part of the webhook's URL")
        key = ""
    return WebhookSpec(
        key=key,
        labels=labels(raw.get("labels"), path + ("labels",)),
        conditions=parse_conditions(raw.get("conditions"), path + ("conditions",), errors, kind="flow"),
        stop_after=read_states(raw.get("stopAfter"), path + ("stopAfter",), errors),
    )


PARSERS: dict[str, Callable[..., Any]] = {SCHEDULE[0]: _schedule, FLOW_TRIGGER[0]: _flow, WEBHOOK[0]: _webhook}


def parse_instant(value: Any) -> datetime:
    """An ISO-8601 date-time (YAML may already have read it as one); without an offset, UTC. ValueError if not."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time())
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    else:
        raise ValueError(f"'{value}' is not a date-time")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _backfill(value: Any, path: Path, errors: ErrorCollector, labels: Any) -> BackfillSpec | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.add(path, "must be a map with `start` (and `end`)")
        return None
    moments: dict[str, datetime | None] = {}
    for key in ("start", "end"):
        if value.get(key) is None:
            moments[key] = None
            continue
        try:
            moments[key] = parse_instant(value[key])
        except ValueError:
            errors.add(path + (key,), f"'{value[key]}' is not a date-time (ISO 8601, e.g. 2023-06-25T14:00:00Z)")
            return None
    check_keys(value, {"start", "end", "inputs", "labels"}, path, errors, "a backfill")
    start, end = moments["start"], moments["end"]
    if start is None:
        errors.add(path + ("start",), "missing start: the first date to run")
        return None
    if end is not None and end < start:
        errors.add(path + ("end",), f"{end.isoformat()} is before the start, {start.isoformat()}")
        return None
    return BackfillSpec(
        start,
        end,
        read_mapping(value.get("inputs"), path + ("inputs",), errors),
        labels(value.get("labels"), path + ("labels",)),
    )


# --- a Flow trigger's preconditions: Kestra's `preconditions`, and the older MultipleCondition ---------------
