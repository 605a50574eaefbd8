"""Trigger conditions: every Kestra name of a condition parses, each mistake is refused at its place, and each
condition holds exactly when Kestra's would (its excluded bounds, its calendar, the date's own offset)."""

from __future__ import annotations

import calendar
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows_app.engine.condition_parsing import NAMES, REFUSED, SPECS, parse_conditions
from flows_app.engine.conditions import (
    Condition,
    ConditionError,
    DateTimeBetween,
    DayWeek,
    DayWeekInMonth,
    EndedExecution,
    ExecutionFlow,
    ExecutionLabels,
    ExecutionNamespace,
    ExecutionOutputs,
    ExecutionStatus,
    Expression,
    HasRetryAttempt,
    Not,
    Or,
    PublicHoliday,
    TimeBetween,
    Weekend,
    execution_conditions_hold,
    schedule_conditions_hold,
)
from flows_app.spec.errors import ErrorCollector
from flows_app.spec.yamlsource import load_yaml

P, OLD = "io.kestra.plugin.core.condition.", "io.kestra.core.models.conditions.types."
AT = ("triggers", 0, "conditions")
WEEKEND, DAY_WEEK, NOT, OR = P + "Weekend", P + "DayWeek", P + "Not", P + "Or"
STATES = "CREATED, QUEUED, RUNNING, PAUSED, RETRYING, SUCCESS, WARNING, FAILED, KILLING, KILLED, SKIPPED, CANCELLED"
LOCAL_DATE = "a date (2024-01-31) or an ISO-8601 date-time with an offset (2024-01-31T09:30:00+01:00)"
DATE_TIME = "an ISO-8601 date-time with an offset (2024-01-31T09:30:00+01:00)"
PLUS_2 = timezone(timedelta(hours=2))


def parse(value, kind="schedule", lines=None):
    errors = ErrorCollector(lines=lines or {})
    parsed = parse_conditions(value, AT, errors, kind=kind)
    return parsed, [str(e) for e in errors.errors], [str(w) for w in errors.warnings]


def one(raw, kind="schedule"):
    parsed, errors, _ = parse([raw], kind)
    assert errors == []
    (condition,) = parsed
    return condition


def errors_of(raw, kind="schedule"):
    return parse([raw], kind)[1]


def on(moment):
    """A renderer that knows one variable, as Tern's would with a trigger's date."""
    return lambda text: text.replace("{{ trigger.date }}", moment)


def no_expression(text):
    raise AssertionError(f"no expression should be judged here: {text}")


def holds_on(moment, *raws):
    conditions = tuple(one(raw) for raw in raws)
    return schedule_conditions_hold(conditions, render=on(moment), evaluate_expression=no_expression)


def ended(state="SUCCESS", namespace="company.team", flow_id="etl", **fields):
    return EndedExecution(namespace=namespace, flow_id=flow_id, state=state, **fields)


def holds_for(execution, *raws, judge=no_expression):
    conditions = tuple(one(raw, "flow") for raw in raws)
    return execution_conditions_hold(conditions, execution, render=on("unused"), evaluate_expression=judge)


# --- every name of every condition ------------------------------------------------------------------------

# Kestra's current name and the two of its @Plugin(aliases), as each class in io.kestra.plugin.core.condition says
KESTRA_NAMES = {
    short: [P + short, OLD + short + "Condition", P + short + "Condition"]
    for short in [
        "DayWeek",
        "DayWeekInMonth",
        "DateTimeBetween",
        "TimeBetween",
        "Weekend",
        "PublicHoliday",
        "Not",
        "Or",
        "ExecutionStatus",
        "ExecutionFlow",
        "ExecutionNamespace",
        "ExecutionLabels",
        "ExecutionOutputs",
        "HasRetryAttempt",
    ]
}
KESTRA_NAMES["Expression"] = [P + "Expression", OLD + "VariableCondition", P + "ExpressionCondition"]

MINIMAL = {
    "DayWeek": ({"dayOfWeek": "MONDAY"}, "schedule", DayWeek("MONDAY")),
    "DayWeekInMonth": ({"dayOfWeek": "MONDAY", "dayInMonth": "LAST"}, "schedule", DayWeekInMonth("MONDAY", "LAST")),
    "DateTimeBetween": (
        {"after": "2024-01-01T00:00:00Z"},
        "schedule",
        DateTimeBetween(datetime(2024, 1, 1, tzinfo=UTC)),
    ),
    "TimeBetween": ({"before": "08:00:00+02:00"}, "schedule", TimeBetween(before=time(8, tzinfo=PLUS_2))),
    "Weekend": ({"date": "{{ execution.startDate }}"}, "schedule", Weekend("{{ execution.startDate }}")),
    "PublicHoliday": ({"country": "FR", "subDivision": "57"}, "schedule", PublicHoliday("FR", "57")),
    "Not": ({"conditions": [{"type": WEEKEND}]}, "schedule", Not((Weekend(),))),
    "Or": ({"conditions": [{"type": WEEKEND}]}, "schedule", Or((Weekend(),))),
    "Expression": ({"expression": "{{ inputs.go }}"}, "flow", Expression("{{ inputs.go }}")),
    "ExecutionStatus": ({"in": ["SUCCESS"], "notIn": []}, "flow", ExecutionStatus(("SUCCESS",), ())),
    "ExecutionFlow": ({"namespace": "company.team", "flowId": "etl"}, "flow", ExecutionFlow("company.team", "etl")),
    "ExecutionNamespace": ({"namespace": "company", "prefix": True}, "flow", ExecutionNamespace("company", "PREFIX")),
    "ExecutionLabels": ({"labels": {"owner": "alice"}}, "flow", ExecutionLabels((("owner", "alice"),))),
    "ExecutionOutputs": ({"expression": "{{ outputs.code }}"}, "flow", ExecutionOutputs("{{ outputs.code }}")),
    "HasRetryAttempt": ({"notIn": ["SUCCESS"]}, "flow", HasRetryAttempt(not_in=("SUCCESS",))),
}


