"""Kestra's trigger `conditions` as frozen dataclasses, and whether they hold on a schedule's date or on an
execution that ended; condition_parsing.py reads them from a flow's YAML, every problem placed.

Each class follows its namesake in Kestra's `io.kestra.plugin.core.condition`: properties, defaults, bounds.
Templates are rendered, and expressions judged, by callables the caller passes in: no Jinja here.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date as Date
from datetime import datetime, time, timedelta
from typing import Any, TypeAlias, assert_never

from ..spec.errors import Path, format_path
from .javadates import zone
from .states import State

TRIGGER_DATE = "{{ trigger.date }}"  # every date condition's `date` unless it says otherwise, as in Kestra
DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")  # date.weekday() order
DAYS_IN_MONTH = ("FIRST", "SECOND", "THIRD", "FOURTH", "LAST")
COMPARISONS = ("EQUALS", "PREFIX", "SUFFIX")
STATES = tuple(s.value for s in State)
KESTRA_ONLY_STATES = ("RESTARTED", "RETRIED")  # in Kestra's State.Type, never reached in Tern


class ConditionError(ValueError):
    """A condition could not be evaluated (its date is not a date): the message names the condition."""


@dataclass(frozen=True)
class DayWeek:
    day_of_week: str  # MONDAY .. SUNDAY
    date: str = TRIGGER_DATE
    path: Path = field(default=(), compare=False, repr=False)  # for messages


@dataclass(frozen=True)
class DayWeekInMonth:
    day_of_week: str
    day_in_month: str  # FIRST .. FOURTH, LAST
    date: str = TRIGGER_DATE
    path: Path = field(default=(), compare=False, repr=False)  # for messages


@dataclass(frozen=True)
class DateTimeBetween:
    after: datetime | None = None
    before: datetime | None = None
    date: str = TRIGGER_DATE
    path: Path = field(default=(), compare=False, repr=False)  # for messages


@dataclass(frozen=True)
class TimeBetween:
    after: time | None = None  # with an offset as Kestra's OffsetTime, or without (a Tern leniency): see day_time_key
    before: time | None = None
    date: str = TRIGGER_DATE
    path: Path = field(default=(), compare=False, repr=False)  # for messages


@dataclass(frozen=True)
class Weekend:
    date: str = TRIGGER_DATE
    path: Path = field(default=(), compare=False, repr=False)  # for messages


@dataclass(frozen=True)
class PublicHoliday:
    country: str  # ISO 3166-1 alpha-2, or a template
    sub_division: str | None = None  # ISO 3166-2 without the country (CA for US-CA), or a template
    date: str = TRIGGER_DATE
    path: Path = field(default=(), compare=False, repr=False)  # for messages


@dataclass(frozen=True)
class Not:
    conditions: tuple[Condition, ...]  # holds when none of them holds
    path: Path = field(default=(), compare=False, repr=False)  # for messages


@dataclass(frozen=True)
class Or:
    conditions: tuple[Condition, ...]
    path: Path = field(default=(), compare=False, repr=False)  # for messages


@dataclass(frozen=True)
class Expression:
    expression: str
    path: Path = field(default=(), compare=False, repr=False)  # for messages


@dataclass(frozen=True)
class ExecutionStatus:
    in_: tuple[str, ...] | None = None  # None: any state; an empty list: none (Kestra's `in` is a nullable list)
    not_in: tuple[str, ...] | None = None
    path: Path = field(default=(), compare=False, repr=False)  # for messages


@dataclass(frozen=True)
class ExecutionFlow:
    namespace: str
    flow_id: str
    path: Path = field(default=(), compare=False, repr=False)  # for messages


@dataclass(frozen=True)
class ExecutionNamespace:
    namespace: str
    comparison: str = "EQUALS"  # EQUALS, PREFIX, SUFFIX; the legacy `prefix: true` is parsed into PREFIX
    path: Path = field(default=(), compare=False, repr=False)  # for messages


@dataclass(frozen=True)
class ExecutionLabels:
    labels: tuple[tuple[str, str], ...]  # (key, value) pairs, all of which the execution must carry
    path: Path = field(default=(), compare=False, repr=False)  # for messages


@dataclass(frozen=True)
class ExecutionOutputs:
    expression: str
    path: Path = field(default=(), compare=False, repr=False)  # for messages


@dataclass(frozen=True)
class HasRetryAttempt:
    in_: tuple[str, ...] | None = None  # the states an attempt may have, as ExecutionStatus
    not_in: tuple[str, ...] | None = None
    path: Path = field(default=(), compare=False, repr=False)  # for messages


# Each condition's `path` is where its flow says it: messages name it, equality ignores it.
Condition: TypeAlias = (
    DayWeek
    | DayWeekInMonth
    | DateTimeBetween
    | TimeBetween
    | Weekend
    | PublicHoliday
    | Not
    | Or
    | Expression
    | ExecutionStatus
    | ExecutionFlow
    | ExecutionNamespace
    | ExecutionLabels
    | ExecutionOutputs
    | HasRetryAttempt
)


@dataclass(frozen=True)
class EndedExecution:
    """What the execution conditions of a Flow trigger look at."""

    namespace: str
    flow_id: str
    state: str
    labels: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)
    attempts: tuple[tuple[str, ...], ...] = ()  # per task run, the states of its attempts (HasRetryAttempt)


# --- evaluation ---------------------------------------------------------------------------------------------

Render = Callable[[str], str]
Judge = Callable[[str], bool]


def schedule_conditions_hold(conditions: Iterable[Condition], *, render: Render, evaluate_expression: Judge) -> bool:
    """Whether every condition holds (`render` gives the templated dates); ConditionError if one cannot be
    evaluated. What `render` and `evaluate_expression` raise goes through unchanged."""
    return all(_holds(c, render, evaluate_expression, None) for c in conditions)


def execution_conditions_hold(
    conditions: Iterable[Condition], execution: EndedExecution, *, render: Render, evaluate_expression: Judge
) -> bool:
    """Whether every condition holds for `execution`. For ExecutionOutputs, `evaluate_expression` must see the
    execution's outputs as `trigger.outputs`, as Kestra's does."""
    return all(_holds(c, render, evaluate_expression, execution) for c in conditions)


def _holds(c: Condition, render: Render, judge: Judge, execution: EndedExecution | None) -> bool:
    match c:
        case Not() | Or():
            results = (_holds(child, render, judge, execution) for child in c.conditions)
            return any(results) if isinstance(c, Or) else not any(results)
        case Expression():
            return judge(c.expression)
        case DayWeek():
            return _local_date(c, render).weekday() == DAYS.index(c.day_of_week)
        case Weekend():
            return _local_date(c, render).weekday() >= DAYS.index("SATURDAY")
        case PublicHoliday():
            day = _local_date(c, render)
            try:
                calendar_ = holiday_calendar(render(c.country), render(c.sub_division) if c.sub_division else None)
            except ValueError as exc:
                raise ConditionError(f"{_name(c)}: {exc}") from None
            return day in calendar_
        case DayWeekInMonth():
            return _is_nth_weekday(_local_date(c, render), c.day_of_week, c.day_in_month)
        case DateTimeBetween():
            # Kestra: isAfter(after) && isBefore(before) on ZonedDateTimes: instants, both bounds excluded
            if c.after is None and c.before is None:
                raise ConditionError(f"{_name(c)}: needs `after`, `before` or both")
            moment = _moment(c, render)
            return (c.after is None or moment > c.after) and (c.before is None or moment < c.before)
        case TimeBetween():
            if c.after is None and c.before is None:
                raise ConditionError(f"{_name(c)}: needs `after`, `before` or both")
            moment = _moment(c, render)
            offset = moment.utcoffset() or timedelta()
            now = day_time_key(moment.time(), offset)
            after = None if c.after is None else day_time_key(c.after, offset)
            before = None if c.before is None else day_time_key(c.before, offset)
            return (after is None or now > after) and (before is None or now < before)  # both excluded
    if execution is None:
        raise ConditionError(f"{_name(c)}: is a condition on an ending execution, and there is none")
    match c:
        case ExecutionStatus():
            return _state_allowed(execution.state, c.in_, c.not_in)
        case ExecutionFlow():
            return execution.namespace == c.namespace and execution.flow_id == c.flow_id
        case ExecutionNamespace():
            if c.comparison == "PREFIX":
                return execution.namespace.startswith(c.namespace)
            if c.comparison == "SUFFIX":
                return execution.namespace.endswith(c.namespace)
            return execution.namespace == c.namespace
        case ExecutionLabels():
            return all(execution.labels.get(key) == value for key, value in c.labels)
        case ExecutionOutputs():
            return bool(execution.outputs) and judge(c.expression)  # Kestra: no outputs, false, not evaluated
        case HasRetryAttempt():
            # Kestra: any attempt, of a task run that has more than one, whose state passes in/notIn
            retried = (state for run in execution.attempts if len(run) > 1 for state in run)
            return any(_state_allowed(state, c.in_, c.not_in) for state in retried)
        case _:
            assert_never(c)


def holiday_calendar(country: str, sub_division: str | None = None) -> Any:
    """The public holidays of a country (python-holidays, as Kestra uses Jollyday); ValueError names a code
    it does not know. `sub_division` may be given whole (US-CA) or without its country (CA)."""
    import holidays

    country = country.strip().upper()
    division = sub_division.strip().upper().removeprefix(f"{country}-") if sub_division else None
    supported = holidays.list_supported_countries()
    if country not in supported:
        raise ValueError(f"'{country}' is not a country with a holiday calendar (ISO 3166-1 alpha-2, e.g. FR, US)")
    if division is not None and division not in supported[country]:
        raise ValueError(
            f"'{sub_division}' is not a subdivision of {country} ({', '.join(supported[country][:12])}, …)"
        )
    return holidays.country_holidays(country, subdiv=division)


def _state_allowed(state: str, in_: tuple[str, ...] | None, not_in: tuple[str, ...] | None) -> bool:
    return (in_ is None or state in in_) and (not_in is None or state not in not_in)


def _is_nth_weekday(day: Date, day_of_week: str, nth: str) -> bool:
    """Whether `day` is the FIRST..FOURTH or LAST `day_of_week` of its month (Kestra's TemporalAdjusters)."""
    if day.weekday() != DAYS.index(day_of_week):
        return False
    if nth == "LAST":
        return day.day + 7 > calendar.monthrange(day.year, day.month)[1]
    return (day.day - 1) // 7 == DAYS_IN_MONTH.index(nth)


def day_time_key(clock: time, date_offset: timedelta) -> timedelta:
    """A time of day as Kestra's OffsetTime compares it: applied to a common date, its offset taken away, with
    no wrapping past midnight (so 23:00-02:00 is after 01:00+00:00). A time without an offset (a Tern leniency:
    Kestra requires one) takes the date's, so it compares with the date's own local time of day."""
    offset = clock.utcoffset() if clock.tzinfo is not None else date_offset
    since_midnight = timedelta(hours=clock.hour, minutes=clock.minute, seconds=clock.second)
    return since_midnight + timedelta(microseconds=clock.microsecond) - (offset or timedelta())


def _name(c: Condition) -> str:
    return f"{format_path(c.path)} ({type(c).__name__})" if c.path else type(c).__name__


def _local_date(c: DayWeek | Weekend | DayWeekInMonth | PublicHoliday, render: Render) -> Date:
    """The rendered date's own calendar day: `2024-03-04T23:30-05:00` is the 4th, though the 5th in UTC."""
    text = render(c.date)
    try:
        return parse_local_date(text)
    except ValueError:
        raise ConditionError(f"{_name(c)}: date '{text}' is not {LOCAL_DATE}") from None


def _moment(c: DateTimeBetween | TimeBetween, render: Render) -> datetime:
    text = render(c.date)
    try:
        return parse_date_time(text)
    except ValueError:
        raise ConditionError(f"{_name(c)}: date '{text}' is not {DATE_TIME}") from None


# --- dates as Kestra's DateUtils reads them -----------------------------------------------------------------

DATE_TIME = "an ISO-8601 date-time with an offset (2024-01-31T09:30:00+01:00)"
LOCAL_DATE = f"a date (2024-01-31) or {DATE_TIME}"
TIME = "a time of day (09:30:00, or with an offset: 09:30:00+01:00)"
_OFFSET = r"(?:Z|[+-]\d{2}(?::\d{2}(?::\d{2})?)?)"
_CLOCK = r"\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?"
_DATE_TIME = re.compile(rf"(\d{{4}}-\d{{2}}-\d{{2}}T{_CLOCK}{_OFFSET})(?:\[([^\]]+)\])?", re.IGNORECASE | re.ASCII)
_TIME = re.compile(rf"{_CLOCK}{_OFFSET}?", re.IGNORECASE | re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def parse_date_time(text: str) -> datetime:
    """ZonedDateTime.parse: an ISO-8601 date-time with an offset, maybe followed by a `[Region/City]` (which
    keeps the instant and moves it to the region's time). ValueError if it is not one."""
    match = _DATE_TIME.fullmatch(text.strip())
    if match is None:
        raise ValueError(text)
    moment = datetime.fromisoformat(match.group(1).upper())  # ValueError on a 13th month
    if match.group(2):
        try:
            moment = moment.astimezone(zone(match.group(2)))
        except (OSError, OverflowError):  # ZoneInfo on a directory's name; a moment past year 9999
            raise ValueError(text) from None
    return moment


def parse_local_date(text: str) -> Date:
    """DateUtils.parseLocalDate: a plain date, else a date-time's own local date."""
    if _DATE.fullmatch(text.strip()):
        return Date.fromisoformat(text.strip())
    return parse_date_time(text).date()


def parse_time(text: str) -> time:
    """OffsetTime.parse, also taking a time without an offset."""
    if _TIME.fullmatch(text.strip()) is None:
        raise ValueError(text)
    return time.fromisoformat(text.strip().upper())
