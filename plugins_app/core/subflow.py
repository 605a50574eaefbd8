"""Subflow: start an execution of another flow, wait for it (or not), and take its outputs."""

from __future__ import annotations

from typing import Any, ClassVar

from flows_app.engine.vocabulary import State
from plugins_app.base import FlowableError, FlowablePlugin, Properties, StartSubflow, prop


class ChildExecutions(FlowablePlugin):
    """What Subflow and ForEachItem share: the engine starts child executions for the task and records
    their ends in its outputs; with `wait`, the task ends once they all have."""

    child_fields: dict[str, str] = {}
    required_children = frozenset()
    started_key: ClassVar[str] = "executionId"  # in the outputs once the children are started
    outputs_change_after_end: ClassVar[bool] = True  # children's ends are recorded even after (wait: false)

    def ended_states(self, outputs: dict[str, Any]) -> list[State] | None:
        """The children's end states once every one has ended, else None."""
        return [State(outputs["state"])] if "state" in outputs else None

    def next_children(self, ctx):
        return []

    def resolve_state(self, ctx) -> State | None:
        outputs = ctx.run.outputs
        if "error" in outputs:
            raise FlowableError(outputs["error"])
        if self.started_key not in outputs:
            return None
        props = ctx.props()
        if not props.wait:
            return State.SUCCESS
        ended = self.ended_states(outputs)
        if ended is None:
            return None
        if props.transmitFailed and any(state.is_failure for state in ended):
            return State.FAILED
        return State.WARNING if State.WARNING in ended else State.SUCCESS


class Subflow(ChildExecutions):
    """Run another flow as a child execution; with `wait`, this task ends with it."""

    type = "io.kestra.plugin.core.flow.Subflow"
    aliases = (
        "io.kestra.core.tasks.flows.Subflow",
        "io.kestra.core.tasks.flows.Flow",
        "io.kestra.plugin.core.flow.Flow",
    )
    outputs = {
        "executionId": "The id of the child execution.",
        "state": "The child execution's final state (with `wait`).",
        "outputs": "The child flow's outputs, and the `outputs` map rendered in the child's context.",
    }
    example = """
- id: load
  type: io.kestra.plugin.core.flow.Subflow
  namespace: company.team
  flowId: load-one-day
  inputs:
    day: "{{ inputs.day }}"
  wait: true
  transmitFailed: true
"""

    class Properties(Properties):
        namespace: str = prop(description="The namespace of the flow to run.")
        flowId: str = prop(description="The id of the flow to run.")
        inputs: dict[str, Any] = prop({}, description="Inputs of the child execution.")
        labels: dict[str, Any] | list[dict[str, Any]] = prop({}, description="Labels of the child execution.")
        wait: bool = prop(True, description="Wait for the child execution to end.")
        transmitFailed: bool = prop(True, description="With `wait`: fail this task when the child fails.")
        inheritLabels: bool = prop(False, description="Give the child this execution's labels too.")
        revision: int | None = prop(None, description="A revision of the child flow (default: the latest).")
        outputs: dict[str, Any] | None = prop(
            None, dynamic=False, description="Outputs to extract, rendered in the child's context."
        )
        scheduleDate: str | None = prop(None, description="Accepted for Kestra compatibility; not used yet.")

    def start(self, ctx) -> StartSubflow:
        props = ctx.props()
        labels = dict(ctx.labels) if props.inheritLabels else {}
        labels.update(labels_of(props.labels))
        return StartSubflow(
            namespace=props.namespace,
            flow_id=props.flowId,
            inputs=props.inputs,
            labels=labels,
            wait=props.wait,
            revision=props.revision,
            outputs=props.outputs or {},
        )


def labels_of(raw: dict[str, Any] | list[dict[str, Any]]) -> dict[str, str]:
    pairs = raw.items() if isinstance(raw, dict) else ((item.get("key"), item.get("value")) for item in raw)
    return {str(k): str(v) for k, v in pairs if k is not None}
