"""`finally` and `afterExecution` run to their end through the real services, planner and plugins, as in Kestra."""

from __future__ import annotations

import pytest

from flows_app import events
from flows_app.engine.states import TERMINAL
from flows_app.models import Execution, LogEntry, TaskRun

pytestmark = pytest.mark.django_db(transaction=True)


def runs_by_task(outcome):
    return {run["taskId"]: run for run in outcome.summary["taskRuns"]}


def order_of(outcome):
    return [run["taskId"] for run in outcome.summary["taskRuns"]]


def messages(outcome, task_id):
    logs = LogEntry.objects.filter(execution_id=outcome.execution.id, task_id=task_id).order_by("id")
    return [line.message for line in logs]


def test_finally_runs_after_the_tasks_of_a_successful_execution(run_flow):
    outcome = run_flow("finally-flow.yml")
    runs = runs_by_task(outcome)
    assert outcome.execution.state == "SUCCESS"
    assert order_of(outcome) == ["if", "ok", "a1", "a2"]
    assert runs["a1"]["outputs"] == {"value": "a1 while RUNNING"}  # finally runs while the execution runs


def test_after_a_failure_the_errors_run_then_finally_and_the_execution_stays_failed(run_flow):
    outcome = run_flow("finally-flow.yml", {"failed": "true"})
    runs = runs_by_task(outcome)
    assert outcome.execution.state == "FAILED"
    assert order_of(outcome) == ["if", "ko", "e1", "a1", "a2"]
    assert runs["ko"]["state"] == "FAILED"
    assert all(runs[t]["state"] == "SUCCESS" for t in ("e1", "a1", "a2"))


def test_a_failing_finally_task_lets_the_next_one_run_and_leaves_the_state_alone(run_flow):
    outcome = run_flow("finally-failing.yml")
    runs = runs_by_task(outcome)
    assert runs["boom"]["state"] == "FAILED" and runs["cleanup"]["state"] == "SUCCESS"
    assert outcome.execution.state == "SUCCESS"  # Kestra: the state comes from the tasks, not from finally
    assert "the cleanup broke" in messages(outcome, "boom")


def test_finally_inside_a_sequential_inside_a_parallel_runs_before_each_block_ends(run_flow):
    outcome = run_flow("finally-flowables.yml")
    runs = runs_by_task(outcome)
    assert outcome.execution.state == "SUCCESS"
    assert runs["seq_finally"]["parentTaskRunId"] == runs["seq"]["id"]
    assert runs["par_finally"]["parentTaskRunId"] == runs["par"]["id"]
    assert runs["seq_finally"]["outputs"] == {"value": "side"}
    order = order_of(outcome)
    assert order.index("next") < order.index("seq_finally") < order.index("par_finally") < order.index("after_par")
    assert "seq_error" not in runs


def test_a_failure_inside_the_blocks_runs_their_errors_and_finally_and_fails_the_execution(run_flow):
    outcome = run_flow("finally-flowables.yml", {"failed": "true"})
    runs = runs_by_task(outcome)
    assert outcome.execution.state == "FAILED"
    assert runs["step"]["state"] == "FAILED" and "next" not in runs and "after_par" not in runs
    assert runs["seq"]["state"] == "FAILED" and runs["par"]["state"] == "FAILED"
    order = order_of(outcome)
    assert order.index("seq_error") < order.index("seq_finally") < order.index("par_finally")


def test_after_execution_tasks_see_the_final_state_and_outputs_and_do_not_change_them(run_flow):
    outcome = run_flow("after-execution.yml")
    runs = runs_by_task(outcome)
    assert outcome.execution.state == "SUCCESS"
    assert outcome.execution.outputs == {"final": "a task output used as a flow output"}
    assert order_of(outcome) == ["mytask", "cleanup", "on_success", "notify", "on_failure", "end", "broken_notifier"]
    assert runs["cleanup"]["outputs"] == {"value": "RUNNING"}  # finally: before the final state
    assert messages(outcome, "notify") == ["after-execution ended SUCCESS"]
    assert runs["on_failure"]["state"] == "SKIPPED"
    assert runs["end"]["outputs"] == {"values": {"state": "SUCCESS", "output": "a task output used as a flow output"}}
    assert runs["broken_notifier"]["state"] == "FAILED"  # and the execution is still a success


def test_after_execution_tasks_see_a_failure(run_flow):
    outcome = run_flow("after-execution-failed.yml")
    runs = runs_by_task(outcome)
    assert outcome.execution.state == "FAILED"
    assert order_of(outcome) == ["fail", "handler", "cleanup", "on_success", "on_failure"]
    assert runs["on_success"]["state"] == "SKIPPED"
    assert runs["on_failure"]["outputs"] == {"values": {"state": "FAILED"}}


def test_the_execution_stays_running_while_after_execution_tasks_run_and_ends_once_after_them(run_flow):
    seen_running, ended = [], []

    def on_run(event):
        if event.task_id == "end" and event.state == "RUNNING":
            seen_running.append(Execution.objects.values_list("state", "ended_at").get(id=event.execution_id))

    def on_end(event):
        unfinished = TaskRun.objects.filter(execution_id=event.execution_id).exclude(
            state__in=[s.value for s in TERMINAL]
        )
        ended.append((event.state, dict(event.outputs), unfinished.count()))

    with events.subscribed(events.TaskRunStateChanged, on_run), events.subscribed(events.ExecutionEnded, on_end):
        run_flow("after-execution.yml")
    assert seen_running == [("RUNNING", None)]
    assert ended == [("SUCCESS", {"final": "a task output used as a flow output"}, 0)]