@pytest.mark.parametrize(
    ("short", "name"), [(short, name) for short, names in KESTRA_NAMES.items() for name in names], ids=str
)
def test_a_condition_parses_under_each_of_its_kestra_names(short, name):
    raw, kind, expected = MINIMAL[short]
    condition = one({"type": name, **raw}, kind)
    assert condition == expected
    assert condition.path == (*AT, 0)


def test_tern_knows_no_other_names_and_no_weekday_condition():
    assert sorted(NAMES) == sorted(name for names in KESTRA_NAMES.values() for name in names)
    assert errors_of({"type": P + "Weekday"}) == [
        "triggers[0].conditions[0].type: unknown condition type 'io.kestra.plugin.core.condition.Weekday'; "
        "did you mean 'io.kestra.plugin.core.condition.Weekend'?"
    ]


def test_the_date_defaults_to_the_trigger_date_and_may_be_literal():
    assert one({"type": DAY_WEEK, "dayOfWeek": "MONDAY"}).date == "{{ trigger.date }}"
    assert one({"type": DAY_WEEK, "dayOfWeek": "MONDAY", "date": "2024-03-04"}).date == "2024-03-04"


def test_no_conditions_is_an_empty_tuple():
    assert parse(None) == ((), [], [])
    assert parse([]) == ((), [], [])


# --- mistakes, each at its place --------------------------------------------------------------------------

BAD = [
    ({"type": DAY_WEEK, "dayOfWeek": "MONDY"}, "dayOfWeek: 'MONDY' is not a day of the week (MONDAY … SUNDAY)"),
    ({"type": DAY_WEEK, "dayOfWeek": "monday"}, "dayOfWeek: 'monday' is not a day of the week (MONDAY … SUNDAY)"),
    ({"type": DAY_WEEK}, "dayOfWeek: missing dayOfWeek: a day of the week (MONDAY … SUNDAY)"),
    (
        {"type": P + "DayWeekInMonth", "dayOfWeek": "FRIDAY", "dayInMonth": "FIFTH"},
        "dayInMonth: 'FIFTH' is not a day in the month (FIRST, SECOND, THIRD, FOURTH, LAST)",
    ),
    ({"type": WEEKEND, "date": "2024-02-30"}, f"date: '2024-02-30' is not {LOCAL_DATE}"),
    ({"type": WEEKEND, "date": "2024-01-31T09:30:00"}, f"date: '2024-01-31T09:30:00' is not {LOCAL_DATE}"),
    (
        {"type": WEEKEND, "date": "2024-01-31T09:30Z[Mars/Olympus]"},
        f"date: '2024-01-31T09:30Z[Mars/Olympus]' is not {LOCAL_DATE}",
    ),
    ({"type": WEEKEND, "date": "2024-01-31T09:30Z[Europe]"}, f"date: '2024-01-31T09:30Z[Europe]' is not {LOCAL_DATE}"),
    (  # the instant, moved to the region, would be past year 9999
        {"type": WEEKEND, "date": "9999-12-31T23:00:00-05:00[UTC]"},
        f"date: '9999-12-31T23:00:00-05:00[UTC]' is not {LOCAL_DATE}",
    ),
    ({"type": WEEKEND, "date": "٢٠٢٤-٠١-٣١"}, f"date: '٢٠٢٤-٠١-٣١' is not {LOCAL_DATE}"),
    (
        {"type": WEEKEND, "date": 20240131},
        f"date: '20240131' is not {LOCAL_DATE}, nor a template such as '{{{{ trigger.date }}}}'",
    ),
    ({"type": P + "DateTimeBetween", "after": "2024-01-01"}, f"after: '2024-01-01' is not {DATE_TIME}"),
    (
        {"type": P + "DateTimeBetween", "before": "2024-01-01T00:00Z", "date": "2024-01-31"},
        f"date: '2024-01-31' is not {DATE_TIME}",
    ),
    ({"type": P + "DateTimeBetween"}, "triggers[0].conditions[0]: DateTimeBetween needs `after`, `before` or both"),
    (
        {"type": P + "TimeBetween", "after": "25:00"},
        "after: '25:00' is not a time of day (09:30:00, or with an offset: 09:30:00+01:00)",
    ),
    (
        {"type": DAY_WEEK, "dayOfWeek": "MONDAY", "dayOfweek": "X"},
        "dayOfweek: unknown property of DayWeek; did you mean 'dayOfWeek'?",
    ),
    ({"type": P + "ExecutionStatus", "in": "SUCCESS"}, f"in: must be a list of states ({STATES})"),
    ({"type": P + "ExecutionStatus", "notIn": ["FAILED", "SUCESS"]}, f"notIn[1]: 'SUCESS' is not a state ({STATES})"),
    ({"type": P + "HasRetryAttempt", "in": ["failed"]}, f"in[0]: 'failed' is not a state ({STATES})"),
    ({"type": P + "ExecutionFlow", "namespace": "company.team"}, "flowId: missing flowId"),
    ({"type": P + "ExecutionFlow", "namespace": 42, "flowId": "etl"}, "namespace: '42' is not a text"),
    (
        {"type": P + "ExecutionNamespace", "namespace": "company", "comparison": "CONTAINS"},
        "comparison: 'CONTAINS' is not a comparison (EQUALS, PREFIX, SUFFIX)",
    ),
    (
        {"type": P + "ExecutionNamespace", "namespace": "company", "prefix": "yes"},
        "prefix: 'yes' is not a boolean (true or false)",
    ),
    ({"type": P + "ExecutionLabels"}, "labels: missing labels"),
    (
        {"type": P + "ExecutionLabels", "labels": "owner=alice"},
        "labels: must be a map of key: value, or a list of {key, value}",
    ),
    (
        {"type": P + "ExecutionLabels", "labels": [{"key": "owner"}]},
        "labels[0]: a label must be a map with `key` and `value`",
    ),
    (
        {"type": P + "ExecutionLabels", "labels": {"owner": ["alice"]}},
        "labels.owner: 'owner: ['alice']' is not a label (a text, number or boolean for its key and value)",
    ),
    (
        {"type": P + "ExecutionLabels", "labels": [{"key": "system.correlationId", "value": "x"}]},
        "labels[0]: label 'system.correlationId': the `system.` prefix is reserved",
    ),
    ({"type": P + "Expression"}, "expression: missing expression"),
    ({"type": P + "ExecutionOutputs", "expression": " "}, "expression: ' ' is not a text"),
    ({"type": NOT, "conditions": []}, "conditions: must be a non-empty list of conditions"),
    ({"type": OR}, "conditions: missing conditions"),
    (
        {"type": NOT, "conditions": [{"type": OR, "conditions": [{"type": DAY_WEEK, "dayOfWeek": "X"}]}]},
        "conditions[0].conditions[0].dayOfWeek: 'X' is not a day of the week (MONDAY … SUNDAY)",
    ),
    ("Weekend", "triggers[0].conditions[0]: a condition must be a map with a `type`"),
    ({"dayOfWeek": "MONDAY"}, "triggers[0].conditions[0]: a condition must be a map with a `type`"),
    (
        {"type": P + "DayWek"},
        "type: unknown condition type 'io.kestra.plugin.core.condition.DayWek'; "
        "did you mean 'io.kestra.plugin.core.condition.DayWeek'?",
    ),
    (
        {"type": "Weekend"},
        "type: unknown condition type 'Weekend'; did you mean 'io.kestra.plugin.core.condition.Weekend'?",
    ),
    ({"type": 7}, "type: unknown condition type '7'"),
]


