"""The variables a template sees (`inputs`, `outputs`, `vars`, `flow`, `execution`, `task`, `taskrun`, ...)."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from flows_app.spec.model import TaskSpec

from .snapshot import ExecutionSnapshot, RunState


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


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
        nested = Labels({k[len(prefix):]: v for k, v in self.items() if k.startswith(prefix) and k != prefix})
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
    run, long in a long loop) need not be built for it. Kept on the (frozen, cached) spec."""
    known = task.__dict__.get("_mentions_other_runs")
    if known is None:
        text = json.dumps(task.properties, default=str)
        known = any(word in text for word in OTHER_RUNS)
        object.__setattr__(task, "_mentions_other_runs", known)
    return known


def build_variables(snapshot: ExecutionSnapshot, task: TaskSpec | None = None, run: RunState | None = None,
                    parent: RunState | None = None, value: str | None = None,
                    functions: Mapping[str, Callable[..., Any]] | None = None,
                    with_outputs: bool = True) -> dict[str, Any]:
    """Variables for rendering `task`'s properties in `run` (or for a run about to be created under `parent`).

    `with_outputs=False` leaves `outputs` empty, for templates that do not read them."""
    flow = snapshot.flow
    variables: dict[str, Any] = {
        "flow": {"id": flow.id, "namespace": flow.namespace, "revision": flow.revision},
        "execution": {"id": snapshot.id, "startDate": iso(snapshot.start_date), "state": str(snapshot.state)},
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
        variables["taskrun"] = {"value": value if value is not None else (_nearest_value(snapshot, parent) if parent else None)}
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
