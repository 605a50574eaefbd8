"""A Flow trigger's preconditions (Kestra's `preconditions`, and the older MultipleCondition): which of them an
ending execution meets, which window of time is current at an instant, and how one window's progress moves as
executions end. Pure: the caller stores the progress, and passes in how templates are rendered.

Each window is placed by the instant the execution ended, not by when it is looked at, so the live look and
a late one (the housekeeping sweep) reach the same answer. Windows are in UTC, as Kestra's server zone usually
is: DURATION_WINDOW tiles time from midnight (plus `windowAdvance`), SLIDING_WINDOW is the last `window` before
the newest execution counted, DAILY_TIME_DEADLINE runs from midnight to the deadline, DAILY_TIME_WINDOW from
its start time to its end time; outside the daily ones no window is open and nothing counts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import TypeAlias

from ..spec.errors import Path
from .conditions import Condition, EndedExecution, execution_conditions_hold
from .vocabulary import truthy

WINDOW_TYPES = ("DURATION_WINDOW", "SLIDING_WINDOW", "DAILY_TIME_DEADLINE", "DAILY_TIME_WINDOW")
DEFAULT_WINDOW = timedelta(days=1)  # Kestra's, for DURATION_WINDOW and SLIDING_WINDOW
ORIGIN = datetime(1970, 1, 1, tzinfo=UTC)  # a midnight: DURATION windows tile time from it (+ windowAdvance)
FIELDS = ("FLOW_ID", "NAMESPACE", "STATE", "EXPRESSION")
FILTER_TYPES = (
    "EQUAL_TO",
    "NOT_EQUAL_TO",
    "IN",
    "NOT_IN",
    "IS_TRUE",
    "IS_FALSE",
    "IS_NULL",
    "IS_NOT_NULL",
    "STARTS_WITH",
    "ENDS_WITH",
    "REGEX",
    "CONTAINS",
)
TAKE_VALUES = ("IN", "NOT_IN")  # with `values`; every other type takes a `value` (Kestra's validator)
OPERANDS = ("AND", "OR")


# --- what a Flow trigger says -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeWindow:
    type: str = "DURATION_WINDOW"
    window: timedelta | None = None  # DURATION_WINDOW, SLIDING_WINDOW; None: a day
    window_advance: timedelta | None = None  # DURATION_WINDOW: where its windows start, after midnight
    deadline: time | None = None  # DAILY_TIME_DEADLINE
    start_time: time | None = None  # DAILY_TIME_WINDOW
    end_time: time | None = None


@dataclass(frozen=True)
class UpstreamFlow:
    """One of `preconditions.flows`: an execution of this namespace (and flow), in these states, with these
    labels."""

    namespace: str
    flow_id: str | None = None
    states: tuple[str, ...] | None = None  # None: any
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Filter:
    field: str  # FIELDS
    type: str  # FILTER_TYPES
    value: str | None = None  # for EXPRESSION, the template rendered into the field's value
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExecutionFilter:
    """One of `preconditions.where`: its filters, all of them (AND) or any (OR)."""

    id: str
    filters: tuple[Filter, ...]
    operand: str = "AND"


Check: TypeAlias = UpstreamFlow | ExecutionFilter | Condition  # a MultipleCondition's are conditions


@dataclass(frozen=True)
class Preconditions:
    """Checks to be met, each by some ending execution, inside one window of time. `checks` carry Kestra's
    names: `condition_1`… for `flows`, `condition_3_<id>`… for `where`, a MultipleCondition's own keys."""

    id: str
    checks: tuple[tuple[str, Check], ...]
    time_window: TimeWindow = TimeWindow()
    reset_on_success: bool = True
    path: Path = field(default=(), compare=False, repr=False)  # for messages

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.checks)


# --- windows of time ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """[start, end) for the windows that tile time or a day; (start, end] for a sliding one, which ends at the
    newest execution it holds."""

    start: datetime
    end: datetime
    sliding: bool = False

    def __contains__(self, moment: object) -> bool:
        if not isinstance(moment, datetime):
            return False
        if self.sliding:
            return self.start < moment <= self.end
        return self.start <= moment < self.end


def window_at(time_window: TimeWindow, moment: datetime) -> Window | None:
    """The window `moment` falls in (a sliding one: the one that ends at it); None when no window is open
    then (after a daily deadline, outside a daily time window)."""
    moment = moment.astimezone(UTC)
    size = time_window.window or DEFAULT_WINDOW
    if time_window.type == "SLIDING_WINDOW":
        return Window(moment - size, moment, sliding=True)
    if time_window.type == "DURATION_WINDOW":
        origin = ORIGIN + (time_window.window_advance or timedelta())
        start = origin + size * ((moment - origin) // size)
        return Window(start, start + size)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if time_window.type == "DAILY_TIME_DEADLINE":
        start, end = midnight, midnight + _since_midnight(time_window.deadline)
    else:  # DAILY_TIME_WINDOW
        start, end = (
            midnight + _since_midnight(time_window.start_time),
            midnight + _since_midnight(time_window.end_time),
        )
    return Window(start, end) if moment in Window(start, end) else None


def _since_midnight(clock: time | None) -> timedelta:
    if clock is None:
        return timedelta()
    return timedelta(hours=clock.hour, minutes=clock.minute, seconds=clock.second, microseconds=clock.microsecond)


# --- which checks an execution meets ------------------------------------------------------------------------

Render = Callable[[str], str]
Judge = Callable[[str], bool]


def met_by(
    preconditions: Preconditions, execution: EndedExecution, *, render: Render, evaluate_expression: Judge
) -> tuple[frozenset[str], tuple[str, ...]]:
    """The names of the checks `execution` meets, and the problems of those that could not be evaluated (as
    Kestra, such a check is not met, and said)."""
    names, problems = set(), []
    for name, check in preconditions.checks:
        try:
            if meets(check, execution, render=render, evaluate_expression=evaluate_expression):
                names.add(name)
        except Exception as exc:  # a template's failure, a bad date: this check is not met, the others count
            problems.append(f"preconditions {preconditions.id}.{name}: {exc}")
    return frozenset(names), tuple(problems)


def meets(check: Check, execution: EndedExecution, *, render: Render, evaluate_expression: Judge) -> bool:
    if isinstance(check, UpstreamFlow):
        return _upstream_flow(check, execution)
    if isinstance(check, ExecutionFilter):
        results = (_filter(f, execution, render) for f in check.filters)
        return any(results) if check.operand == "OR" else all(results)
    return execution_conditions_hold((check,), execution, render=render, evaluate_expression=evaluate_expression)


def _upstream_flow(check: UpstreamFlow, execution: EndedExecution) -> bool:
    """Kestra's UpstreamFlowCondition: namespace, then flow, then states, then labels."""
    if execution.namespace != check.namespace:
        return False
    if check.flow_id is not None and execution.flow_id != check.flow_id:
        return False
    if check.states is not None and execution.state not in check.states:
        return False
    return all(execution.labels.get(key) == value for key, value in check.labels)


