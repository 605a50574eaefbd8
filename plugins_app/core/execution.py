"""Fail and Exit: end a task, or the whole execution, on purpose."""

from __future__ import annotations

from typing import Literal

from flows_app.engine.vocabulary import State, truthy
from plugins_app.base import FlowablePlugin, PluginError, Properties, RunnablePlugin, prop


class Fail(RunnablePlugin):
    """Fail the task, or only when `condition` renders true."""

    type = "io.kestra.plugin.core.execution.Fail"
    aliases = ("io.kestra.core.tasks.executions.Fail",)
    example = """
- id: fail-on-bad-input
  type: io.kestra.plugin.core.execution.Fail
  condition: "{{ inputs.count < 0 }}"
  errorMessage: count must not be negative
"""

    class Properties(Properties):
        condition: str | bool | None = prop(None, description="Fail only when this renders true.")
        errorMessage: str = prop("Task failure", description="The failure message.")

    def run(self, props, ctx):
        if props.condition is not None and not truthy(props.condition):
            return {}
        raise PluginError(props.errorMessage, retryable=True)


class Exit(FlowablePlugin):
    """End the execution now, in `state`; tasks after it do not run.

    `KILLED` kills the tasks still running (as a kill of the execution does); with another state,
    tasks running in a parallel branch finish on their worker but change nothing, and tasks waiting
    to run do not start (they end KILLED). Kestra's `CANCELED` ends the execution KILLED, as Tern has
    no CANCELLED state. Flowables around the Exit end in its state.
    """

    type = "io.kestra.plugin.core.execution.Exit"
    aliases = ("io.kestra.core.tasks.executions.Exit",)
    child_fields: dict[str, str] = {}
    required_children = frozenset()
    ends_execution = True
    outputs = {"state": "The state the execution ended in."}
    example = """
- id: stop_early
  type: io.kestra.plugin.core.flow.If
  condition: "{{ inputs.rows == 0 }}"
  then:
    - id: nothing_to_do
      type: io.kestra.plugin.core.execution.Exit
      state: SUCCESS
"""

    class Properties(Properties):
        state: Literal["SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELED", "CANCELLED"] = prop(
            "SUCCESS", description="The execution's end state."
        )

    def start(self, ctx):
        state = ctx.props().state
        return {"state": "KILLED" if state.startswith("CANCEL") else state}

    def next_children(self, ctx):
        return []

    def resolve_state(self, ctx):
        return State.SUCCESS
