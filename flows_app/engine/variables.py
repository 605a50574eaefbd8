"""The variables a template sees (`inputs`, `outputs`, `vars`, `flow`, `execution`, `task`, `taskrun`, ...)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from flows_app.spec.model import FlowSpec, TaskSpec, derived
from plugins_app.base import finally_state, resolve_children_state
from plugins_app.registry import get_plugin

from .snapshot import ExecutionSnapshot, RunState
from .states import State


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def outputs_tree(snapshot: ExecutionSnapshot) -> dict[str, Any]:
    """`outputs.<taskId>` for plain runs, `outputs.<taskId>[value]...` for runs inside loops."""
    tree: dict[str, Any] = {}
    for run in sorted(snapshot.runs, key=lambda r: r.order):
        if not run.outputs:
            continue
        values = snapshot.loop_values(run)
        if not values:
            tree[run.task_id] = dict(run.outputs)
            continue
        node = tree.setdefault(run.task_id, {})
        for value in values[:-1]:
            node = node.setdefault(value, {})
        node[values[-1]] = dict(run.outputs)
    return tree


class Labels(dict[str, str]):
    """An execution's labels as templates read them: the flat labels (`labels.team`, `labels['a.b']`,
    `labels['system.correlationId']`), and, for a name that is no label, the labels under it as a nested map
    (`labels.system.correlationId`, `labels.a.b.c` for a label `a.b.c`). A label wins over a nested map of
    the same name: with labels `a` and `a.b`, `labels.a` is the label `a` and `a.b` reads as `labels['a.b']`.
    Iterating, printing or serialising shows the flat labels only, as stored."""

    def __missing__(self, key: str) -> Labels:
        prefix = f"{key}."
        nested = Labels({k[len(prefix) :]: v for k, v in self.items() if k.startswith(prefix) and k != prefix})
        if not nested:
            raise KeyError(key)
        return nested


def envs() -> dict[str, str]:
    """Environment variables named ENV_X, seen as `envs.x` (Kestra's convention)."""
    return {k[4:].lower(): v for k, v in os.environ.items() if k.startswith("ENV_")}


# Words a template uses to reach other runs than its own and its parents.
OTHER_RUNS = ("outputs", "parent", "render", "currentEachOutput")


def mentions_other_runs(task: TaskSpec) -> bool:
    """Whether the task's properties may read other runs' outputs; if not, `outputs` (a walk over every
    run, long in a long loop) need not be built for it. Kept on the (frozen, cached) spec.

    An afterExecution task counts as one: its `execution.state` is read from the runs of the flow's tasks."""

    def compute() -> bool:
        text = json.dumps(task.properties, default=str)
        return any(word in text for word in OTHER_RUNS) or in_after_execution(task)

    return derived(task, "_mentions_other_runs", compute)


# ---- the state an execution ends in ----------------------------------------------------------------
# While a flow's afterExecution tasks run, the execution stays RUNNING (a worker starts nothing in an ended
# execution) and they see, as `execution.state`, the state it ends in once they are done. That state is not
# stored: like every decision of the planner, it is read again from the runs (and the kept flow outputs).


def in_after_execution(task: TaskSpec) -> bool:
    """A task of the flow's `afterExecution` block, or a child of one."""
    return task.path[:1] == ("afterExecution",)


def tasks_end_state(snapshot: ExecutionSnapshot) -> State | None:
    """The state the flow's tasks, errors and finally end the execution in, None while they run: an Exit's
    state, else the worst end of its `tasks` (Kestra: neither `errors` nor `finally` changes it)."""
    exited = exit_state(snapshot)
    if exited is not None:
        return exited
    flow, top = snapshot.flow, snapshot.children(None)
    return finally_state(resolve_children_state(flow.tasks, flow.errors, top), flow.finally_tasks, top)


def final_state(snapshot: ExecutionSnapshot) -> State | None:
    """The state the execution ends in once its afterExecution tasks have run (they do not change it): that of
    its tasks (KILLED once it is being killed), or FAILED when the flow's outputs could not be rendered (then
    none were kept)."""
    if snapshot.state in (State.KILLING, State.KILLED):
        return State.KILLED
    state = tasks_end_state(snapshot)
    if state is not None and snapshot.flow.outputs and not snapshot.outputs:
        return State.FAILED
    return state


def exit_state(snapshot: ExecutionSnapshot) -> State | None:
    """The state an ended Exit task of the flow (not one of its afterExecution tasks) says the execution ends in."""
    exits = _exits(snapshot.flow)
    for run in snapshot.runs if exits else ():
        if run.task_id in exits and run.state == State.SUCCESS and "state" in run.outputs:
            return State(run.outputs["state"])
    return None


def _exits(flow: FlowSpec) -> frozenset[str]:
    """The flow's Exit tasks (most flows have none: the checks are then free)."""
    return derived(
        flow,
        "_exits_of_tasks",
        lambda: frozenset(
            t.id
            for t in flow.walk()
            if not in_after_execution(t) and getattr(get_plugin(t.type), "ends_execution", False)
        ),
    )


def build_variables(
    snapshot: ExecutionSnapshot,
    task: TaskSpec | None = None,
    run: RunState | None = None,
    parent: RunState | None = None,
    value: str | None = None,
    functions: Mapping[str, Callable[..., Any]] | None = None,
    with_outputs: bool = True,
) -> dict[str, Any]:
    """Variables for rendering `task`'s properties in `run` (or for a run about to be created under `parent`).

    `with_outputs=False` leaves `outputs` empty, for templates that do not read them."""
    flow = snapshot.flow
    execution = {
        "id": snapshot.id,
        "startDate": iso(snapshot.start_date),
        "state": str(snapshot.state),
        "outputs": dict(snapshot.outputs),
    }
    if task is not None and in_after_execution(task) and snapshot.state in (State.RUNNING, State.PAUSED, State.KILLING):
        execution["state"] = str(final_state(snapshot) or snapshot.state)
    variables: dict[str, Any] = {
        "flow": {"id": flow.id, "namespace": flow.namespace, "revision": flow.revision},
        "execution": execution,
        "inputs": dict(snapshot.inputs),
        "outputs": outputs_tree(snapshot) if with_outputs else {},
        "vars": dict(flow.variables),
        "labels": Labels(snapshot.labels),
        "trigger": dict(snapshot.trigger) if snapshot.trigger else None,
        "envs": envs(),
    }
    if task is not None:
        variables["task"] = {"id": task.id, "type": task.type}
    parent_run = parent
    if run is not None:
        variables["taskrun"] = {
            "id": run.id,
            "startDate": iso(run.started_at),
            "attemptsCount": max(run.attempts - 1, 0),
            "parentId": run.parent_id,
            "value": _nearest_value(snapshot, run),
        }
        if run.parent_id is not None:
            parent_run = snapshot.run(run.parent_id)
    elif value is not None or parent is not None:
        variables["taskrun"] = {
            "value": value if value is not None else (_nearest_value(snapshot, parent) if parent else None)
        }
    if parent_run is not None:
        parents = _parents([parent_run] + snapshot.ancestors(parent_run))
        variables["parents"] = parents
        if parents:
            variables["parent"] = parents[0]
    if functions:
        variables.update(functions)
    return variables


def _nearest_value(snapshot: ExecutionSnapshot, run: RunState) -> str | None:
    for r in [run] + snapshot.ancestors(run):
        if r.value is not None:
            return r.value
    return None


def _parents(chain: list[RunState]) -> list[dict[str, Any]]:
    """Kestra's `parents`, nearest first: each parent run with its own loop value (`taskrun.value`) and its
    outputs; a parent with neither is left out, so `parents[1]` is the loop (or Switch) above `parents[0]`."""
    views = []
    for run in chain:
        view: dict[str, Any] = {}
        if run.value is not None:
            view["taskrun"] = {"value": run.value}
        if run.outputs:
            view["outputs"] = dict(run.outputs)
        if view:
            views.append(view)
    return views
