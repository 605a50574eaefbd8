"""A flow's `concurrency` limit: one gate for every start, queued executions start in order as slots free,
and no path (a restart, a pause, a kill) lets more run than the limit."""

from __future__ import annotations

import pytest

from flows_app import dispatch
from flows_app.engine.states import State
from flows_app.models import Execution, LogEntry, TaskRun
from flows_app.services import housekeeping
from flows_app.services.executions import (
    NotRunning,
    advance_execution,
    kill_execution,
    pause_execution,
    start_execution,
)
from flows_app.services.flows import save_flow
from flows_app.services.restarts import CannotReopen, restart_execution
from flows_app.services.taskruns import run_task_run
from flows_app.spec.errors import FlowValidationError
from tests.services.test_flows_and_state import Recorder

pytestmark = pytest.mark.django_db(transaction=True)


def limited(limit: int = 2, behavior: str = "QUEUE", task: str = "") -> str:
    task = task or "  - id: wait\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
    return f"id: limited\nnamespace: tests.concurrency\nconcurrency:\n  limit: {limit}\n  behavior: {behavior}\ntasks:\n{task}"


def states(executions) -> list[str]:
    return [Execution.objects.get(pk=e.pk).state for e in executions]


def started(flow, count: int) -> list[Execution]:
    executions = []
    for _ in range(count):
        execution = start_execution(flow)
        advance_execution(execution.id)
        executions.append(execution)
    return executions


def failed_once(flow, recorder) -> Execution:
    """An execution of `flow` (whose task fails) run to its end by hand: FAILED."""
    execution = start_execution(flow)
    advance_execution(execution.id)
    run_task_run(recorder.runs.pop())
    advance_execution(execution.id)
    return execution


FAIL = "  - id: fail\n    type: io.kestra.plugin.core.execution.Fail\n"


def test_beyond_the_limit_executions_wait_queued_and_say_why():
    saved = save_flow(limited(2))
    with dispatch.using(Recorder()):
        executions = started(saved.flow, 4)
    assert states(executions) == ["RUNNING", "RUNNING", "QUEUED", "QUEUED"]
    message = LogEntry.objects.get(execution=executions[2]).message
    assert message == "Flow is queued due to concurrency limit exceeded, 2 running(s) (limit 2)"
    assert not TaskRun.objects.filter(execution__in=executions[2:]).exists()  # nothing of theirs started


def test_a_freed_slot_goes_to_the_oldest_queued_execution_not_to_a_newcomer():
    saved = save_flow(limited(1))
    recorder = Recorder()
    with dispatch.using(recorder):
        first, second, third = started(saved.flow, 3)
        kill_execution(first.id)
        recorder.advances.clear()
        advance_execution(first.id)  # KILLED: its slot is free, and the oldest waiting one is woken
        assert (second.id, None) in recorder.advances and (third.id, None) not in recorder.advances
        newcomer = start_execution(saved.flow)
        advance_execution(newcomer.id)  # a slot is free, but two wait before it
        advance_execution(third.id)  # woken out of turn (a duplicate message): still not its turn
        advance_execution(second.id)
    assert states([first, second, third, newcomer]) == ["KILLED", "RUNNING", "QUEUED", "QUEUED"]


@pytest.mark.parametrize(
    ("behavior", "state", "level"), [("CANCEL", "CANCELLED", "ERROR"), ("FAIL", "FAILED", "ERROR")]
)
def test_cancel_and_fail_end_an_execution_beyond_the_limit_at_once(behavior, state, level):
    saved = save_flow(limited(1, behavior))
    with dispatch.using(Recorder()):
        executions = started(saved.flow, 2)
    assert states(executions) == ["RUNNING", state]
    log = LogEntry.objects.get(execution=executions[1])
    assert (log.level, log.message) == (
        level,
        f"Flow is {state} due to concurrency limit exceeded, 1 running(s) (limit 1)",
    )
    assert Execution.objects.get(pk=executions[1].pk).ended_at is not None


def test_a_restart_beyond_the_limit_waits_its_turn_and_runs_when_a_slot_frees():
    saved = save_flow(limited(1, task=FAIL))
    recorder = Recorder()
    with dispatch.using(recorder):
        failed = failed_once(saved.flow, recorder)
        assert states([failed]) == ["FAILED"]
        (running,) = started(saved.flow, 1)
        restart_execution(failed.id)
        advance_execution(failed.id)
        assert states([failed, running]) == ["QUEUED", "RUNNING"]
        assert not TaskRun.objects.filter(execution=failed, state=State.QUEUED).exists()  # its retry waits too
        kill_execution(running.id)
        advance_execution(running.id)
        advance_execution(failed.id)
    assert states([failed, running]) == ["RUNNING", "KILLED"]
    assert TaskRun.objects.filter(execution=failed, state=State.QUEUED).count() == 1  # its new attempt, queued


