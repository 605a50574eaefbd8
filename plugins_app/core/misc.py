"""OutputValues and Sleep: two small runnable tasks, one that returns values and one that waits."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from pydantic import field_validator

from flows_app.engine.vocabulary import DurationError, format_duration, parse_duration
from plugins_app.base import PluginError, Properties, RunnablePlugin, prop

POLL_SECONDS = 0.1  # how often a sleeping task asks whether it must stop


class OutputValues(RunnablePlugin):
    """Render a map of values and return it as the output `values`."""

    type = "io.kestra.plugin.core.output.OutputValues"
    aliases = ("io.kestra.core.tasks.outputs.OutputValues",)
    outputs = {"values": "The rendered `values`, read as `outputs.<id>.values.<key>`."}
    example = """
- id: facts
  type: io.kestra.plugin.core.output.OutputValues
  values:
    started: "{{ execution.startDate }}"
    answer: 42
"""

    class Properties(Properties):
        values: dict[str, Any] = prop({}, description="Strings, numbers, lists or maps; templates are rendered.")

    def run(self, props, ctx):
        return {"values": props.values}


class Sleep(RunnablePlugin):
    """Wait for `duration` (ISO-8601 like PT5S, or 5s); a kill or the task's timeout ends the wait early."""

    type = "io.kestra.plugin.core.flow.Sleep"
    example = """
- id: wait-a-bit
  type: io.kestra.plugin.core.flow.Sleep
  duration: PT5S
"""

    class Properties(Properties):
        duration: timedelta = prop(description="How long to wait: PT30S, PT5M, 10s.")

        @field_validator("duration", mode="before")
        @classmethod
        def _parse(cls, value: Any) -> timedelta:
            try:
                return parse_duration(value)
            except DurationError as exc:
                raise ValueError(str(exc)) from None

    def run(self, props, ctx):
        seconds = props.duration.total_seconds()
        timeout = ctx.timeout
        until = time.monotonic() + (seconds if timeout is None else min(seconds, timeout))
        while (left := until - time.monotonic()) > 0:
            if ctx.should_stop():
                raise PluginError("killed", retryable=False)
            time.sleep(min(left, POLL_SECONDS))
        if timeout is not None and timeout < seconds:
            # the time left when the task began, a hair under the task's `timeout`: said as shell tasks say it
            raise PluginError(f"Timeout after {format_duration(timedelta(seconds=round(timeout, 1)))}", retryable=True)
        return {}