@pytest.mark.parametrize(("raw", "message"), BAD, ids=lambda v: str(v)[:60])
def test_a_mistake_is_refused_at_its_place(raw, message):
    kind = "flow" if any(name in str(raw) for name in ("Execution", "HasRetry")) else "schedule"
    expected = message if message.startswith("triggers[") else f"triggers[0].conditions[0].{message}"
    assert errors_of(raw, kind) == [expected]
    assert parse([raw], kind)[0] == ()  # a condition with a mistake is not half-built


def test_an_unknown_property_is_refused_besides_a_missing_one():
    assert errors_of({"type": DAY_WEEK, "dayofweek": "MONDAY"}) == [
        "triggers[0].conditions[0].dayofweek: unknown property of DayWeek; did you mean 'dayOfWeek'?",
        "triggers[0].conditions[0].dayOfWeek: missing dayOfWeek: a day of the week (MONDAY … SUNDAY)",
    ]


def test_conditions_that_are_not_a_list_are_refused():
    assert parse({"type": WEEKEND}) == (
        (),
        ["triggers[0].conditions: must be a list of conditions, each a map with a `type`"],
        [],
    )


def test_the_good_conditions_of_a_list_survive_a_bad_one():
    parsed, errors, _ = parse([{"type": WEEKEND}, {"type": DAY_WEEK}, {"type": DAY_WEEK, "dayOfWeek": "FRIDAY"}])
    assert parsed == (Weekend(), DayWeek("FRIDAY"))
    assert [p.path for p in parsed] == [(*AT, 0), (*AT, 2)]
    assert len(errors) == 1


def test_an_error_carries_the_line_of_its_yaml():
    source = "conditions:\n  - type: io.kestra.plugin.core.condition.DayWeek\n    dayOfWeek: MONDY\n"
    data, lines, _ = load_yaml(source)
    errors = ErrorCollector(lines=lines)
    parse_conditions(data["conditions"], ("conditions",), errors, kind="schedule")
    assert [str(e) for e in errors.errors] == [
        "conditions[0].dayOfWeek: 'MONDY' is not a day of the week (MONDAY … SUNDAY) (line 3)"
    ]


def test_times_and_dates_in_yaml_stay_text_and_parse():
    source = "- type: io.kestra.plugin.core.condition.TimeBetween\n  after: 08:00:00\n  date: 2024-01-31T09:30:00Z\n"
    data, _, _ = load_yaml(source)
    assert parse(data)[0] == (TimeBetween(after=time(8), date="2024-01-31T09:30:00Z"),)


@pytest.mark.parametrize("name", [P + "PublicHoliday", OLD + "PublicHolidayCondition", P + "PublicHolidayCondition"])
def test_a_public_holiday_answers_to_each_of_its_names(name):
    assert one({"type": name, "country": "FR"}) == PublicHoliday("FR")


@pytest.mark.parametrize(
    ("moment", "country", "division", "expected"),
    [
        ("2026-07-14T09:00:00+02:00", "FR", None, True),  # Bastille Day
        ("2026-07-15T09:00:00+02:00", "FR", None, False),
        ("2026-07-13T23:30:00-02:00", "FR", None, False),  # the 14th in UTC, the 13th where the date was given
        ("2026-12-26", "DE", None, True),  # Boxing Day: a German holiday, not an American one
        ("2026-12-26", "US", None, False),
        ("2026-03-31", "US", "CA", True),  # Cesar Chavez Day: California's, not the nation's
        ("2026-03-31", "US", "US-CA", True),
        ("2026-03-31", "US", "NY", False),
    ],
)
def test_a_public_holiday_holds_on_the_countrys_holidays_only(moment, country, division, expected):
    raw = {"type": P + "PublicHoliday", "country": country, **({"subDivision": division} if division else {})}
    assert holds_on(moment, raw) is expected


def test_not_public_holiday_keeps_the_work_days_of_kestras_example():
    raw = {"type": NOT, "conditions": [{"type": P + "PublicHoliday", "country": "US"}]}
    assert holds_on("2026-12-25T16:00:00-06:00", raw) is False and holds_on("2026-12-18T16:00:00-06:00", raw)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({}, "triggers[0].conditions[0].country: missing country"),
        (
            {"country": "XX"},
            "triggers[0].conditions[0].country: 'XX' is not a country with a holiday calendar (ISO 3166-1 alpha-2, "
            "e.g. FR, US)",
        ),
        ({"country": "US", "subDivision": "ZZ"}, "triggers[0].conditions[0].subDivision: 'ZZ' is not a subdivision"),
    ],
)
def test_a_public_holiday_with_an_unknown_country_or_subdivision_is_refused_where_it_is_written(raw, error):
    (found,) = errors_of({"type": P + "PublicHoliday", **raw})
    assert found.startswith(error)


