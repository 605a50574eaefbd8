"""Pause: a timer kept in the database, or a wait for a resume with typed `onResume` inputs."""

from __future__ import annotations

import time

import pytest

from flows_app import dispatch
from flows_app.engine.inputs import InputsError
from flows_app.models import Execution, TaskRun
from flows_app.services.executions import NotPaused, kill_execution, resume_execution

pytestmark = pytest.mark.django_db(transaction=True)


def runs(execution):
    return {r.task_id: r for r in execution.task_runs.all()}


def test_a_pause_with_a_delay_resumes_by_itself_then_runs_its_tasks(run_flow):
    started = time.monotonic()
    outcome = run_flow("pause-delay.yml")
    execution = outcome.execution
    assert execution.state == "SUCCESS" and time.monotonic() - started >= 0.5
    by_task = runs(execution)
    assert by_task["pause"].state == "SUCCESS" and by_task["inside"].parent_id == by_task["pause"].id
    assert by_task["inside"].started_at >= by_task["pause"].started_at
    assert by_task["last"].state == "SUCCESS"


def test_a_pause_without_delay_waits_and_a_resume_with_inputs_lets_it_go_on(run_flow):
    outcome = run_flow("pause-approval.yml")
    execution = outcome.execution
    assert execution.state == "PAUSED" and runs(execution)["approval"].state == "PAUSED"
    assert "decision" not in runs(execution)
    with pytest.raises(InputsError) as bad:
        resume_execution(execution.id, {"approved": "maybe"})
    assert "approved" in str(bad.value)
    assert Execution.objects.get(id=execution.id).state == "PAUSED"  # a bad resume changes nothing

    runner = dispatch.InlineDispatcher()
    try:
        with dispatch.using(runner):
            resume_execution(execution.id, {"approved": "true"})
            assert runner.run_until_done(execution.id, timeout=30) == "SUCCESS"
    finally:
        runner.close()
    execution.refresh_from_db()
    assert runs(execution)["approval"].outputs == {"onResume": {"approved": True, "note": "none"}}
    assert runs(execution)["decision"].outputs == {"value": "true / none"}
    with pytest.raises(NotPaused):
        resume_execution(execution.id)


def test_a_pause_whose_timeout_passes_fails(run_flow, tmp_path):
    flow = tmp_path / "timeout.yml"
    flow.write_text(
        "id: pause-timeout\nnamespace: tests.pause\ntasks:\n  - id: wait\n"
        "    type: io.kestra.plugin.core.flow.Pause\n    timeout: PT0.3S\n"
        "  - id: never\n    type: io.kestra.plugin.core.log.Log\n    message: no\n"
    )
    execution = run_flow(flow).execution
    assert execution.state == "FAILED" and runs(execution)["wait"].state == "FAILED"
    assert "never" not in runs(execution)


def test_a_paused_execution_can_be_killed(run_flow):
    execution = run_flow("pause-approval.yml").execution
    runner = dispatch.InlineDispatcher()
    try:
        with dispatch.using(runner):
            assert kill_execution(execution.id)
            assert runner.run_until_done(execution.id, timeout=30) == "KILLED"
    finally:
        runner.close()
    assert TaskRun.objects.get(execution=execution, task_id="approval").state == "KILLED"
