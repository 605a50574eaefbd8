"""Labels: add or replace labels of the running execution."""

from __future__ import annotations

import json
from typing import Any

from plugins_app.base import PluginError, Properties, RunnablePlugin, TaskResult, prop


class Labels(RunnablePlugin):
    """Set labels on the current execution (a map, a list of {key, value}, or a JSON string of either)."""

    type = "io.kestra.plugin.core.execution.Labels"
    aliases = ("io.kestra.core.tasks.executions.Labels",)
    example = """
- id: tag
  type: io.kestra.plugin.core.execution.Labels
  labels:
    customer: "{{ inputs.customer }}"
"""

    class Properties(Properties):
        labels: dict[str, Any] | list[dict[str, Any]] | str = prop(description="The labels to set.")

    def run(self, props, ctx) -> TaskResult:
        labels = _pairs(props.labels)
        reserved = [key for key in labels if key.startswith("system.")]
        if reserved:
            raise PluginError(f"labels {', '.join(reserved)}: the `system.` prefix is reserved", retryable=False)
        return TaskResult(labels=labels)


def _pairs(raw: dict[str, Any] | list[dict[str, Any]] | str) -> dict[str, str]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise PluginError(
                f"labels: {raw!r} is neither a map nor a list of {{key, value}}", retryable=False
            ) from None
    if isinstance(raw, dict):
        items = raw.items()
    elif isinstance(raw, list) and all(isinstance(i, dict) and "key" in i and "value" in i for i in raw):
        items = ((i["key"], i["value"]) for i in raw)
    else:
        raise PluginError("labels: write a map, or a list of {key, value}", retryable=False)
    return {str(k): _text(v) for k, v in items}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