def test_a_templated_country_is_checked_when_the_condition_is_evaluated():
    condition = one({"type": P + "PublicHoliday", "country": "{{ trigger.country }}"})
    render = lambda text: text.replace("{{ trigger.country }}", "XX").replace("{{ trigger.date }}", "2026-01-01")  # noqa: E731
    with pytest.raises(ConditionError, match="'XX' is not a country"):
        schedule_conditions_hold((condition,), render=render, evaluate_expression=no_expression)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        (
            P + "MultipleCondition",
            "MultipleCondition is not taken in `conditions` by Tern: give the Flow trigger `preconditions`",
        ),
        (
            OLD + "MultipleCondition",
            "MultipleCondition is not taken in `conditions` by Tern: give the Flow trigger `preconditions`",
        ),
        (OLD + "FlowCondition", "FlowCondition (deprecated in Kestra) is not supported by Tern: use ExecutionFlow"),
        (
            P + "FlowNamespaceCondition",
            "FlowNamespaceCondition (deprecated in Kestra) is not supported by Tern: use ExecutionNamespace",
        ),
    ],
)
def test_other_kestra_conditions_are_refused_with_what_to_use(name, why):
    assert set(REFUSED) >= {name}
    assert errors_of({"type": name}, "flow") == [f"triggers[0].conditions[0].type: {why}"]


SCHEDULE_TAKES = "DayWeek, DayWeekInMonth, DateTimeBetween, TimeBetween, Weekend, PublicHoliday, Expression, Not, Or"
FLOW_TAKES = (
    "ExecutionStatus, ExecutionFlow, ExecutionNamespace, ExecutionLabels, ExecutionOutputs, HasRetryAttempt, "
    "Expression, Not, Or"
)


@pytest.mark.parametrize("short", [s for s, (_, kind, _) in MINIMAL.items() if kind == "flow" and s != "Expression"])
def test_an_execution_condition_on_a_schedule_is_refused(short):
    raw, _, _ = MINIMAL[short]
    assert errors_of({"type": P + short, **raw}, "schedule") == [
        f"triggers[0].conditions[0].type: {short} is a condition on an ending execution; "
        f"a Schedule trigger takes date conditions: {SCHEDULE_TAKES}"
    ]


@pytest.mark.parametrize("short", ["DayWeek", "DayWeekInMonth", "DateTimeBetween", "TimeBetween", "Weekend"])
def test_a_date_condition_on_a_flow_trigger_is_refused(short):
    raw, _, _ = MINIMAL[short]
    assert errors_of({"type": OLD + short + "Condition", **raw}, "flow") == [
        f"triggers[0].conditions[0].type: {short} is a condition on a schedule's date; "
        f"a Flow trigger takes conditions on the ending execution: {FLOW_TAKES}"
    ]


def test_a_wrong_kind_inside_an_or_is_refused_where_it_is():
    raw = {"type": OR, "conditions": [{"type": WEEKEND}, {"type": P + "ExecutionStatus", "in": ["FAILED"]}]}
    (message,) = errors_of(raw)
    assert message.startswith("triggers[0].conditions[0].conditions[1].type: ExecutionStatus is a condition on an")


def test_expression_not_and_or_go_on_both_kinds():
    for kind in ("schedule", "flow"):
        raw = {"type": NOT, "conditions": [{"type": OR, "conditions": [{"type": P + "Expression", "expression": "x"}]}]}
        assert one(raw, kind) == Not((Or((Expression("x"),)),))


def test_a_kestra_state_tern_never_reaches_warns_but_parses():
    parsed, errors, warnings = parse([{"type": P + "ExecutionStatus", "notIn": ["RETRIED"]}], "flow")
    assert (parsed, errors) == ((ExecutionStatus(not_in=("RETRIED",)),), [])
    assert warnings == ["triggers[0].conditions[0].notIn[0]: a Tern execution is never RETRIED: this never matches"]


def test_an_empty_window_warns_that_it_never_holds():
    _, errors, warnings = parse([{"type": P + "TimeBetween", "after": "22:00", "before": "06:00"}])
    assert errors == []
    assert warnings == [
        "triggers[0].conditions[0]: never holds: `after` 22:00:00 is not before `before` 06:00:00 "
        "(it does not wrap past midnight: use an Or of two TimeBetween)"
    ]
    window = {"type": P + "DateTimeBetween", "after": "2024-02-01T00:00Z", "before": "2024-01-01T00:00Z"}
    assert len(parse([window])[2]) == 1
    mixed = {"type": P + "TimeBetween", "after": "07:00+00:00", "before": "06:00"}  # depends on the date's offset
    assert parse([mixed])[2] == []


# --- schedule conditions ----------------------------------------------------------------------------------


def day(name):
    return {"type": DAY_WEEK, "dayOfWeek": name}


@pytest.mark.parametrize(
    ("moment", "day_of_week", "holds"),
    [
        ("2013-09-08", "SUNDAY", True),  # Kestra's DayWeekTest
        ("2013-09-08", "MONDAY", False),
        ("2024-03-04T23:30:00-05:00", "MONDAY", True),  # Tuesday already in UTC: the date's own calendar counts
        ("2024-03-04T23:30:00-05:00", "TUESDAY", False),
        ("2024-03-05T00:30:00+01:00[Europe/Paris]", "TUESDAY", True),  # still Monday in UTC
        ("2024-03-04T23:30:00Z[Europe/Paris]", "TUESDAY", True),  # the instant, moved to Paris: 00:30 on Tuesday
        ("2024-03-04T12:00:00.123456789+05:30", "MONDAY", True),  # Java prints nanoseconds
    ],
)
def test_day_week_is_checked_on_the_dates_own_calendar(moment, day_of_week, holds):
    assert holds_on(moment, day(day_of_week)) is holds


