"""Sequential and Parallel: the flowable tasks that run their children in order or side by side."""
from __future__ import annotations

from plugins_app.base import (
    FlowablePlugin,
    Properties,
    branch,
    parallel_next,
    prop,
    resolve_children_state,
    sequential_next,
)


class Sequential(FlowablePlugin):
    """Run child tasks one after another; `errors` run if one fails."""

    type = "io.kestra.plugin.core.flow.Sequential"
    aliases = ("io.kestra.core.tasks.flows.Sequential",)
    example = """
- id: steps
  type: io.kestra.plugin.core.flow.Sequential
  tasks:
    - id: first
      type: io.kestra.plugin.core.log.Log
      message: one
    - id: second
      type: io.kestra.plugin.core.log.Log
      message: two
"""

    def next_children(self, ctx):
        return sequential_next(branch(ctx.task, "tasks"), branch(ctx.task, "errors"), ctx.children)

    def resolve_state(self, ctx):
        return resolve_children_state(branch(ctx.task, "tasks"), branch(ctx.task, "errors"), ctx.children)


class Parallel(FlowablePlugin):
    """Run child tasks at the same time, at most `concurrent` at once (0: no limit)."""

    type = "io.kestra.plugin.core.flow.Parallel"
    aliases = ("io.kestra.core.tasks.flows.Parallel",)
    fan_in = True
    example = """
- id: fan-out
  type: io.kestra.plugin.core.flow.Parallel
  concurrent: 3
  tasks:
    - id: a
      type: io.kestra.plugin.scripts.shell.Commands
      commands: ["echo a"]
    - id: b
      type: io.kestra.plugin.scripts.shell.Commands
      commands: ["echo b"]
"""

    class Properties(Properties):
        concurrent: int = prop(0, description="How many children run at once; 0 means all.", ge=0)

    def next_children(self, ctx):
        return parallel_next(branch(ctx.task, "tasks"), branch(ctx.task, "errors"),
                             ctx.children, concurrent=ctx.props().concurrent)

    def resolve_state(self, ctx):
        return resolve_children_state(branch(ctx.task, "tasks"), branch(ctx.task, "errors"), ctx.children)
