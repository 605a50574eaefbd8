"""Pause: stop a branch for a while (`delay`) or until someone resumes the execution, then run its tasks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from flows_app.engine.vocabulary import DurationError, State, parse_duration
from plugins_app.base import (
    LIST,
    FlowableError,
    FlowablePlugin,
    Properties,
    Suspend,
    branch,
    prop,
    resolve_children_state,
    sequential_next,
)


class Pause(FlowablePlugin):
    """Pause the execution: for `delay`, or until it is resumed (with the `onResume` inputs, if any)."""

    type = "io.kestra.plugin.core.flow.Pause"
    aliases = ("io.kestra.core.tasks.flows.Pause",)
    child_fields = {"tasks": LIST, "errors": LIST}
    required_children = frozenset()
    outputs = {"onResume": "The values given for the `onResume` inputs when the execution was resumed."}
    example = """
- id: wait-for-approval
  type: io.kestra.plugin.core.flow.Pause
  timeout: PT1H          # not resumed within an hour: the task fails
  onResume:
    - id: approved
      type: BOOLEAN
"""

    class Properties(Properties):
        delay: str | None = prop(None, description="Resume by itself after this duration (e.g. PT5M).")
        pauseDuration: str | None = prop(None, description="Kestra's newer name for `delay`.")
        behavior: Literal["RESUME", "WARN", "CANCEL", "FAIL"] = prop(
            "RESUME", description="What happens when `pauseDuration` is over: go on, or end in that state."
        )
        onResume: list[dict[str, Any]] | None = prop(None, dynamic=False, description="Inputs asked for when resuming.")

    def start(self, ctx) -> Suspend:
        props = ctx.props()
        delay = props.pauseDuration or props.delay
        now = ctx.now
        if delay is not None:
            return Suspend(until=now + _duration(delay, "delay"))
        if ctx.task.timeout is not None:
            return Suspend(until=now + ctx.task.timeout)
        return Suspend()

    def on_wake(self, ctx) -> State:
        props = ctx.props()
        if props.pauseDuration or props.delay:
            return {"RESUME": State.RUNNING, "WARN": State.WARNING, "CANCEL": State.KILLED, "FAIL": State.FAILED}[
                props.behavior
            ]
        return State.FAILED  # its timeout passed before anyone resumed it

    def next_children(self, ctx):
        return sequential_next(branch(ctx.task, "tasks"), branch(ctx.task, "errors"), ctx.children)

    def resolve_state(self, ctx):
        return resolve_children_state(branch(ctx.task, "tasks"), branch(ctx.task, "errors"), ctx.children)


def _duration(value: str, name: str) -> timedelta:
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise FlowableError(f"{name}: {exc}") from None
