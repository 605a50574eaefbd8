"""Sequential and Parallel: the flowable tasks that run their children in order or side by side."""

from __future__ import annotations

from plugins_app.base import (
    LIST,
    FlowablePlugin,
    Properties,
    branch,
    finally_next,
    finally_state,
    parallel_next,
    prop,
    resolve_children_state,
    sequential_next,
)


class Sequential(FlowablePlugin):
    """Run child tasks one after another; `errors` run if one fails, `finally` at the end whatever happened."""

    type = "io.kestra.plugin.core.flow.Sequential"
    aliases = ("io.kestra.core.tasks.flows.Sequential",)
    child_fields = {"tasks": LIST, "errors": LIST, "finally": LIST}
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
        tasks, errors = branch(ctx.task, "tasks"), branch(ctx.task, "errors")
        return sequential_next(tasks, errors, ctx.children) or finally_next(
            resolve_children_state(tasks, errors, ctx.children), branch(ctx.task, "finally"), ctx.children
        )

    def resolve_state(self, ctx):
        done = resolve_children_state(branch(ctx.task, "tasks"), branch(ctx.task, "errors"), ctx.children)
        return finally_state(done, branch(ctx.task, "finally"), ctx.children)


class Parallel(FlowablePlugin):
    """Run child tasks at the same time, at most `concurrent` at once (0: no limit); then `finally` one by one."""

    type = "io.kestra.plugin.core.flow.Parallel"
    aliases = ("io.kestra.core.tasks.flows.Parallel",)
    child_fields = {"tasks": LIST, "errors": LIST, "finally": LIST}
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
        tasks, errors = branch(ctx.task, "tasks"), branch(ctx.task, "errors")
        return parallel_next(tasks, errors, ctx.children, concurrent=ctx.props().concurrent) or finally_next(
            resolve_children_state(tasks, errors, ctx.children), branch(ctx.task, "finally"), ctx.children
        )

    def resolve_state(self, ctx):
        done = resolve_children_state(branch(ctx.task, "tasks"), branch(ctx.task, "errors"), ctx.children)
        return finally_state(done, branch(ctx.task, "finally"), ctx.children)
