"""Return and Echo: debugging tasks that render a template."""

from __future__ import annotations

from typing import Literal

from plugins_app.base import Properties, RunnablePlugin, prop


class Return(RunnablePlugin):
    """Render a template and return it as the output `value`."""

    type = "io.kestra.plugin.core.debug.Return"
    aliases = ("io.kestra.core.tasks.debugs.Return",)
    outputs = {"value": "The rendered `format`."}
    example = """
- id: greet
  type: io.kestra.plugin.core.debug.Return
  format: "{{ task.id }} > {{ taskrun.startDate }}"
"""

    class Properties(Properties):
        format: str | None = prop(None, description="The template to render.")

    def run(self, props, ctx):
        return {"value": props.format}


class Echo(RunnablePlugin):
    """Render a template and log it (deprecated in Kestra in favour of Log)."""

    type = "io.kestra.plugin.core.debug.Echo"
    aliases = ("io.kestra.core.tasks.debugs.Echo",)
    example = """
- id: echo
  type: io.kestra.plugin.core.debug.Echo
  format: "{{ task.id }}"
"""

    class Properties(Properties):
        format: str = prop(description="The template to render and log.")
        level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] = prop("INFO", description="The log level.")

    def run(self, props, ctx):
        ctx.log(props.level, props.format)
        return {}
