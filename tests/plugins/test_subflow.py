"""Subflow: a child execution started by the engine, linked both ways, its end and outputs reported back."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows_app.models import Execution, LogEntry

pytestmark = pytest.mark.django_db(transaction=True)

FLOWS = Path(__file__).resolve().parents[1] / "fixtures" / "flows" / "subflows"


def runs(execution):
    return {r.task_id: r for r in execution.task_runs.all()}


def test_a_subflow_runs_the_child_waits_for_it_and_takes_its_outputs(run_flow):
    outcome = run_flow(FLOWS / "parent.yml", flows_dir=FLOWS)
    parent = outcome.execution
    assert parent.state == "SUCCESS"
    child = Execution.objects.get(parent=parent)
    call = runs(parent)["call"]
    assert child.parent_task_run_id == call.id and child.state == "SUCCESS"
    assert child.labels == {"team": "data", "caller": "parent", "system.correlationId": parent.id}
    assert child.inputs == {"fail": False}
    assert call.outputs == {
        "executionId": child.id,
        "state": "SUCCESS",
        "outputs": {"result": "done by the child", "extracted": "DONE BY THE CHILD"},
    }
    assert runs(parent)["after"].outputs == {"value": "done by the child / DONE BY THE CHILD / SUCCESS"}


def test_a_failed_child_fails_the_subflow_task(run_flow):
    outcome = run_flow(FLOWS / "parent.yml", {"fail": "true"}, flows_dir=FLOWS)
    assert outcome.execution.state == "FAILED"
    assert runs(outcome.execution)["call"].state == "FAILED" and "after" not in runs(outcome.execution)
    assert Execution.objects.get(parent=outcome.execution).state == "FAILED"


def test_without_wait_the_task_ends_at_once_and_a_missing_flow_fails_with_its_name(run_flow):
    outcome = run_flow(FLOWS / "seed-era.yml", flows_dir=FLOWS)
    by_task = runs(outcome.execution)
    assert by_task["fire-and-forget"].state == "SUCCESS" and "executionId" in by_task["fire-and-forget"].outputs
    assert by_task["missing"].state == "FAILED" and outcome.execution.state == "FAILED"
    [error] = LogEntry.objects.filter(task_id="missing", level="ERROR").values_list("message", flat=True)
    assert "tests.subflows.no-such-flow" in error and "no such flow" in error


def test_a_subflow_calling_its_own_flow_is_invalid():
    from flows_app.spec.errors import FlowValidationError
    from flows_app.spec.flow import load_flow

    with pytest.raises(FlowValidationError) as info:
        load_flow(
            "id: loop\nnamespace: t\ntasks:\n  - id: again\n    type: io.kestra.plugin.core.flow.Subflow\n"
            "    namespace: t\n    flowId: loop\n"
        )
    assert "cannot run its own flow" in str(info.value)


def test_a_failed_subflow_is_retried_by_its_policy_with_a_new_child_each_time(run_flow, tmp_path):
    flow = tmp_path / "retry.yml"
    flow.write_text("""id: retry-parent
namespace: tests.subflows
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: tests.subflows
    flowId: child
    inputs:
      fail: true
    retry:
      type: constant
      interval: PT0.1S
      maxAttempt: 3
""")
    outcome = run_flow(flow, flows_dir=FLOWS)
    call = runs(outcome.execution)["call"]
    assert outcome.execution.state == "FAILED" and call.state == "FAILED" and len(call.attempts) == 3
    children = Execution.objects.filter(parent=outcome.execution)
    assert children.count() == 3 and {c.state for c in children} == {"FAILED"}
    assert call.outputs["executionId"] == children.order_by("-created_at").first().id
