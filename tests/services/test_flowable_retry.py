"""`retry` on a flowable, run end to end: Kestra's RetryCaseTest cases, with the attempt counts it asserts.

Kestra (ExecutorService.handleChildWorkerTaskResult) never retries a flowable as a whole: a failed runnable
or Subflow is retried in place, on its own task run, by its own `retry`, else the nearest flowable's around
it, else the flow's. Each test names the case it mirrors.
"""

from __future__ import annotations

import pytest

from flows_app import dispatch
from flows_app.models import TaskRun
from flows_app.services.executions import start_execution
from flows_app.services.flows import save_flow, spec_of
from flows_app.services.snapshots import EndedRuns, load_runs

from .test_flows_and_state import Recorder

pytestmark = pytest.mark.django_db(transaction=True)


def runs_of(outcome, task_id):
    return [run for run in outcome.summary["taskRuns"] if run["taskId"] == task_id]


def only_run(outcome, task_id):
    runs = runs_of(outcome, task_id)
    assert len(runs) == 1, f"{task_id}: {len(runs)} runs"
    return runs[0]


def test_a_sequentials_retry_retries_its_failing_child_in_place(run_flow):
    """RetryCaseTest.retryFlowable: FAILED, the child (taskRunList[1]) has 3 attempts."""
    outcome = run_flow("flowable-retry-sequential.yml")
    assert outcome.execution.state == "FAILED"
    assert [run["taskId"] for run in outcome.summary["taskRuns"]] == ["flowable", "child"]
    assert only_run(outcome, "child")["attempts"] == 3
    assert only_run(outcome, "flowable")["state"] == "FAILED"


def test_a_childs_own_retry_inside_a_sequential_is_spent_before_the_sequential_fails(run_flow):
    """RetryCaseTest.retryFlowableChild: FAILED, taskRunList[1] has 3 attempts."""
    outcome = run_flow("flowable-retry-child.yml")
    assert outcome.execution.state == "FAILED"
    assert outcome.summary["taskRuns"][1]["taskId"] == "child"
    assert only_run(outcome, "child")["attempts"] == 3


def test_a_childs_own_retry_two_flowables_down_is_spent(run_flow):
    """RetryCaseTest.retryFlowableNestedChild: FAILED, taskRunList[2] has 3 attempts."""
    outcome = run_flow("flowable-retry-nested-child.yml")
    assert outcome.execution.state == "FAILED"
    assert outcome.summary["taskRuns"][2]["taskId"] == "child"
    assert only_run(outcome, "child")["attempts"] == 3


def test_the_nearest_flowable_retry_reaches_a_child_two_levels_down(run_flow):
    """Kestra's searchForParentRetry walks up the parents: the outer Sequential's retry is the child's."""
    outcome = run_flow("flowable-retry-nested-parent.yml")
    assert outcome.execution.state == "FAILED"
    assert only_run(outcome, "child")["attempts"] == 3
    assert only_run(outcome, "flowable2")["attempts"] == 1 and only_run(outcome, "flowable")["attempts"] == 1


def test_a_foreachs_retry_retries_each_failing_iteration_in_place(run_flow):
    """RetryCaseTest.retryFlowableParallel: FAILED, taskRunList[1] and [2] have at least 2 attempts."""
    outcome = run_flow("flowable-retry-parallel.yml")
    assert outcome.execution.state == "FAILED"
    children = runs_of(outcome, "child")
    assert sorted(run["value"] for run in children) == ["0", "1"]
    assert [run["attempts"] for run in children] == [3, 3]  # Kestra's test asks >= 2: both spend all 3


def test_the_flows_retry_failed_task_retries_a_task_inside_a_flowable(run_flow):
    """RetryCaseTest.retryFailedFlowAttempts (flow `retry`, behavior RETRY_FAILED_TASK, maxAttempt 4), with
    the failing task inside a Parallel: 4 attempts."""
    outcome = run_flow("flowable-retry-flow-level.yml")
    assert outcome.execution.state == "FAILED"
    assert only_run(outcome, "fail")["attempts"] == 4
    assert only_run(outcome, "flowable")["state"] == "FAILED"