def test_a_restart_is_refused_when_the_behavior_is_not_to_queue():
    saved = save_flow(limited(1, "CANCEL", task=FAIL))
    recorder = Recorder()
    with dispatch.using(recorder):
        failed = failed_once(saved.flow, recorder)
        started(saved.flow, 1)
        with pytest.raises(CannotReopen, match="concurrency limit is 1 and its behavior CANCEL"):
            restart_execution(failed.id)
    assert states([failed]) == ["FAILED"]


def test_a_kill_frees_the_slot_at_once_even_while_a_task_waits_for_its_retry():
    saved = save_flow(limited(1, task=FAIL + "    retry: {type: constant, interval: PT1H, maxAttempt: 5}\n"))
    recorder = Recorder()
    with dispatch.using(recorder):
        retrying = failed_once(saved.flow, recorder)  # its first attempt failed: it waits an hour for the next
        assert TaskRun.objects.get(execution=retrying).state == State.RETRYING
        (waiting,) = started(saved.flow, 1)
        kill_execution(retrying.id)
        advance_execution(retrying.id)
        advance_execution(waiting.id)
    assert states([retrying, waiting]) == ["KILLED", "RUNNING"]


def test_an_execution_that_has_not_passed_the_gate_cannot_be_paused_into_a_slot():
    saved = save_flow(limited(1))
    with dispatch.using(Recorder()):
        (running,) = started(saved.flow, 1)
        created = start_execution(saved.flow)
        with pytest.raises(NotRunning, match="has not started"):
            pause_execution(created.id)
        advance_execution(created.id)
    assert states([running, created]) == ["RUNNING", "QUEUED"]


def test_the_housekeeping_tick_wakes_a_queued_execution_whose_wake_up_was_lost():
    saved = save_flow(limited(1))
    recorder = Recorder()
    with dispatch.using(recorder):
        first, second = started(saved.flow, 2)
        Execution.objects.filter(pk=first.pk).update(state=State.SUCCESS)  # ended, its wake-up lost
        recorder.advances.clear()
        housekeeping.tick()
        assert (second.id, None) in recorder.advances
        advance_execution(second.id)
    assert states([second]) == ["RUNNING"]


def test_a_flow_without_a_limit_never_queues():
    source = limited().replace("concurrency:\n  limit: 2\n  behavior: QUEUE\n", "")
    saved = save_flow(source)
    with dispatch.using(Recorder()):
        executions = started(saved.flow, 5)
    assert set(states(executions)) == {"RUNNING"}


@pytest.mark.parametrize(
    ("block", "error"),
    [
        ("concurrency: 3\n", "concurrency: must be a map with `limit` (and `behavior`)"),
        ("concurrency:\n  behavior: QUEUE\n", "concurrency.limit: missing limit: how many executions may run at once"),
        ("concurrency:\n  limit: 0\n", "concurrency.limit: '0' is not a positive whole number"),
        ("concurrency:\n  limit: two\n", "concurrency.limit: 'two' is not a positive whole number"),
        (
            "concurrency:\n  limit: 2\n  behavior: WAIT\n",
            "concurrency.behavior: 'WAIT' is not one of QUEUE, CANCEL, FAIL",
        ),
        (
            "concurrency:\n  limit: 2\n  limt: 3\n",
            "concurrency.limt: unknown property (concurrency takes `limit` and `behavior`)",
        ),
    ],
)
def test_a_bad_concurrency_block_is_an_error_that_names_its_place(block, error):
    source = (
        "id: f\nnamespace: tests\n"
        + block
        + "tasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: x\n"
    )
    with pytest.raises(FlowValidationError) as info:
        save_flow(source)
    assert [str(e).rsplit(" (line", 1)[0] for e in info.value.errors] == [error]


def test_a_queued_execution_killed_ends_at_once_without_taking_a_slot():
    saved = save_flow(limited(1))
    with dispatch.using(Recorder()):
        running, queued = started(saved.flow, 2)
        created = start_execution(saved.flow)  # not through the gate yet
        assert kill_execution(queued.id) and kill_execution(created.id)
        assert states([running, queued, created]) == ["RUNNING", "KILLED", "KILLED"]
        assert Execution.objects.filter(state__in=["RUNNING", "PAUSED", "KILLING"]).count() == 1
        assert kill_execution(queued.id) is False