@pytest.mark.parametrize(
    ("moment", "holds"),
    [
        ("2024-03-09", True),
        ("2024-03-10T23:59:59Z", True),
        ("2024-03-08", False),
        ("2024-03-08T23:30:00-02:00", False),  # Saturday in UTC, Friday where it happens
        ("2024-03-09T00:30:00+02:00", True),  # Friday in UTC
        ("2024-03-11T00:00:00+00:00", False),
    ],
)
def test_weekend_is_saturday_and_sunday_where_the_date_is(moment, holds):
    assert holds_on(moment, {"type": WEEKEND}) is holds


def in_month(day_of_week, nth):
    return {"type": P + "DayWeekInMonth", "dayOfWeek": day_of_week, "dayInMonth": nth}


@pytest.mark.parametrize(
    ("moment", "day_of_week", "nth", "holds"),
    [
        # Kestra's DayWeekInMonthTest
        ("2021-04-01", "MONDAY", "FIRST", False),
        ("2021-04-05", "MONDAY", "FIRST", True),
        ("2021-04-01", "THURSDAY", "FIRST", True),
        ("2021-04-01", "MONDAY", "LAST", False),
        ("2021-04-26", "MONDAY", "LAST", True),
        ("2021-04-12", "MONDAY", "SECOND", True),
        ("2021-04-19", "MONDAY", "THIRD", True),
        ("2021-04-26", "MONDAY", "FOURTH", True),
        # the last Monday across month lengths
        ("2021-02-22", "MONDAY", "LAST", True),  # 28 days, begun on a Monday: four Mondays
        ("2021-02-22", "MONDAY", "FOURTH", True),
        ("2021-02-15", "MONDAY", "LAST", False),
        ("2016-02-29", "MONDAY", "LAST", True),  # a leap day, the fifth Monday
        ("2016-02-29", "MONDAY", "FOURTH", False),
        ("2016-02-22", "MONDAY", "LAST", False),
        ("2016-02-22", "MONDAY", "FOURTH", True),
        ("2024-02-26", "MONDAY", "LAST", True),  # leap February with four Mondays
        ("2024-04-29", "MONDAY", "LAST", True),  # 30 days
        ("2024-04-22", "MONDAY", "LAST", False),
        ("2024-03-25", "MONDAY", "LAST", True),  # 31 days, a week from the 25th is April
        ("2022-01-24", "MONDAY", "LAST", False),  # 31 days, and the 31st is a Monday
        ("2022-01-31", "MONDAY", "LAST", True),
        ("2022-01-31", "TUESDAY", "LAST", False),
        # where the date happens, not UTC
        ("2024-03-25T23:30:00-05:00", "MONDAY", "LAST", True),  # Tuesday the 26th in UTC
        ("2024-04-01T00:30:00+02:00", "MONDAY", "FIRST", True),  # Sunday March 31 in UTC
        ("2024-03-31T23:30:00Z[Europe/Paris]", "MONDAY", "FIRST", True),  # Paris is already in April
    ],
)
def test_day_week_in_month(moment, day_of_week, nth, holds):
    assert holds_on(moment, in_month(day_of_week, nth)) is holds


def between(**bounds):
    return {"type": P + "DateTimeBetween", **bounds}


@pytest.mark.parametrize(
    ("moment", "bounds", "holds"),
    [
        ("2024-01-01T08:30:00Z", {"after": "2024-01-01T08:00:00Z"}, True),
        ("2024-01-01T08:00:00Z", {"after": "2024-01-01T08:00:00Z"}, False),  # isAfter: the bound is excluded
        ("2024-01-01T07:59:59Z", {"after": "2024-01-01T08:00:00Z"}, False),
        ("2024-01-01T08:00:00Z", {"before": "2024-01-01T08:00:00Z"}, False),  # isBefore: excluded too
        ("2024-01-01T07:59:59.999999Z", {"before": "2024-01-01T08:00:00Z"}, True),
        ("2024-06-01T00:00:00Z", {"after": "2024-01-01T00:00:00Z", "before": "2024-12-31T23:30:00Z"}, True),
        ("2024-12-31T23:30:00Z", {"after": "2024-01-01T00:00:00Z", "before": "2024-12-31T23:30:00Z"}, False),
        # instants, not the fields as written
        ("2024-01-01T09:30:00+01:00", {"after": "2024-01-01T08:00:00Z"}, True),
        ("2024-01-01T09:30:00+01:00", {"after": "2024-01-01T09:00:00Z"}, False),
        ("2024-01-01T10:00:00+02:00", {"before": "2024-01-01T08:00:01Z"}, True),
        ("2024-01-01T09:00:00+01:00[Europe/Paris]", {"after": "2024-01-01T07:59:00Z"}, True),
    ],
)
def test_date_time_between_compares_instants_and_excludes_its_bounds(moment, bounds, holds):
    assert holds_on(moment, between(**bounds)) is holds


def time_between(**bounds):
    return {"type": P + "TimeBetween", **bounds}


