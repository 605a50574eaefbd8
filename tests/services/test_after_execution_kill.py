"""A killed execution runs its afterExecution tasks too, as Kestra does: once all that ran has stopped, they
run (the kill does not touch them) and see `execution.state` KILLED; then the execution ends KILLED."""

from __future__ import annotations

import pytest

from flows_app import dispatch
from flows_app.engine.states import State
from flows_app.models import Execution, LogEntry, TaskRun
from flows_app.services.executions import advance_execution, kill_execution, start_execution
from flows_app.services.flows import save_flow
from flows_app.services.snapshots import load_snapshot
from flows_app.services.taskruns import Attempt, record_attempt, run_task_run
from flows_app.services.transitions import claim_task_run
from tests.services.test_flows_and_state import Recorder

FLOW = """id: killed-then-after
namespace: tests.after
tasks:
  - id: long
    type: io.kestra.plugin.core.log.Log
    message: working
  - id: never
    type: io.kestra.plugin.core.log.Log
    message: not reached
afterExecution:
  - id: notify
    type: io.kestra.plugin.core.log.Log
    message: "ended {{ execution.state }}"
"""


@pytest.mark.django_db(transaction=True)
def test_a_killed_execution_runs_its_after_execution_tasks_then_ends_killed():
    recorder = Recorder()
    with dispatch.using(recorder):
        execution = start_execution(save_flow(FLOW).flow)
        advance_execution(execution.id)
        long = TaskRun.objects.get(execution=execution, task_id="long")
        assert claim_task_run(long)  # a worker is running it when the kill comes
        assert kill_execution(execution.id)
        advance_execution(execution.id)
        assert Execution.objects.get(id=execution.id).state == "KILLING"  # `long` still runs
        flow = load_snapshot(Execution.objects.get(id=execution.id)).flow
        # the task sees the kill and stops: its worker reports a failure, recorded as KILLED
        record_attempt(long, flow, flow.task("long"), Attempt(State.FAILED), advance=True)
        notify = TaskRun.objects.get(execution=execution, task_id="notify")
        assert notify.state == "QUEUED" and not TaskRun.objects.filter(task_id="never").exists()
        assert run_task_run(notify.id) is not None  # a worker may start it in the KILLING execution
    execution.refresh_from_db()
    assert execution.state == "KILLED"
    assert TaskRun.objects.get(id=long.id).state == "KILLED"
    assert TaskRun.objects.get(id=notify.id).state == "SUCCESS"
    assert LogEntry.objects.filter(task_id="notify", message="ended KILLED").exists()


@pytest.mark.django_db(transaction=True)
def test_without_after_execution_a_kill_still_ends_at_once():
    recorder = Recorder()
    with dispatch.using(recorder):
        execution = start_execution(save_flow(FLOW.split("afterExecution:")[0]).flow)
        advance_execution(execution.id)
        assert kill_execution(execution.id)
        advance_execution(execution.id)
    assert Execution.objects.get(id=execution.id).state == "KILLED"
