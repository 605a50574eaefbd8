"""Subflows: the engine starts a child execution for a Subflow task, and reports the child's end back."""
from __future__ import annotations

from django.db import transaction

from flows_app import dispatch
from flows_app.engine.inputs import InputsError
from flows_app.engine.templating import TemplateError, render_value
from flows_app.engine.variables import build_variables
from flows_app.models import Execution, Flow, FlowRevision, TaskRun
from plugins_app.base import StartSubflow

from .snapshots import load_snapshot


def start_subflow(execution: Execution, run: TaskRun, request: StartSubflow) -> None:
    """Within the parent's advance (its row lock held): start the child, or record why it cannot start.

    Only the run's outputs are written; the Subflow plugin turns them into its state.
    """
    from .executions import FlowDisabled, start_execution

    name = f"{request.namespace}.{request.flow_id}"
    flow = Flow.objects.filter(namespace=request.namespace, flow_id=request.flow_id).first()
    if flow is None:
        outputs = {"error": f"subflow {name}: no such flow"}
    else:
        try:
            child = start_execution(flow, request.inputs, request.labels, parent=execution, parent_task_run_id=run.id,
                                    revision=request.revision,
                                    trigger={"type": "subflow", "executionId": execution.id, "taskRunId": run.id})
            outputs = {"executionId": child.id}
        except (InputsError, FlowDisabled, FlowRevision.DoesNotExist) as exc:
            outputs = {"error": f"subflow {name}: {exc}"}
    TaskRun.objects.filter(id=run.id).update(outputs=outputs)
    if "error" in outputs or not request.wait:
        transaction.on_commit(lambda: dispatch.get().advance(execution.id))


def subflow_ended(child_id: str) -> None:
    """A child execution ended: give its state and outputs to the parent's Subflow run, advance the parent."""
    with transaction.atomic():
        child = Execution.objects.filter(id=child_id).first()
        if child is None or child.parent_id is None:
            return
        Execution.objects.select_for_update(of=("self",)).filter(id=child.parent_id).first()
        run = TaskRun.objects.filter(id=child.parent_task_run_id).first()
        if run is None:
            return
        parent_flow = load_snapshot(child.parent).flow
        wanted = parent_flow.task(run.task_id).properties.get("outputs") or {}
        outputs = {**run.outputs, "state": child.state, "outputs": dict(child.outputs or {})}
        try:
            outputs["outputs"].update(render_value(wanted, build_variables(load_snapshot(child))))
        except TemplateError as exc:
            outputs["error"] = f"subflow outputs: {exc}"
        TaskRun.objects.filter(id=run.id).update(outputs=outputs)
        parent_id = child.parent_id
        transaction.on_commit(lambda: dispatch.get().advance(parent_id))
