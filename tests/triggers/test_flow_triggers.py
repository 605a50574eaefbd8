"""Flow triggers: a flow runs when executions of other flows end, once per end, with the ending execution as
its `trigger`; its preconditions are met inside a window kept in the database; the housekeeping sweep starts
what a lost event did not, and nothing twice."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection, transaction

from flows_app import dispatch
from flows_app.engine.states import State
from flows_app.events import ExecutionEnded
from flows_app.models import Execution, Flow, PreconditionWindow, TriggerState
from flows_app.services.flows import save_flow
from flows_app.services.starting import start_execution
from flows_app.services.transitions import move_execution
from flows_app.triggers import control, flow_triggers
from flows_app.triggers.flow_triggers import on_execution_ended, sweep
from tests.services.test_flows_and_state import Recorder

pytestmark = pytest.mark.django_db(transaction=True)  # the ends are heard once they commit

MORNING = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def recorder():
    flow_triggers.forget_listeners()  # what an earlier test's database held
    with dispatch.using(Recorder()) as recorder:
        yield recorder


def upstream(flow_id: str, namespace: str = "company.team", labels: str = "") -> Flow:
    return save_flow(f"""id: {flow_id}
namespace: {namespace}
{labels}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hi
""").flow


def listener(trigger: str, flow_id: str = "transform", inputs: str = "") -> Flow:
    return save_flow(f"""id: {flow_id}
namespace: company.team
{inputs}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.executionId }}}}"
triggers:
{trigger}
""").flow


def end(flow: Flow, state: str = "SUCCESS", outputs: dict | None = None, labels: dict | None = None) -> Execution:
    """An execution of `flow` that ends in `state`: its end heard as a worker's commit makes it heard."""
    execution = start_execution(flow, labels=labels)
    with transaction.atomic():
        move_execution(execution, State.RUNNING)
        move_execution(execution, State(state), outputs=outputs or {})
    return execution


def end_unheard(flow: Flow, state: str = "SUCCESS") -> Execution:
    """An execution that ended while its worker died between the commit and the subscribers: no event."""
    execution = start_execution(flow)
    Execution.objects.filter(pk=execution.pk).update(state=state, ended_at=datetime.now(UTC))
    return Execution.objects.get(pk=execution.pk)


def started(flow_id: str = "transform") -> list[Execution]:
    """The executions its triggers started."""
    return list(Execution.objects.filter(flow__flow_id=flow_id, trigger__isnull=False).order_by("created_at"))


def state_of(flow_id: str = "transform", trigger_id: str = "after") -> TriggerState:
    return TriggerState.objects.get(flow__flow_id=flow_id, trigger_id=trigger_id)


AFTER_EXTRACT = """  - id: after
    type: io.kestra.plugin.core.trigger.Flow
    states: [SUCCESS]
    inputs:
      date: "{{ trigger.outputs.date }}"
      upstream: "{{ execution.id }}"
    labels:
      source: "{{ trigger.flowId }}"
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: company.team
        flowId: extract
"""
DATE_INPUTS = """inputs:
  - id: date
    type: STRING
  - id: upstream
    type: STRING
"""


def test_a_matching_end_starts_the_flow_once_with_the_ending_execution_as_its_trigger():
    extract = upstream("extract")
    flow = listener(AFTER_EXTRACT, inputs=DATE_INPUTS)
    ended = end(extract, outputs={"date": "2026-03-01"})
    (execution,) = started()
    assert execution.trigger == {
        "id": "after",
        "type": "io.kestra.plugin.core.trigger.Flow",
        "executionId": ended.id,
        "namespace": "company.team",
        "flowId": "extract",
        "flowRevision": 1,
        "state": "SUCCESS",
        "outputs": {"date": "2026-03-01"},
    }
    # inputs rendered in the ending execution's context, as Kestra renders them
    assert execution.inputs == {"date": "2026-03-01", "upstream": ended.id}
    assert execution.labels["source"] == "extract"
    assert execution.start_key == f"flow:{state_of().pk}:{ended.id}"
    assert state_of().last_execution_id == execution.id and flow.pk == execution.flow_id
    # the same end heard again, and swept later: nothing more
    on_execution_ended(ExecutionEnded(ended.id, "SUCCESS", flow_pk=extract.pk))
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=1)):
        assert sweep() == 0
    assert len(started()) == 1


def test_states_and_conditions_choose_the_ends_that_trigger():
    extract, other = upstream("extract"), upstream("other")
    listener(AFTER_EXTRACT, inputs=DATE_INPUTS)
    end(extract, "FAILED")  # not one of its states
    end(other)  # not the flow its condition names
    assert started() == []
    end(extract, outputs={"date": "x"})
    assert len(started()) == 1


def test_without_states_any_final_state_triggers_but_never_the_flows_own_executions():
    extract = upstream("extract")
    flow = listener("""  - id: after
    type: io.kestra.plugin.core.trigger.Flow
""")
    end(extract, "FAILED")
    end(extract, "KILLED")
    assert [e.trigger["state"] for e in started()] == ["FAILED", "KILLED"]
    end(flow)  # an execution of the listener itself (Kestra's rule against recursion)
    assert len(started()) == 2