@pytest.mark.parametrize(
    ("moment", "bounds", "holds"),
    [
        # Kestra's TimeBetweenTest
        ("2024-02-21T16:19:12+02:00", {"after": "16:19:11+02:00"}, True),
        ("2024-02-21T16:19:12+02:00", {"after": "17:19:12+02:00"}, False),
        ("2024-02-21T16:19:12+02:00", {"after": "16:18:12+02:00", "before": "16:20:12+02:00"}, True),
        ("2024-02-21T16:19:12+02:00", {"before": "16:20:12+02:00"}, True),
        ("2024-02-21T16:19:12+02:00", {"before": "16:18:12+02:00"}, False),
        ("2024-02-21T16:19:12+02:00", {"after": "16:19:12+02:00"}, False),  # excluded
        ("2024-02-21T16:19:12+02:00", {"before": "16:19:12+02:00"}, False),
        # a bound with an offset compares as Kestra's OffsetTime: the instant on a common day
        ("2024-02-21T16:19:12+02:00", {"after": "15:00:00+00:00"}, False),  # 14:19 UTC
        ("2024-02-21T16:19:12+02:00", {"after": "14:00:00Z"}, True),
        # ... with no wrapping past midnight: 23:30-02:00 is 25:30 UTC on that common day
        ("2024-02-21T23:30:00-02:00", {"after": "01:00:00+00:00"}, True),
        ("2024-02-21T23:30:00-02:00", {"before": "02:00:00+00:00"}, False),
        # a bound without one is a time of day where the date happens
        ("2024-02-21T16:19:12+02:00", {"after": "15:00:00"}, True),
        ("2024-02-21T08:30:00+05:30", {"after": "08:00", "before": "09:00"}, True),
        ("2024-02-21T08:30:00+05:30[Asia/Kolkata]", {"after": "08:31"}, False),
        ("2024-07-01T08:30:00Z[Europe/Paris]", {"after": "10:00", "before": "11:00"}, True),  # 10:30 in Paris
        ("2024-02-21T22:30:00Z", {"after": "22:00", "before": "06:00"}, False),  # never: Kestra does not wrap
    ],
)
def test_time_between(moment, bounds, holds):
    assert holds_on(moment, time_between(**bounds)) is holds


def test_not_holds_when_none_of_its_conditions_holds():
    weekdays = {"type": NOT, "conditions": [{"type": WEEKEND}]}
    assert holds_on("2024-03-04", weekdays) is True
    assert holds_on("2024-03-09", weekdays) is False
    neither = {"type": NOT, "conditions": [day("MONDAY"), day("TUESDAY")]}
    assert [holds_on(d, neither) for d in ("2024-03-04", "2024-03-05", "2024-03-06")] == [False, False, True]


def test_or_holds_when_one_of_its_conditions_holds():
    monday_or_sunday = {"type": OR, "conditions": [day("MONDAY"), day("SUNDAY")]}
    assert [holds_on(d, monday_or_sunday) for d in ("2024-03-03", "2024-03-04", "2024-03-05")] == [True, True, False]


def test_nested_not_and_or_and_the_list_as_an_and():
    # not (Monday or a weekend) -- and, beside it, before the 20th: Tuesdays to Fridays of the first weeks
    rule = [
        {"type": NOT, "conditions": [{"type": OR, "conditions": [day("MONDAY"), {"type": WEEKEND}]}]},
        {"type": OR, "conditions": [in_month("TUESDAY", n) for n in ("FIRST", "SECOND")] + [day("FRIDAY")]},
    ]
    results = {d: holds_on(d, *rule) for d in ("2024-03-05", "2024-03-12", "2024-03-19", "2024-03-08", "2024-03-04")}
    assert results == {
        "2024-03-05": True,
        "2024-03-12": True,
        "2024-03-19": False,
        "2024-03-08": True,
        "2024-03-04": False,
    }


def test_an_expression_is_judged_by_the_callers_truthiness_as_written():
    seen = []

    def judge(text):
        seen.append(text)
        return text == "{{ inputs.go }}"

    conditions = (one({"type": P + "Expression", "expression": "{{ inputs.go }}"}),)
    assert schedule_conditions_hold(conditions, render=on("x"), evaluate_expression=judge) is True
    assert seen == ["{{ inputs.go }}"]


def test_the_first_condition_that_fails_stops_the_evaluation():
    conditions = (one({"type": WEEKEND}), one({"type": P + "Expression", "expression": "boom"}))
    assert schedule_conditions_hold(conditions, render=on("2024-03-04"), evaluate_expression=no_expression) is False


def test_a_date_that_is_not_a_date_is_an_error_naming_the_condition():
    conditions = parse([{"type": WEEKEND}, day("MONDAY")])[0]
    with pytest.raises(ConditionError) as caught:
        schedule_conditions_hold(conditions, render=lambda _: "next tuesday", evaluate_expression=no_expression)
    assert str(caught.value) == f"triggers[0].conditions[0] (Weekend): date 'next tuesday' is not {LOCAL_DATE}"
    with pytest.raises(ConditionError, match=r"^TimeBetween: date '2024-01-31' is not an ISO-8601 date-time"):
        schedule_conditions_hold(
            [TimeBetween(after=time(8))], render=on("2024-01-31"), evaluate_expression=no_expression
        )


def test_an_execution_condition_on_a_schedule_cannot_be_evaluated():
    with pytest.raises(ConditionError, match="^ExecutionStatus: is a condition on an ending execution"):
        schedule_conditions_hold([ExecutionStatus()], render=on("x"), evaluate_expression=no_expression)


def test_a_window_built_without_bounds_cannot_be_evaluated():
    with pytest.raises(ConditionError, match="needs `after`, `before` or both"):
        schedule_conditions_hold([DateTimeBetween()], render=on("2024-01-01T00:00Z"), evaluate_expression=bool)


# --- execution conditions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("states", "state", "holds"),
    [
        ({"in": ["SUCCESS", "WARNING"], "notIn": ["WARNING"]}, "SUCCESS", True),
        ({"in": ["SUCCESS", "WARNING"], "notIn": ["WARNING"]}, "WARNING", False),  # notIn wins
        ({"in": ["SUCCESS", "WARNING"], "notIn": ["WARNING"]}, "FAILED", False),
        ({"notIn": ["FAILED", "KILLED"]}, "SUCCESS", True),
        ({"notIn": ["FAILED", "KILLED"]}, "KILLED", False),
        ({"in": ["FAILED"]}, "FAILED", True),
        ({}, "KILLED", True),
        ({"in": []}, "SUCCESS", False),  # an empty list allows nothing, as Kestra's
    ],
)
def test_execution_status(states, state, holds):
    assert holds_for(ended(state), {"type": P + "ExecutionStatus", **states}) is holds