def test_a_child_retried_by_its_flowable_succeeds_on_a_later_attempt_and_its_siblings_run_once(run_flow):
    """The flowable waits for its child's retries and goes on; only a task's own warningOnRetry marks a
    late success (Kestra's Worker reads `task.getRetry()`), so the run and the execution are SUCCESS."""
    outcome = run_flow("flowable-retry-then-succeed.yml")
    assert outcome.execution.state == "SUCCESS"
    assert only_run(outcome, "flaky")["attempts"] == 3 and only_run(outcome, "flaky")["state"] == "SUCCESS"
    assert only_run(outcome, "before")["attempts"] == 1 and only_run(outcome, "after")["attempts"] == 1
    assert only_run(outcome, "flowable")["state"] == "SUCCESS"


def test_a_flowables_errors_run_between_attempts_and_are_cleared_before_the_next(run_flow):
    """RetryCaseTest.retryWithFlowableErrors: SUCCESS, 3 task runs, run_script's attempts FAILED then
    SUCCESS (the errors task raised the counter the second attempt reads, and was cleared)."""
    outcome = run_flow("flowable-retry-with-errors.yml")
    assert outcome.execution.state == "SUCCESS"
    assert [run["taskId"] for run in outcome.summary["taskRuns"]] == ["set_kv", "retry_block", "run_script"]
    script = TaskRun.objects.get(execution_id=outcome.execution.id, task_id="run_script")
    assert [attempt["state"] for attempt in script.attempts] == ["FAILED", "SUCCESS"]


def test_a_working_directorys_retry_runs_the_failed_child_again_in_the_same_directory(run_flow):
    outcome = run_flow("flowable-retry-workdir.yml")
    assert outcome.execution.state == "SUCCESS"
    assert only_run(outcome, "prepare")["attempts"] == 1  # its file was still there for the second attempt
    assert only_run(outcome, "flaky")["attempts"] == 2


def test_a_child_allowed_to_fail_is_not_held_back_by_a_retry_it_only_inherits(run_flow):
    """Kestra's Worker: allowFailure turns the failure into WARNING unless the task's own retry can help."""
    outcome = run_flow("flowable-retry-allow-failure.yml")
    assert outcome.execution.state == "WARNING"
    assert only_run(outcome, "child")["attempts"] == 1 and only_run(outcome, "child")["state"] == "WARNING"


RETRIED_WITH_ERRORS = """id: cleared
namespace: tests.snapshots
tasks:
  - id: block
    type: io.kestra.plugin.core.flow.Sequential
    retry:
      type: constant
      interval: PT1S
    tasks:
      - id: work
        type: io.kestra.plugin.core.log.Log
        message: x
    errors:
      - id: handler
        type: io.kestra.plugin.core.log.Log
        message: y
"""


def test_a_recovery_run_a_retry_clears_is_never_kept_by_the_ended_runs_cache():
    """A worker's cache must not outlive a run another worker's retry deleted."""
    with dispatch.using(Recorder()):
        execution = start_execution(save_flow(RETRIED_WITH_ERRORS).flow)
    flow, cache = spec_of(execution.flow_revision), EndedRuns()
    TaskRun.objects.filter(execution=execution).delete()
    block = TaskRun.objects.create(execution=execution, task_id="block", state="RUNNING", order=0)
    TaskRun.objects.create(execution=execution, task_id="work", state="RETRYING", order=1, parent=block)
    handler = TaskRun.objects.create(execution=execution, task_id="handler", state="SUCCESS", order=2, parent=block)
    assert [r.task_id for r in cache.load(execution.id, flow)] == ["block", "work", "handler"]
    TaskRun.objects.filter(id=handler.id).delete()  # the retry started, in another process
    assert cache.load(execution.id, flow) == load_runs(execution.id)
    assert [r.task_id for r in cache.load(execution.id, flow)] == ["block", "work"]