def test_expression_and_outputs_conditions_read_the_ending_execution():
    extract = upstream("extract")
    listener("""  - id: after
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionOutputs
        expression: "{{ trigger.outputs.rows > 10 }}"
      - type: io.kestra.plugin.core.condition.Expression
        expression: "{{ labels.team == 'data' }}"
""")
    end(extract, outputs={"rows": 3}, labels={"team": "data"})
    end(extract, outputs={"rows": 30}, labels={"team": "web"})
    assert started() == []
    hit = end(extract, outputs={"rows": 30}, labels={"team": "data"})
    assert [e.trigger["executionId"] for e in started()] == [hit.id]


def test_a_start_the_flow_refuses_is_the_triggers_error_and_not_the_ending_executions(caplog):
    extract = upstream("extract")
    listener(
        """  - id: after
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      count: "{{ trigger.outputs.count }}"
""",
        inputs="inputs:\n  - id: count\n    type: INT\n",
    )
    with caplog.at_level(logging.WARNING, logger="tern.triggers"):
        ended = end(extract, outputs={"count": "many"})
        end(extract, outputs={})  # the template itself fails: no `count` in the outputs
    assert started() == []
    assert Execution.objects.get(pk=ended.pk).state == "SUCCESS"
    state = state_of()
    assert state.error_count == 2 and "inputs" in state.last_error
    assert any(ended.id in r.getMessage() for r in caplog.records if r.name == "tern.triggers")
    end(extract, outputs={"count": 3})  # a success clears the errors
    assert len(started()) == 1 and state_of().error_count == 0 and state_of().last_error == ""


def test_a_trigger_disabled_by_an_operator_or_in_a_disabled_flow_does_not_fire():
    extract = upstream("extract")
    listener("  - id: after\n    type: io.kestra.plugin.core.trigger.Flow\n")
    control.set_disabled(state_of(), True)
    end(extract)
    assert started() == []
    control.set_disabled(state_of(), None)
    end(extract)
    assert len(started()) == 1
    listener("  - id: after\n    type: io.kestra.plugin.core.trigger.Flow\n", inputs="disabled: true")
    assert not state_of().enabled
    end(extract)
    assert len(started()) == 1


def test_stop_after_disables_a_flow_trigger_whose_execution_failed():
    extract = upstream("extract")
    listener("  - id: after\n    type: io.kestra.plugin.core.trigger.Flow\n    stopAfter: [FAILED]\n")
    end(extract)
    (triggered,) = started()
    with transaction.atomic():
        move_execution(triggered, State.RUNNING)
        move_execution(triggered, State.FAILED)
    assert state_of().disabled is True and not state_of().enabled
    end(extract)
    assert len(started()) == 1


# ---- preconditions --------------------------------------------------------------------------------------

BOTH = """  - id: after
    type: io.kestra.plugin.core.trigger.Flow
    preconditions:
      id: both
      flows:
        - namespace: company.team
          flowId: a
          states: [SUCCESS]
        - namespace: company.team
          flowId: b
{extra}"""


def test_preconditions_fire_once_all_are_met_and_start_again_from_nothing():
    a, b = upstream("a"), upstream("b")
    listener(BOTH.format(extra=""))
    end(a)
    end(a)
    end(a, "FAILED")  # not a state it takes
    assert started() == []
    last = end(b)
    (execution,) = started()
    assert execution.trigger["executionId"] == last.id and execution.trigger["flowId"] == "b"
    end(b)  # resetOnSuccess: what was met is met no more
    assert len(started()) == 1
    end(a)
    assert len(started()) == 2


def test_without_reset_each_end_that_meets_one_fires_again():
    a, b, other = upstream("a"), upstream("b"), upstream("other")
    listener(BOTH.format(extra="      resetOnSuccess: false\n"))
    end(a)
    end(b)
    end(b)
    end(other)  # meets none of them
    assert len(started()) == 2


def test_a_window_that_ends_takes_what_it_met_with_it():
    a, b = upstream("a"), upstream("b")
    listener(BOTH.format(extra=""))  # a day, from midnight (UTC)
    with time_machine.travel(datetime(2026, 3, 2, 23, 0, tzinfo=UTC), tick=False):
        end(a)
    with time_machine.travel(datetime(2026, 3, 3, 1, 0, tzinfo=UTC), tick=False):
        end(b)
        assert started() == []
    with time_machine.travel(datetime(2026, 3, 3, 2, 0, tzinfo=UTC), tick=False):
        end(a)
        assert len(started()) == 1


def test_a_daily_deadline_counts_only_what_ends_before_it():
    a, b = upstream("a"), upstream("b")
    listener(BOTH.format(extra='      timeWindow:\n        type: DAILY_TIME_DEADLINE\n        deadline: "09:00:00"\n'))
    with time_machine.travel(MORNING - timedelta(hours=1), tick=False):
        end(a)
    with time_machine.travel(MORNING + timedelta(minutes=1), tick=False):
        end(b)  # too late today
    with time_machine.travel(MORNING + timedelta(days=1, hours=-2), tick=False):
        end(b)  # the next morning, but `a` was yesterday's
        assert started() == []
        end(a)
        assert len(started()) == 1