def test_execution_flow_needs_both_namespace_and_id():
    raw = {"type": P + "ExecutionFlow", "namespace": "company.team", "flowId": "etl"}
    assert holds_for(ended(), raw) is True
    assert holds_for(ended(namespace="company.other"), raw) is False
    assert holds_for(ended(flow_id="etl2"), raw) is False


@pytest.mark.parametrize(
    ("props", "namespace", "holds"),
    [
        ({"namespace": "company.team"}, "company.team", True),  # EQUALS by default
        ({"namespace": "company"}, "company.team", False),
        ({"namespace": "company", "comparison": "PREFIX"}, "company.team", True),
        ({"namespace": "company", "comparison": "PREFIX"}, "other.company", False),
        ({"namespace": "company", "prefix": True}, "company.team", True),  # the legacy prefix
        ({"namespace": "company", "prefix": True, "comparison": "EQUALS"}, "company.team", False),  # comparison wins
        ({"namespace": "team", "comparison": "SUFFIX"}, "company.team", True),
        ({"namespace": "team", "comparison": "SUFFIX"}, "team.company", False),
        ({"namespace": "Company", "comparison": "PREFIX"}, "company.team", False),  # case counts
    ],
)
def test_execution_namespace(props, namespace, holds):
    assert holds_for(ended(namespace=namespace), {"type": P + "ExecutionNamespace", **props}) is holds


@pytest.mark.parametrize(
    ("wanted", "labels", "holds"),
    [
        ({"owner": "alice"}, {"owner": "alice", "team": "data"}, True),  # the execution may carry more
        ({"owner": "alice", "team": "data"}, {"owner": "alice"}, False),  # but must carry all
        ({"owner": "alice"}, {"owner": "bob"}, False),
        ({"owner": "alice"}, {}, False),
        ({}, {"owner": "alice"}, True),
        ({"tier": 1, "critical": True}, {"tier": "1", "critical": "true"}, True),  # String.valueOf, as Kestra
        ([{"key": "owner", "value": "alice"}], {"owner": "alice"}, True),  # Kestra's list form
    ],
)
def test_execution_labels_match_the_ones_they_name(wanted, labels, holds):
    assert holds_for(ended(labels=labels), {"type": P + "ExecutionLabels", "labels": wanted}) is holds


def test_execution_outputs_judge_only_an_execution_with_outputs():
    raw = {"type": P + "ExecutionOutputs", "expression": "{{ trigger.outputs.code == 200 }}"}
    assert holds_for(ended(outputs={}), raw) is False  # not even judged, as Kestra's shortcut
    assert holds_for(ended(outputs={"code": 200}), raw, judge=lambda text: True) is True
    assert holds_for(ended(outputs={"code": 500}), raw, judge=lambda text: False) is False


@pytest.mark.parametrize(
    ("states", "attempts", "holds"),
    [
        ({"in": ["KILLED"]}, (("KILLED", "SUCCESS"),), True),  # Kestra's HasRetryAttemptTest
        ({"in": ["FAILED"]}, (("KILLED", "SUCCESS"),), False),
        ({}, (("KILLED",),), False),  # one attempt is no retry
        ({}, (("SUCCESS",), ("FAILED", "SUCCESS")), True),
        ({"notIn": ["KILLED"]}, (("KILLED", "SUCCESS"),), True),  # its SUCCESS attempt passes
        ({"notIn": ["KILLED", "SUCCESS"]}, (("KILLED", "SUCCESS"),), False),
        ({}, (), False),
    ],
)
def test_has_retry_attempt(states, attempts, holds):
    assert holds_for(ended(attempts=attempts), {"type": P + "HasRetryAttempt", **states}) is holds


def test_not_and_or_over_execution_conditions():
    not_failed = {"type": NOT, "conditions": [{"type": P + "ExecutionStatus", "in": ["FAILED", "KILLED"]}]}
    team_or_label = {
        "type": OR,
        "conditions": [
            {"type": P + "ExecutionNamespace", "namespace": "company.team"},
            {"type": P + "ExecutionLabels", "labels": {"owner": "alice"}},
        ],
    }
    assert holds_for(ended("SUCCESS"), not_failed, team_or_label) is True
    assert holds_for(ended("FAILED"), not_failed, team_or_label) is False
    assert holds_for(ended(namespace="other", labels={"owner": "alice"}), not_failed, team_or_label) is True
    assert holds_for(ended(namespace="other", labels={"owner": "bob"}), not_failed, team_or_label) is False


# --- any data --------------------------------------------------------------------------------------------

