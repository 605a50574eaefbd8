"""ForEachItem: one subflow execution per batch of the lines of an internal storage file."""

from __future__ import annotations

from typing import Any

from flows_app.engine.vocabulary import State
from plugins_app.base import FlowableError, PluginError, Properties, StartSubflowBatches, prop

from .sizes import parse_bytes
from .subflow import ChildExecutions, labels_of


class Batch(Properties):
    rows: int | None = prop(None, ge=1, description="Lines per batch (1 when neither `bytes` nor `partitions` is set).")
    bytes: str | None = prop(None, description="About this many bytes per batch, e.g. `10KB` (whole lines).")
    partitions: int | None = prop(None, ge=1, description="This many batches, lines spread evenly.")
    separator: str = prop("\n", description="What separates items in the file.")


class ForEachItem(ChildExecutions):
    """Split a file from internal storage into batches and run a subflow execution for each.

    `items` is an internal storage URI (a FILE input, a Download's `uri`, a script's output file).
    Each child gets its inputs rendered with `taskrun.items` (the URI of its batch's file) and
    `taskrun.iteration` (1 for the first batch). With `wait` (the default) the task ends once every
    child has; with `transmitFailed`, a failed child fails it. Outputs `numberOfBatches`,
    `iterations` (children by state, updated as they end) and `uri`: a JSON-lines file with each
    child's `iteration`, `executionId`, `state` and flow `outputs`.
    """

    type = "io.kestra.plugin.core.flow.ForEachItem"
    aliases = ("io.kestra.core.tasks.flows.ForEachItem",)
    started_key = "numberOfBatches"
    outputs = {
        "numberOfBatches": "How many batches (so child executions) there are.",
        "iterations": "Child executions by state, e.g. {SUCCESS: 9, FAILED: 1, CREATED: 2}.",
        "uri": "A JSON-lines file in internal storage: one line per ended child with its outputs.",
    }
    example = """
- id: each_order
  type: io.kestra.plugin.core.flow.ForEachItem
  items: "{{ inputs.orders }}"    # a FILE input: one order per line
  batch:
    rows: 100
  namespace: company.team
  flowId: process-orders
  inputs:
    orders: "{{ taskrun.items }}"
    batch: "{{ taskrun.iteration }}"
"""

    class Properties(Properties):
        items: str = prop(description="The internal storage URI of the file to split (kestra:///...).")
        batch: Batch = prop(Batch(), dynamic=False, description="How to cut the file: `rows`, `bytes` or `partitions`.")
        namespace: str = prop(description="The namespace of the flow to run.")
        flowId: str = prop(description="The id of the flow to run for each batch.")
        inputs: dict[str, Any] = prop(
            {}, dynamic=False, description="Inputs of each child, rendered per batch (`taskrun.items`)."
        )
        labels: dict[str, Any] | list[dict[str, Any]] = prop({}, description="Labels of the child executions.")
        wait: bool = prop(True, description="Wait for every child execution to end.")
        transmitFailed: bool = prop(True, description="With `wait`: fail this task when a child fails.")
        inheritLabels: bool = prop(False, description="Give the children this execution's labels too.")
        revision: int | None = prop(None, description="A revision of the child flow (default: the latest).")
        scheduleDate: str | None = prop(None, description="Accepted for Kestra compatibility; not used yet.")

    def start(self, ctx) -> StartSubflowBatches:
        props = ctx.props()
        if not props.items.startswith("kestra://"):
            raise FlowableError(f"items: '{props.items}' is not an internal storage URI (kestra:///...)")
        batch = props.batch
        if sum(x is not None for x in (batch.rows, batch.bytes, batch.partitions)) > 1:
            raise FlowableError("batch: give one of `rows`, `bytes` or `partitions`")
        try:
            size = parse_bytes(batch.bytes, "batch.bytes") if batch.bytes is not None else None
        except PluginError as exc:
            raise FlowableError(str(exc)) from None
        labels = dict(ctx.labels) if props.inheritLabels else {}
        labels.update(labels_of(props.labels))
        return StartSubflowBatches(
            namespace=props.namespace,
            flow_id=props.flowId,
            inputs=props.inputs,
            labels=labels,
            wait=props.wait,
            revision=props.revision,
            items=props.items,
            rows=batch.rows,
            size=size,
            partitions=batch.partitions,
            separator=batch.separator or "\n",
        )

    def ended_states(self, outputs):
        iterations = {State(k): v for k, v in (outputs.get("iterations") or {}).items()}
        if sum(v for k, v in iterations.items() if k.is_terminal) < outputs["numberOfBatches"]:
            return None
        return list(iterations)
