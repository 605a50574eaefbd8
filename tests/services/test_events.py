"""The engine's events: announced by the services, heard by subscribers only once the change has committed,
in order, and never for a transaction that rolled back."""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack

import pytest
from django.db import transaction

from flows_app import dispatch, events
from flows_app.models import Execution
from flows_app.services.executions import advance_execution, kill_execution, start_execution
from flows_app.services.flows import save_flow
from tests.services.test_flows_and_state import Recorder

ALL = (
    events.ExecutionCreated,
    events.ExecutionStateChanged,
    events.ExecutionEnded,
    events.TaskRunsReady,
    events.TaskRunStateChanged,
    events.WakeUpSet,
    events.LogLinesWritten,
)

TWO_TASKS = """id: two
namespace: tests.events
outputs:
  - id: said
    type: STRING
    value: "{{ outputs.b.value }}"
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: first
  - id: b
    type: io.kestra.plugin.core.debug.Return
    format: second
"""


class Heard:
    """Subscribes to every event type; `events` is what arrived, in order."""

    def __init__(self):
        self.events: list = []
        self.stack = ExitStack()

    def __enter__(self):
        for kind in ALL:
            self.stack.enter_context(events.subscribed(kind, self.events.append))
        return self

    def __exit__(self, *exc):
        self.stack.close()

    def of(self, kind, execution_id=None):
        return [
            e for e in self.events if isinstance(e, kind) and (execution_id is None or e.execution_id == execution_id)
        ]


@pytest.mark.django_db(transaction=True)
def test_a_run_is_heard_in_order_from_creation_to_its_end(run_flow, tmp_path):
    flow = tmp_path / "two.yml"
    flow.write_text(TWO_TASKS)
    with Heard() as heard:
        outcome = run_flow(flow)
    execution_id = outcome.execution.id
    mine = [e for e in heard.events if getattr(e, "execution_id", None) == execution_id]
    assert isinstance(mine[0], events.ExecutionCreated) and mine[0].flow_id == "two"
    assert isinstance(mine[-1], events.ExecutionEnded)
    assert mine[-1].state == "SUCCESS" and mine[-1].outputs == {"said": "second"}
    assert [(e.previous, e.state) for e in heard.of(events.ExecutionStateChanged, execution_id)] == [
        ("CREATED", "RUNNING"),
        ("RUNNING", "SUCCESS"),
    ]
    # each task run: created queued, claimed, ended; b only once a has ended
    moves = [(e.task_id, e.previous, e.state) for e in heard.of(events.TaskRunStateChanged, execution_id)]
    assert moves == [
        ("a", "CREATED", "QUEUED"),
        ("a", "QUEUED", "RUNNING"),
        ("a", "RUNNING", "SUCCESS"),
        ("b", "CREATED", "QUEUED"),
        ("b", "QUEUED", "RUNNING"),
        ("b", "RUNNING", "SUCCESS"),
    ]
    ready = [r.task_id for e in heard.of(events.TaskRunsReady, execution_id) for r in e.runs]
    assert ready == ["a", "b"]
    order = [
        (type(e).__name__, getattr(e, "state", ""))
        for e in mine
        if isinstance(e, (events.TaskRunStateChanged, events.TaskRunsReady))
    ]
    assert order.index(("TaskRunsReady", "")) < order.index(("TaskRunStateChanged", "RUNNING"))
    lines = [line.message for e in heard.of(events.LogLinesWritten, execution_id) for line in e.lines]
    assert lines == ["first"]


@pytest.mark.django_db(transaction=True)
def test_nothing_is_heard_before_the_commit():
    flow = save_flow(TWO_TASKS).flow
    with Heard() as heard, dispatch.using(Recorder()):
        with transaction.atomic():
            execution = start_execution(flow)
            assert heard.events == []  # the row is not visible to anyone else yet
        assert [type(e) for e in heard.events] == [events.ExecutionCreated]
        assert heard.events[0].execution_id == execution.id


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_is_never_heard():
    flow = save_flow(TWO_TASKS).flow
    with Heard() as heard, dispatch.using(Recorder()) as recorder:
        with pytest.raises(RuntimeError), transaction.atomic():
            start_execution(flow)
            raise RuntimeError("the caller gave up")
        assert heard.events == [] and recorder.advances == [] and not Execution.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_savepoint_takes_its_events_with_it():
    flow = save_flow(TWO_TASKS).flow
    with Heard() as heard, dispatch.using(Recorder()):
        with transaction.atomic():
            kept = start_execution(flow)
            with pytest.raises(RuntimeError), transaction.atomic():
                start_execution(flow)
                raise RuntimeError("inner")
        assert [e.execution_id for e in heard.of(events.ExecutionCreated)] == [kept.id]


@pytest.mark.django_db(transaction=True)
def test_a_failing_subscriber_does_not_silence_the_others():
    flow = save_flow(TWO_TASKS).flow

    def broken(event):
        raise ValueError("a subscriber bug")

    with events.subscribed(events.ExecutionCreated, broken), Heard() as heard, dispatch.using(Recorder()) as recorder:
        execution = start_execution(flow)
    assert [e.execution_id for e in heard.of(events.ExecutionCreated)] == [execution.id]
    assert recorder.advances == [(execution.id, None)]  # and so did the dispatcher


@pytest.mark.django_db(transaction=True)
def test_the_dispatcher_hears_new_work_and_wake_ups():
    flow = save_flow(TWO_TASKS).flow
    with Heard() as heard, dispatch.using(Recorder()) as recorder:
        execution = start_execution(flow)
        advance_execution(execution.id)
        assert len(recorder.runs) == 1  # a's run, announced as ready
        kill_execution(execution.id)
    assert heard.of(events.WakeUpSet) == [events.WakeUpSet(execution.id, None)]
    assert recorder.advances[-1] == (execution.id, None)


def test_events_are_frozen():
    event = events.WakeUpSet("e1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.at = None  # type: ignore[misc]