KEYS = ["type", "dayOfWeek", "dayInMonth", "date", "after", "before", "conditions", "expression", "in", "notIn"]
KEYS += ["namespace", "flowId", "comparison", "prefix", "labels", "key", "value", "country"]
TEXT = [
    *("MONDAY", "SUNDAY", "FIRST", "LAST", "SUCCESS", "CANCELLED", "PREFIX", "system.x", "{{ trigger.date }}"),
    *("2024-02-29", "2024-02-30", "2024-01-31T09:30:00+01:00[Europe/Paris]", "9999-12-31T23:00:00-05:00[UTC]"),
    *("2024-01-31T09:30Z[Europe]", "2024-01-31T09:30+24:00", "08:00", "23:59:59.999999999-18:00", "24:00", ""),
    *("٢٠٢٤-٠١-٣١", "2024-01-31T09:30:00+01:00[" + "a" * 300 + "]", "{% if %}"),
]
TYPES = sorted(NAMES) + sorted(REFUSED) + ["Weekend", "io.kestra.plugin.core.condition.X"]
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.sampled_from(TEXT) | st.text(max_size=12)
yaml_like = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4) | st.integers(), inner, max_size=4)
    ),
    max_leaves=20,
)
# What each property is mostly given: the right kind of thing, so that conditions parse and get evaluated.
MOMENTS = ["2024-02-29", "2024-02-29T23:30:00-05:00", "2024-03-01T00:30:00+01:00[Europe/Paris]", "08:00", "23:00Z"]
STATE_NAMES = STATES.split(", ") + ["RETRIED"]
PLAUSIBLE = {
    "dayOfWeek": st.sampled_from(list(calendar.day_name)).map(str.upper),
    "dayInMonth": st.sampled_from(["FIRST", "SECOND", "THIRD", "FOURTH", "LAST"]),
    "date": st.sampled_from(MOMENTS + ["{{ trigger.date }}", "{{ other }}"]) | st.sampled_from(TEXT),
    "after": st.sampled_from(MOMENTS),
    "before": st.sampled_from(MOMENTS),
    "in": st.lists(st.sampled_from(STATE_NAMES), max_size=3),
    "notIn": st.lists(st.sampled_from(STATE_NAMES), max_size=3),
    "namespace": st.sampled_from(["company", "company.team", "team"]),
    "flowId": st.sampled_from(["etl", "x"]),
    "comparison": st.sampled_from(["EQUALS", "PREFIX", "SUFFIX"]),
    "prefix": st.booleans(),
    "labels": st.dictionaries(st.sampled_from(["owner", "team"]), st.sampled_from(["alice", 1, True])),
    "expression": st.text(min_size=1, max_size=8),
    "country": st.sampled_from(["FR", "US", "XX", "{{ trigger.country }}"]),
    "subDivision": st.sampled_from(["CA", "US-NY", "ZZ"]),
}


REQUIRED = {"dayOfWeek", "dayInMonth", "after", "namespace", "flowId", "labels", "expression", "country"}


def properties_of(short):
    keys = SPECS[short].keys
    mostly = {key: st.one_of(PLAUSIBLE[key], PLAUSIBLE[key], PLAUSIBLE[key], yaml_like) for key in keys}
    return st.fixed_dictionaries(
        {"type": st.sampled_from(SPECS[short].names(short)), **{k: v for k, v in mostly.items() if k in REQUIRED}},
        optional={k: v for k, v in mostly.items() if k not in REQUIRED},
    )


plausible_condition = st.sampled_from(sorted(set(SPECS) - {"Not", "Or"})).flatmap(properties_of)
any_condition = st.fixed_dictionaries({"type": st.sampled_from(TYPES)}, optional=dict.fromkeys(KEYS[1:], yaml_like))
leaf_condition = st.one_of(plausible_condition, plausible_condition, plausible_condition, any_condition)
a_condition = st.recursive(
    leaf_condition,
    lambda inner: st.fixed_dictionaries(
        {"type": st.sampled_from([NOT, OR, OLD + "NotCondition", P + "OrCondition"])},
        optional={"conditions": st.lists(inner, min_size=1, max_size=3) | st.lists(inner | yaml_like, max_size=3)},
    ),
    max_leaves=8,
)


@given(value=yaml_like | st.lists(a_condition | yaml_like, max_size=4), kind=st.sampled_from(["schedule", "flow"]))
def test_any_data_parses_or_is_refused_at_a_place(value, kind):
    errors = ErrorCollector()
    parsed = parse_conditions(value, AT, errors, kind=kind)  # and nothing raised
    assert all(e.path[: len(AT)] == AT and e.message for e in errors.errors)
    if errors.errors == [] and isinstance(value, list):
        assert len(parsed) == len(value)


@given(
    value=st.lists(plausible_condition | a_condition, min_size=1, max_size=4),
    moment=st.sampled_from(MOMENTS + ["2024-02-29T12:00:00+01:00", "soon"]),
    kind=st.sampled_from(["schedule", "flow"]),
    state=st.sampled_from(STATE_NAMES),
)
def test_what_parses_evaluates_to_a_bool_or_a_condition_error(value, moment, kind, state):
    parsed = parse_conditions(value, AT, ErrorCollector(), kind=kind)
    execution = ended(state, labels={"owner": "alice"}, outputs={"x": 1}, attempts=(("FAILED", "SUCCESS"),))
    try:
        if kind == "schedule":
            result = schedule_conditions_hold(parsed, render=on(moment), evaluate_expression=bool)
        else:
            result = execution_conditions_hold(parsed, execution, render=on(moment), evaluate_expression=bool)
    except ConditionError as exc:
        assert str(exc).startswith("triggers[0].conditions[")  # a date it cannot read, and where it is
    else:
        assert isinstance(result, bool)


@given(
    moment=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    offset_minutes=st.integers(-18 * 60, 18 * 60),
    day_of_week=st.sampled_from(list(calendar.day_name)),
    nth=st.sampled_from(["FIRST", "SECOND", "THIRD", "FOURTH", "LAST"]),
)
def test_day_week_in_month_agrees_with_the_calendar_module(moment, offset_minutes, day_of_week, nth):
    local = moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    column = list(calendar.day_name).index(day_of_week)
    days = [week[column] for week in calendar.Calendar(0).monthdayscalendar(local.year, local.month) if week[column]]
    expected = local.day == (days[-1] if nth == "LAST" else days[["FIRST", "SECOND", "THIRD", "FOURTH"].index(nth)])
    condition: Condition = DayWeekInMonth(day_of_week.upper(), nth)
    for text in (local.isoformat(), local.date().isoformat()):
        assert schedule_conditions_hold([condition], render=on(text), evaluate_expression=bool) is expected


@given(when=st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))
def test_every_date_is_exactly_one_day_of_the_week(when):
    holding = [d for d in calendar.day_name if holds_on(when.isoformat(), day(d.upper()))]
    assert holding == [calendar.day_name[when.weekday()]]


def test_it_imports_neither_django_nor_celery():
    code = (
        "import sys; from flows_app.engine.condition_parsing import parse_conditions; "
        "from flows_app.spec.errors import ErrorCollector; parse_conditions([], (), ErrorCollector(), kind='flow'); "
        "import flows_app.engine.condition_parsing; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('django', 'celery')]; print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2]
    )
    assert result.returncode == 0, result.stdout + result.stderr
