"""Log: write a message to the execution's logs."""

from __future__ import annotations

from typing import Literal

from plugins_app.base import Properties, RunnablePlugin, prop

Level = Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]


class Log(RunnablePlugin):
    """Log a message (or several) at a level."""

    type = "io.kestra.plugin.core.log.Log"
    aliases = ("io.kestra.core.tasks.log.Log",)
    example = """
- id: hello
  type: io.kestra.plugin.core.log.Log
  message: Hello {{ inputs.name }}!
  level: INFO
"""

    class Properties(Properties):
        message: str | list[str] = prop(description="The message, or a list of messages, to log.")
        level: Level = prop("INFO", description="The log level.")

    def run(self, props, ctx):
        messages = props.message if isinstance(props.message, list) else [props.message]
        for message in messages:
            ctx.log(props.level, message)
        return {}
