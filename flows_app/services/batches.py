"""ForEachItem's batches: the items file cut into batch files, one child execution each, their ends counted."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flows_app.engine.states import State
from flows_app.engine.templating import render_value
from flows_app.engine.variables import build_variables
from flows_app.models import Execution, Flow, TaskRun
from plugins_app.base import StartSubflowBatches

from .snapshots import load_snapshot
from .storage import storage, task_run_parts

READ_BLOCK = 1 << 16


def start_batches(
    execution: Execution,
    run: TaskRun,
    flow: Flow,
    request: StartSubflowBatches,
    start: Callable[[dict, dict], Execution],
) -> dict[str, Any]:
    """Cut the items file, store each batch, start a child per batch; returns the run's first outputs."""
    files = storage()
    source = files.path_of(request.items)
    snapshot = load_snapshot(execution)
    variables = build_variables(snapshot, snapshot.flow.task(run.task_id), snapshot.run(run.id))
    folder = task_run_parts(snapshot.flow.namespace, snapshot.flow.id, execution.id, run.task_id, run.id)
    count = 0
    for count, chunk in enumerate(split(source, request), start=1):
        uri = files.put([*folder, "batches"], f"batch-{count}{source.suffix}", chunk)
        batch = {**variables, "taskrun": {**variables.get("taskrun", {}), "items": uri, "iteration": count}}
        start(render_value(dict(request.inputs), batch), {"iteration": count})
    return {"numberOfBatches": count, "iterations": {State.CREATED.value: count} if count else {}}


def child_ended(outputs: dict[str, Any], child: Execution) -> dict[str, Any]:
    """Count a child's end; once the last has ended, gather their outputs in a JSON-lines file (`uri`)."""
    iterations = dict(outputs.get("iterations") or {})
    iterations[State.CREATED.value] = iterations.get(State.CREATED.value, 0) - 1
    iterations[child.state] = iterations.get(child.state, 0) + 1
    iterations = {state: n for state, n in iterations.items() if n > 0}
    updated = {**outputs, "iterations": iterations}
    if State.CREATED.value not in iterations:
        updated["uri"] = _gather_outputs(child)
    return updated


def _gather_outputs(child: Execution) -> str:
    siblings = Execution.objects.filter(parent_id=child.parent_id, parent_task_run_id=child.parent_task_run_id)
    lines = sorted(
        (
            {
                "iteration": (c.trigger or {}).get("iteration"),
                "executionId": c.id,
                "state": c.state,
                "outputs": c.outputs or {},
            }
            for c in siblings.only("id", "state", "outputs", "trigger")
        ),
        key=lambda line: line["iteration"] or 0,
    )
    body = "".join(json.dumps(line, default=str) + "\n" for line in lines).encode()
    parent = child.parent
    run = TaskRun.objects.only("task_id").get(id=child.parent_task_run_id)
    spec = load_snapshot(parent).flow
    folder = task_run_parts(spec.namespace, spec.id, parent.id, run.task_id, run.id)
    return storage().put(folder, "outputs.jsonl", body)


# ---- cutting ----------------------------------------------------------------------------------------


def split(path: Path, request: StartSubflowBatches) -> Iterator[bytes]:
    """The batches' contents: items (separated by `separator`) grouped by rows, by size or in partitions."""
    separator = request.separator.encode()
    if request.partitions:
        total = sum(1 for _ in _items(path, separator))
        sizes = [
            total // request.partitions + (1 if i < total % request.partitions else 0)
            for i in range(request.partitions)
        ]
        sizes = [n for n in sizes if n > 0]  # fewer items than partitions: one item each
        yield from _grouped(
            _items(path, separator),
            separator,
            lambda group, _: not sizes or len(group) >= sizes[0],
            on_full=lambda: sizes.pop(0),
        )
        return
    if request.size:
        yield from _grouped(_items(path, separator), separator, lambda _, size: size >= request.size)
        return
    rows = request.rows or 1
    yield from _grouped(_items(path, separator), separator, lambda group, _: len(group) >= rows)


def _grouped(
    items: Iterator[bytes],
    separator: bytes,
    full: Callable[[list, int], bool],
    on_full: Callable[[], Any] = lambda: None,
) -> Iterator[bytes]:
    group: list[bytes] = []
    size = 0
    for item in items:
        group.append(item)
        size += len(item) + len(separator)
        if full(group, size):
            yield separator.join(group) + separator
            group, size = [], 0
            on_full()
    if group:
        yield separator.join(group) + separator


def _items(path: Path, separator: bytes) -> Iterator[bytes]:
    """The file's items, read a block at a time (a big file is never all in memory); a last empty item
    (the file ends with the separator) is not an item."""
    rest = b""
    with path.open("rb") as source:
        while block := source.read(READ_BLOCK):
            parts = (rest + block).split(separator)
            rest = parts.pop()
            yield from parts
    if rest:
        yield rest
