"""Subflows: the engine starts a child execution for a Subflow task, and reports the child's end back."""

from __future__ import annotations

from django.db import transaction

from flows_app import events
from flows_app.engine.inputs import InputsError
from flows_app.engine.templating import TemplateError, render_value
from flows_app.engine.variables import build_variables
from flows_app.models import Execution, Flow, FlowRevision, TaskRun
from plugins_app.base import StartSubflow, StartSubflowBatches

from . import batches
from .snapshots import load_snapshot
from .starting import SYSTEM_PREFIX, FlowDisabled, ReservedLabels, check_labels, start_execution
from .storage import StorageError


def start_subflow(execution: Execution, run: TaskRun, request: StartSubflow) -> None:
    """Within the parent's advance (its row lock held): start the child, or record why it cannot start.

    Only the run's outputs are written; the Subflow plugin turns them into its state.
    """
    name = f"{request.namespace}.{request.flow_id}"
    flow = Flow.objects.filter(namespace=request.namespace, flow_id=request.flow_id, deleted=False).first()
    try:
        if flow is None:
            raise LookupError("no such flow")
        if isinstance(request, StartSubflowBatches):
            outputs = batches.start_batches(execution, run, flow, request, _starter(execution, run, flow, request))
        else:
            outputs = {"executionId": _starter(execution, run, flow, request)(request.inputs, {}).id}
    except (
        LookupError,
        InputsError,
        FlowDisabled,
        ReservedLabels,
        FlowRevision.DoesNotExist,
        StorageError,
        TemplateError,
    ) as exc:
        outputs = {"error": f"subflow {name}: {exc}"}
    TaskRun.objects.filter(id=run.id).update(outputs=outputs)
    if "error" in outputs or not request.wait or outputs.get("numberOfBatches") == 0:
        events.announce(events.WakeUpSet(execution.id))


def _starter(execution: Execution, run: TaskRun, flow: Flow, request: StartSubflow):
    """Start one child execution of `flow` for `run`, with these inputs and trigger details. The labels are
    checked at once (ReservedLabels), before any ForEachItem batch is cut."""
    labels = _child_labels(execution, request)
    check_labels(labels)

    def start(inputs, trigger_extra) -> Execution:
        trigger = {"type": "subflow", "executionId": execution.id, "taskRunId": run.id, **trigger_extra}
        return start_execution(
            flow,
            inputs,
            labels,
            parent=execution,
            parent_task_run_id=run.id,
            revision=request.revision,
            trigger=trigger,
        )

    return start


def _child_labels(execution: Execution, request: StartSubflow) -> dict[str, str]:
    """The labels the task gives its child, less the parent's system labels that `inheritLabels` copied: the
    child takes those anyway (from its parent, in start_execution). Any other `system.` label is the user's,
    and refused."""
    parents = execution.labels or {}
    return {
        key: value
        for key, value in request.labels.items()
        if not (key.startswith(SYSTEM_PREFIX) and parents.get(key) == value)
    }


def on_execution_ended(event: events.ExecutionEnded) -> None:
    """A subscriber: a child execution's end is reported to the Subflow (or ForEachItem) run that started it."""
    if event.parent_id is not None:
        subflow_ended(event.execution_id)


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
        events.announce(events.WakeUpSet(child.parent_id))
        if "numberOfBatches" in run.outputs:  # one of ForEachItem's children
            TaskRun.objects.filter(id=run.id).update(outputs=batches.child_ended(run.outputs, child))
            return
        parent_flow = load_snapshot(child.parent).flow
        wanted = parent_flow.task(run.task_id).properties.get("outputs") or {}
        outputs = {**run.outputs, "state": child.state, "outputs": dict(child.outputs or {})}
        try:
            outputs["outputs"].update(render_value(wanted, build_variables(load_snapshot(child))))
        except TemplateError as exc:
            outputs["error"] = f"subflow outputs: {exc}"
        TaskRun.objects.filter(id=run.id).update(outputs=outputs)
