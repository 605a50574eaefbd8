"""Preconditions, pure: the windows of time they are met in, which checks an ending execution meets, how one
window's progress moves, and how a Flow trigger's `preconditions` (and the older MultipleCondition) are read."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows_app.engine.conditions import EndedExecution, ExecutionFlow
from flows_app.engine.preconditions import (
    ExecutionFilter,
    Filter,
    Preconditions,
    Progress,
    TimeWindow,
    UpstreamFlow,
    Window,
    met_by,
    record,
    reset,
    window_at,
)
from flows_app.spec.errors import FlowValidationError
from flows_app.spec.flow import load_flow

AT = datetime(2026, 3, 2, 14, 23, 17, tzinfo=UTC)
MIDNIGHT = datetime(2026, 3, 2, tzinfo=UTC)
EXTRACT = EndedExecution("company.team", "extract", "SUCCESS", {"team": "data"}, {"rows": 3})


def no_template(text: str) -> str:
    return text


def judge(text: str) -> bool:
    return text == "true"


# ---- windows ----------------------------------------------------------------------------------------------


def test_by_default_a_window_is_a_day_from_midnight():
    assert window_at(TimeWindow(), AT) == Window(MIDNIGHT, MIDNIGHT + timedelta(days=1))


@pytest.mark.parametrize(
    ("window", "advance", "start"),
    [
        (timedelta(days=1), -timedelta(hours=4), MIDNIGHT - timedelta(hours=4)),  # Kestra's dailyAdvance: 20:00
        (timedelta(hours=6), timedelta(hours=3), MIDNIGHT + timedelta(hours=9)),  # 03, 09, 15, 21
        (timedelta(minutes=15), -timedelta(minutes=5), AT.replace(minute=10, second=0)),  # :10, :25, :40, :55
        (timedelta(hours=1), None, AT.replace(minute=0, second=0)),
    ],
)
def test_duration_windows_tile_the_day_from_midnight_shifted_by_their_advance(window, advance, start):
    assert window_at(TimeWindow(window=window, window_advance=advance), AT) == Window(start, start + window)


def test_a_daily_deadline_is_open_from_midnight_until_it():
    deadline = TimeWindow("DAILY_TIME_DEADLINE", deadline=time(15))
    assert window_at(deadline, AT) == Window(MIDNIGHT, MIDNIGHT + timedelta(hours=15))
    assert window_at(deadline, MIDNIGHT + timedelta(hours=15)) is None


def test_a_daily_time_window_is_open_between_its_times_only():
    afternoon = TimeWindow("DAILY_TIME_WINDOW", start_time=time(14), end_time=time(15))
    assert window_at(afternoon, AT) == Window(MIDNIGHT + timedelta(hours=14), MIDNIGHT + timedelta(hours=15))
    assert window_at(afternoon, AT - timedelta(hours=1)) is None


instants = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))
durations = st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=40))
advances = st.timedeltas(min_value=-timedelta(days=3), max_value=timedelta(days=3))


@given(instants, durations, advances)
def test_every_instant_falls_in_exactly_one_duration_window(moment, size, advance):
    tw = TimeWindow(window=size, window_advance=advance)
    window = window_at(tw, moment)
    assert window is not None and moment in window and window.end - window.start == size
    assert window_at(tw, window.start) == window  # the same window from any of its instants
    assert window_at(tw, window.end - timedelta(microseconds=1)) == window
    after = window_at(tw, window.end)  # the next one begins where it ends: no gap, no overlap
    before = window_at(tw, window.start - timedelta(microseconds=1))
    assert after is not None and after.start == window.end and window.end not in window
    assert before is not None and before.end == window.start and before != window


@given(instants, durations, st.timedeltas(min_value=-timedelta(days=45), max_value=timedelta(days=45)))
def test_a_sliding_window_holds_exactly_the_last_window_before_its_instant(moment, size, offset):
    window = window_at(TimeWindow("SLIDING_WINDOW", window=size), moment)
    assert window is not None and window.end == moment and window.end - window.start == size
    assert (moment + offset in window) == (moment - size < moment + offset <= moment)


# ---- checks -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("check", "meets"),
    [
        (UpstreamFlow("company.team"), True),
        (UpstreamFlow("company.team", "extract", ("SUCCESS",)), True),
        (UpstreamFlow("company.team", "extract", ("FAILED",)), False),
        (UpstreamFlow("company.team", "load"), False),
        (UpstreamFlow("company", "extract"), False),
        (UpstreamFlow("company.team", labels=(("team", "data"),)), True),
        (UpstreamFlow("company.team", labels=(("team", "web"),)), False),
        (
            ExecutionFilter(
                "f", (Filter("NAMESPACE", "STARTS_WITH", "company"), Filter("STATE", "EQUAL_TO", "SUCCESS"))
            ),
            True,
        ),
        (
            ExecutionFilter("f", (Filter("NAMESPACE", "ENDS_WITH", "team"), Filter("FLOW_ID", "EQUAL_TO", "load"))),
            False,
        ),
        (ExecutionFilter("f", (Filter("FLOW_ID", "EQUAL_TO", "load"), Filter("FLOW_ID", "REGEX", "ex.*")), "OR"), True),
        (ExecutionFilter("f", (Filter("FLOW_ID", "REGEX", "ext"),)), False),  # the whole value, as Java's matches
        (ExecutionFilter("f", (Filter("STATE", "IN", values=("FAILED", "SUCCESS")),)), True),
        (ExecutionFilter("f", (Filter("STATE", "NOT_IN", values=("FAILED", "SUCCESS")),)), False),
        (ExecutionFilter("f", (Filter("FLOW_ID", "CONTAINS", "trac"), Filter("FLOW_ID", "NOT_EQUAL_TO", "x"))), True),
        (ExecutionFilter("f", (Filter("EXPRESSION", "IS_TRUE", "true"),)), True),
        (ExecutionFilter("f", (Filter("EXPRESSION", "IS_FALSE", "0"), Filter("FLOW_ID", "IS_NOT_NULL", "-"))), True),
        (ExecutionFlow("company.team", "extract"), True),
    ],
)
def test_each_check_reads_the_ending_execution_as_kestra_does(check, meets):
    preconditions = Preconditions("p", (("c", check),))
    names, problems = met_by(preconditions, EXTRACT, render=no_template, evaluate_expression=judge)
    assert names == ({"c"} if meets else set()) and problems == ()


def test_a_check_that_cannot_be_evaluated_is_not_met_and_said_the_others_still_count():
    def failing(text: str) -> str:
        raise ValueError("no such variable")

    checks = (
        ("bad", ExecutionFilter("f", (Filter("EXPRESSION", "IS_TRUE", "{{ x }}"),))),
        ("ok", UpstreamFlow("company.team")),
    )
    names, problems = met_by(Preconditions("p", checks), EXTRACT, render=failing, evaluate_expression=judge)
    assert names == {"ok"} and problems == ("preconditions p.bad: no such variable",)


# ---- one window's progress --------------------------------------------------------------------------------

TWO = Preconditions("both", (("a", UpstreamFlow("n", "a")), ("b", UpstreamFlow("n", "b"))))


def test_progress_completes_when_each_check_is_met_in_the_window():
    first = record(TWO, Progress(), "e1", AT, {"a"})
    assert first.counted and not first.complete
    again = record(TWO, first.progress, "e1", AT, {"a"})  # the same end looked at twice
    assert not again.counted and again.progress == first.progress
    done = record(TWO, first.progress, "e2", AT + timedelta(hours=1), {"b"})
    assert done.counted and done.complete
    cleared = reset(done.progress)
    assert cleared.met == {} and set(cleared.seen) == {"e1", "e2"}
    assert not record(TWO, cleared, "e2", AT + timedelta(hours=1), {"b"}).counted


def test_a_new_window_starts_empty_and_a_late_look_at_an_older_one_counts_nowhere():
    yesterday = record(TWO, Progress(), "e1", AT - timedelta(days=1), {"a"}).progress
    today = record(TWO, yesterday, "e2", AT, {"b"})
    assert today.counted and not today.complete and set(today.progress.met) == {"b"}
    late = record(TWO, today.progress, "e0", AT - timedelta(days=1, hours=1), {"a"})
    assert not late.counted and late.progress.met == today.progress.met


def test_an_end_outside_every_daily_window_counts_nowhere():
    deadline = Preconditions("d", TWO.checks, TimeWindow("DAILY_TIME_DEADLINE", deadline=time(9)))
    assert not record(deadline, Progress(), "e1", AT, {"a"}).counted


def test_counted_executions_are_forgotten_once_no_look_reaches_back_to_them():
    first = record(TWO, Progress(), "e1", AT, {"a"}).progress
    later = record(TWO, first, "e2", AT + timedelta(hours=2), set(), forget_before=AT + timedelta(hours=1))
    assert later.progress.seen == {} and not later.counted


@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.integers(min_value=0, max_value=10_000)), min_size=1, max_size=30),
    st.integers(min_value=1, max_value=3_000),
    st.randoms(use_true_random=False),
)
def test_a_sliding_window_keeps_for_each_check_its_latest_end_in_the_last_window_in_any_order(ends, size, rnd):
    three = Preconditions(
        "s", tuple((n, UpstreamFlow(n)) for n in "abc"), TimeWindow("SLIDING_WINDOW", window=timedelta(seconds=size))
    )
    moments = [(name, AT + timedelta(seconds=s), f"e{i}") for i, (name, s) in enumerate(ends)]
    order = list(moments)
    rnd.shuffle(order)  # live, or a sweep's late look: the same answer
    progress = Progress()
    for name, moment, execution_id in order:
        progress = record(three, progress, execution_id, moment, {name}).progress
    newest = max(moment for _, moment, _ in moments)
    expected = {}
    for name in "abc":
        latest = max((m for n, m, _ in moments if n == name), default=None)
        if latest is not None and newest - timedelta(seconds=size) < latest:
            expected[name] = latest
    assert {name: met.ended for name, met in progress.met.items()} == expected


# ---- reading them from a flow -----------------------------------------------------------------------------

FLOW = """id: listen
namespace: company.team
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: after
    type: io.kestra.plugin.core.trigger.Flow
{body}"""


def trigger_of(body: str):
    return load_flow(FLOW.format(body=body)).triggers[0].spec


def errors_of(body: str) -> list[str]:
    with pytest.raises(FlowValidationError) as caught:
        load_flow(FLOW.format(body=body))
    return [str(e).split(" (line")[0] for e in caught.value.errors]


def test_preconditions_are_read_with_kestras_names_for_their_checks():
    spec = trigger_of("""    preconditions:
      id: flows
      resetOnSuccess: false
      timeWindow:
        type: DURATION_WINDOW
        window: PT6H
        windowAdvance: PT-4H
      flows:
        - namespace: company.team
          flowId: extract
          states: [SUCCESS]
          labels: {team: data, urgent: true}
      where:
        - id: mine
          operand: OR
          filters:
            - field: STATE
              type: IN
              values: [SUCCESS, WARNING]
