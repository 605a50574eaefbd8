"""Fail: end a task (and so the execution) in failure, optionally on a condition."""
from __future__ import annotations

from plugins_app.base import PluginError, Properties, RunnablePlugin, prop


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
        from flows_app.engine.templating import truthy

        if props.condition is not None and not truthy(props.condition):
            return {}
        raise PluginError(props.errorMessage, retryable=True)