def test_what_preconditions_met_is_in_the_database_and_survives_a_restart():
    a, b = upstream("a"), upstream("b")
    listener(BOTH.format(extra=""))
    first = end(a)
    (window,) = PreconditionWindow.objects.all()
    assert window.precondition_id == "both" and window.met["condition_1"]["execution"] == first.id
    assert set(window.met) == {"condition_1"}
    flow_triggers.forget_listeners()  # a new process knows nothing but the database
    end(b)
    assert len(started()) == 1
    assert PreconditionWindow.objects.get().met == {}


def test_the_older_multiple_condition_waits_for_all_its_conditions():
    a, b = upstream("a"), upstream("b")
    listener("""  - id: after
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - id: multiple
        type: io.kestra.plugin.core.condition.MultipleCondition
        window: P1D
        windowAdvance: P0D
        conditions:
          success:
            type: io.kestra.plugin.core.condition.ExecutionStatus
            in: [SUCCESS]
          flow-a:
            type: io.kestra.plugin.core.condition.ExecutionFlow
            namespace: company.team
            flowId: a
          flow-b:
            type: io.kestra.plugin.core.condition.ExecutionFlow
            namespace: company.team
            flowId: b
""")
    end(a)
    assert started() == []
    last = end(b)
    (execution,) = started()
    assert execution.trigger["executionId"] == last.id


def test_two_ends_counted_at_the_same_time_both_count():
    a, b = upstream("a"), upstream("b")
    listener(BOTH.format(extra=""))
    ends, hearing, barrier = [end_unheard(a), end_unheard(b)], flow_triggers.listeners(), threading.Barrier(2)

    def look(execution: Execution) -> None:
        try:
            barrier.wait()
            flow_triggers.consider(execution.id, hearing)
        finally:
            connection.close()

    threads = [threading.Thread(target=look, args=(e,)) for e in ends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(started()) == 1  # neither wrote over what the other met
    assert PreconditionWindow.objects.get().met == {}


# ---- the sweep ----------------------------------------------------------------------------------------------


def test_the_sweep_starts_what_a_lost_event_did_not_and_nothing_twice():
    extract = upstream("extract")
    listener("  - id: after\n    type: io.kestra.plugin.core.trigger.Flow\n")
    lost = end_unheard(extract)
    assert sweep() == 0  # too near now: its commit may still be on its way
    later = datetime.now(UTC) + flow_triggers.LAG + timedelta(seconds=1)
    with time_machine.travel(later):
        assert sweep() == 1
        assert sweep() == 0
    assert state_of().next_date is not None and state_of().next_date > lost.ended_at
    on_execution_ended(ExecutionEnded(lost.id, "SUCCESS", flow_pk=extract.pk))  # the event, late after all
    TriggerState.objects.filter(pk=state_of().pk).update(next_date=lost.ended_at - timedelta(seconds=1))
    with time_machine.travel(later + timedelta(seconds=5)):
        assert sweep() == 0  # looked at again from before it: the key stops a second start
    (execution,) = started()
    assert execution.trigger["executionId"] == lost.id


def test_a_second_look_at_preconditions_counts_nothing_twice():
    a, b = upstream("a"), upstream("b")
    listener(BOTH.format(extra=""))
    first = end(a)
    end_unheard(b)
    with time_machine.travel(datetime.now(UTC) + flow_triggers.LAG + timedelta(seconds=1)):
        assert sweep() == 1  # `b` heard at last; `a`, heard live, was counted once
    TriggerState.objects.filter(pk=state_of().pk).update(next_date=first.ended_at - timedelta(seconds=1))
    with time_machine.travel(datetime.now(UTC) + flow_triggers.LAG + timedelta(seconds=2)):
        assert sweep() == 0
    assert PreconditionWindow.objects.get().met == {}  # a and b not counted again after the reset
    end(b)
    assert len(started()) == 1


def test_the_sweep_does_not_hear_what_ended_while_the_trigger_was_disabled():
    extract = upstream("extract")
    listener("  - id: after\n    type: io.kestra.plugin.core.trigger.Flow\n")
    control.set_disabled(state_of(), True)
    end_unheard(extract)
    control.set_disabled(state_of(), None)
    with time_machine.travel(datetime.now(UTC) + flow_triggers.LAG + timedelta(seconds=1)):
        assert sweep() == 0
    assert started() == []


# ---- the cost when nobody listens ---------------------------------------------------------------------------


def test_an_end_costs_no_query_when_no_flow_trigger_exists(django_assert_num_queries):
    extract = upstream("extract")
    execution = end(extract)
    assert flow_triggers.listeners() == ()
    with django_assert_num_queries(0):
        on_execution_ended(ExecutionEnded(execution.id, "SUCCESS", flow_pk=extract.pk))
    listener("  - id: after\n    type: io.kestra.plugin.core.trigger.Flow\n")  # heard at once in this process
    end(extract)
    assert len(started()) == 1