""")
    (preconditions,) = spec.preconditions
    assert preconditions.id == "flows" and not preconditions.reset_on_success
    assert preconditions.time_window == TimeWindow(window=timedelta(hours=6), window_advance=-timedelta(hours=4))
    assert preconditions.checks == (
        ("condition_1", UpstreamFlow("company.team", "extract", ("SUCCESS",), (("team", "data"), ("urgent", "true")))),
        ("condition_2_mine", ExecutionFilter("mine", (Filter("STATE", "IN", values=("SUCCESS", "WARNING")),), "OR")),
    )


def test_a_multiple_condition_is_one_of_the_preconditions_and_the_rest_are_conditions():
    spec = trigger_of("""    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [SUCCESS]
      - id: multiple
        type: io.kestra.core.models.conditions.types.MultipleCondition
        window: PT12H
        windowAdvance: P0D
        resetOnSuccess: false
        conditions:
          flow-a:
            type: io.kestra.plugin.core.condition.ExecutionFlow
            namespace: company.team
            flowId: a
""")
    assert len(spec.conditions) == 1
    (multiple,) = spec.preconditions
    assert multiple.id == "multiple" and multiple.names == ("flow-a",) and not multiple.reset_on_success
    assert multiple.time_window == TimeWindow(window=timedelta(hours=12), window_advance=timedelta(0))


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            "    preconditions:\n      id: p\n      timeWindow: {type: HOURLY}\n",
            "triggers[0].preconditions.timeWindow.type: 'HOURLY' is not one of DURATION_WINDOW, SLIDING_WINDOW, "
            "DAILY_TIME_DEADLINE, DAILY_TIME_WINDOW",
        ),
        (
            "    preconditions:\n      id: p\n      timeWindow: {type: DAILY_TIME_DEADLINE}\n",
            "triggers[0].preconditions.timeWindow.deadline: missing deadline: a DAILY_TIME_DEADLINE time window needs one",
        ),
        (
            "    preconditions:\n      id: p\n      timeWindow: {type: SLIDING_WINDOW, windowAdvance: PT1H}\n",
            "triggers[0].preconditions.timeWindow.windowAdvance: a SLIDING_WINDOW time window takes no `windowAdvance`",
        ),
        (
            "    preconditions:\n      id: p\n      timeWindow: {type: DAILY_TIME_DEADLINE, deadline: '9h'}\n",
            "triggers[0].preconditions.timeWindow.deadline: '9h' is not a time of day (HH:MM:SS, e.g. 09:00:00)",
        ),
        (
            "    preconditions:\n      id: p\n      timeWindow: {window: PT0S}\n",
            "triggers[0].preconditions.timeWindow.window: 'PT0S' is not longer than zero",
        ),
        (
            "    preconditions:\n      flows: [{namespace: a}]\n",
            "triggers[0].preconditions.id: missing id (a letter or digit, then letters, digits, '-' and '_'): "
            "it names the window",
        ),
        (
            "    preconditions:\n      id: p\n      flows: [{flowId: a}]\n",
            "triggers[0].preconditions.flows[0].namespace: missing namespace",
        ),
        (
            "    preconditions:\n      id: p\n      where: [{id: w, filters: [{field: STATE, type: IN, value: x}]}]\n",
            "triggers[0].preconditions.where[0].filters[0].value: a IN filter takes `values`, not `value`",
        ),
        (
            "    preconditions:\n      id: p\n      where: [{id: w, filters: [{field: LABELS, type: EQUAL_TO, value: x}]}]\n",
            "triggers[0].preconditions.where[0].filters[0].field: 'LABELS' is not one of FLOW_ID, NAMESPACE, STATE, "
            "EXPRESSION",
        ),
        (
            "    preconditions:\n      id: p\n      where: [{id: w, filters: [{field: FLOW_ID, type: REGEX, value: '('}]}]\n",
            "triggers[0].preconditions.where[0].filters[0].value: '(' is not a regular expression: missing ), "
            "unterminated subpattern at position 0",
        ),
        (
            "    conditions:\n      - type: io.kestra.plugin.core.condition.ExecutionStatus\n        in: [SUCCESS]\n"
            "      - id: m\n        type: io.kestra.plugin.core.condition.MultipleCondition\n        conditions:\n"
            "          flow-a:\n            type: io.kestra.plugin.core.condition.ExecutionFlow\n            flowId: a\n",
            "triggers[0].conditions[1].conditions.flow-a.namespace: missing namespace",
        ),
        (
            "    conditions:\n      - type: io.kestra.plugin.core.condition.DayWeek\n        dayOfWeek: MONDAY\n",
            "triggers[0].conditions[0].type: DayWeek is a condition on a schedule's date; a Flow trigger takes "
            "conditions on the ending execution: ExecutionStatus, ExecutionFlow, ExecutionNamespace, "
            "ExecutionLabels, ExecutionOutputs, HasRetryAttempt, Expression, Not, Or",
        ),
    ],
)
def test_what_is_wrong_in_preconditions_is_named_where_it_is_written(body, error):
    assert error in errors_of(body)


def test_two_preconditions_with_one_id_would_share_a_window_and_are_refused():
    errors = errors_of("""    conditions:
      - id: same
        type: io.kestra.plugin.core.condition.MultipleCondition
        conditions:
          a: {type: io.kestra.plugin.core.condition.ExecutionStatus, in: [SUCCESS]}
    preconditions:
      id: same
      flows: [{namespace: company.team}]
""")
    assert errors == ["triggers[0].preconditions.id: duplicate preconditions id 'same': each keeps its own window"]


def test_states_an_execution_never_ends_in_are_kept_with_a_warning():
    flow = load_flow(FLOW.format(body="    states: [RUNNING, SUCCESS]\n"))
    assert flow.triggers[0].spec.states == ("RUNNING", "SUCCESS")
    assert [str(w).split(": ", 1)[1] for w in flow.warnings] == [
        "a Tern Flow trigger hears executions as they end: RUNNING never matches"
    ]


def test_preconditions_without_checks_leave_the_trigger_to_fire_on_each_end():
    assert trigger_of("    preconditions:\n      id: none\n").preconditions == ()


def test_a_negative_window_advance_may_be_written_as_java_writes_it():
    for text in ("PT-4H", "-PT4H"):
        spec = trigger_of(
            f"    preconditions:\n      id: p\n      flows: [{{namespace: a}}]\n      timeWindow: {{windowAdvance: {text}}}\n"
        )
        assert spec.preconditions[0].time_window.window_advance == -timedelta(hours=4)
