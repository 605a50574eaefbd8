"""Kestra's older state store tasks (state.Set, Get, Delete): named maps kept between executions.

Tern keeps each state in the KV store of the flow's namespace, under a key made of the flow (unless
`namespace: true`), the state's name and, with `taskrunValue` (the default), the loop value, so the
iterations of a loop each have their own state. Kestra replaced these tasks by the KV tasks.
"""

from __future__ import annotations

from typing import Any

from plugins_app.base import PluginError, Properties, RunnablePlugin, prop

KEY_PREFIX = "__state__"


class StateProperties(Properties):
    name: str = prop("default", description="The state's name.")
    namespace: bool = prop(False, description="Share the state with every flow of the namespace.")
    taskrunValue: bool = prop(True, description="Keep a state per loop value (`taskrun.value`).")


class ExistingStateProperties(StateProperties):
    """A state to read or delete."""

    errorOnMissing: bool = prop(False, description="Fail when there is no such state.")


def _key(props: StateProperties, ctx) -> str:
    scope = "" if props.namespace else ctx.render("{{ flow.id }}")
    value = ctx.render("{{ taskrun.value ?? '' }}") if props.taskrunValue else ""
    return "/".join([KEY_PREFIX, scope, props.name, value])


class Set(RunnablePlugin):
    """Merge `data` into a named state (keys already there are replaced, others kept)."""

    type = "io.kestra.plugin.core.state.Set"
    aliases = ("io.kestra.core.tasks.states.Set",)
    outputs = {"count": "How many keys the state holds now."}
    example = """
- id: remember
  type: io.kestra.plugin.core.state.Set
  name: progress
  data:
    last: "{{ execution.startDate }}"
"""

    class Properties(StateProperties):
        data: dict[str, Any] = prop(description="The keys and values to set.")

    def run(self, props, ctx):
        key = _key(props, ctx)
        state = {**(ctx.kv.get(key) or {}), **props.data}
        ctx.kv.put(key, state)
        return {"count": len(state)}


class Get(RunnablePlugin):
    """Read a named state into the output `data` (empty when there is none, unless errorOnMissing)."""

    type = "io.kestra.plugin.core.state.Get"
    aliases = ("io.kestra.core.tasks.states.Get",)
    outputs = {"data": "The state's keys and values.", "count": "How many keys it holds."}
    example = """
- id: recall
  type: io.kestra.plugin.core.state.Get
  name: progress
"""

    Properties = ExistingStateProperties

    def run(self, props, ctx):
        state = ctx.kv.get(_key(props, ctx))
        if state is None and props.errorOnMissing:
            raise PluginError(f"no state named '{props.name}'", retryable=False)
        return {"data": state or {}, "count": len(state or {})}


class Delete(RunnablePlugin):
    """Delete a named state; the output `deleted` says whether it was there."""

    type = "io.kestra.plugin.core.state.Delete"
    aliases = ("io.kestra.core.tasks.states.Delete",)
    outputs = {"deleted": "Whether the state existed."}
    example = """
- id: forget
  type: io.kestra.plugin.core.state.Delete
  name: progress
"""

    Properties = ExistingStateProperties

    def run(self, props, ctx):
        deleted = ctx.kv.delete(_key(props, ctx))
        if not deleted and props.errorOnMissing:
            raise PluginError(f"no state named '{props.name}'", retryable=False)
        return {"deleted": deleted}