def _filter(f: Filter, execution: EndedExecution, render: Render) -> bool:
    """Kestra's FilterCondition on one field."""
    value: str | None
    if f.field == "FLOW_ID":
        value = execution.flow_id
    elif f.field == "NAMESPACE":
        value = execution.namespace
    elif f.field == "STATE":
        value = execution.state
    else:  # EXPRESSION
        value = render(f.value or "")
    return _compare(f, value)


def _compare(f: Filter, value: str | None) -> bool:
    wanted = f.value or ""
    match f.type:
        case "EQUAL_TO":
            return value == f.value
        case "NOT_EQUAL_TO":
            return value != f.value
        case "IN":
            return value in f.values
        case "NOT_IN":
            return value not in f.values
        case "IS_TRUE":
            return value is not None and truthy(value)
        case "IS_FALSE":
            return value is None or not truthy(value)
        case "IS_NULL":
            return value is None
        case "IS_NOT_NULL":
            return value is not None
        case "STARTS_WITH":
            return value is not None and value.startswith(wanted)
        case "ENDS_WITH":
            return value is not None and value.endswith(wanted)
        case "REGEX":
            return value is not None and re.fullmatch(wanted, value) is not None  # Java's String.matches
        case _:  # CONTAINS
            return value is not None and wanted in value


# --- one window's progress ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Met:
    execution_id: str
    ended: datetime


@dataclass(frozen=True)
class Progress:
    """What one precondition has met: in which window, by which execution; and which executions it has
    counted already (`seen`, with when they ended), so that a second look at one counts it no more."""

    window: Window | None = None
    met: Mapping[str, Met] = field(default_factory=dict)
    seen: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    progress: Progress
    counted: bool  # the execution met a check inside its window, and was not counted before
    complete: bool  # every check is met inside that window


def record(
    preconditions: Preconditions,
    progress: Progress,
    execution_id: str,
    ended: datetime,
    names: Iterable[str],
    forget_before: datetime | None = None,
) -> Step:
    """The progress once an execution that ended at `ended` and met the checks `names` is counted.

    1. An execution counted already counts no more (a second look: the sweep after the live event).
    2. Its window is the one open when it ended; with none open, it counts nowhere.
    3. A window that has ended takes what it met with it; an execution of a window older than the one held
       (looked at late) counts nowhere.
    4. Each check it meets is met by it, unless an execution that ended later met it already.
    5. A sliding window keeps what was met in the last `window` before the newest execution it holds.
    `seen` forgets executions that ended before `forget_before`: no look reaches back that far."""
    seen = {key: moment for key, moment in progress.seen.items() if forget_before is None or moment >= forget_before}
    progress = Progress(progress.window, progress.met, seen)
    if execution_id in seen:
        return Step(progress, counted=False, complete=False)
    window = window_at(preconditions.time_window, ended)
    if window is None:
        return Step(progress, counted=False, complete=False)
    met = dict(progress.met)
    if not window.sliding and progress.window != window:
        if progress.window is not None and not progress.window.sliding and progress.window.start > window.start:
            return Step(progress, counted=False, complete=False)
        met = {}
    wanted = set(names) & set(preconditions.names)
    for name in wanted:
        if name not in met or met[name].ended <= ended:
            met[name] = Met(execution_id, ended)
    if window.sliding:
        newest = max([ended, *(m.ended for m in met.values())])
        window = Window(newest - (preconditions.time_window.window or DEFAULT_WINDOW), newest, sliding=True)
        met = {name: m for name, m in met.items() if m.ended in window}
    counted = bool(wanted) and ended in window
    if counted:
        seen[execution_id] = ended
    complete = all(name in met for name in preconditions.names)
    return Step(Progress(window, met, seen), counted=counted, complete=complete)


def reset(progress: Progress) -> Progress:
    """After the trigger fired (resetOnSuccess): nothing is met any more; what was counted stays counted."""
    return Progress(progress.window, {}, progress.seen)
