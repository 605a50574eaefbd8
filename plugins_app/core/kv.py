"""KV Set, Get and Delete: the namespaced key-value store, from tasks."""

from __future__ import annotations

from typing import Any

from flows_app.engine.vocabulary import DurationError, parse_duration
from plugins_app.base import PluginError, Properties, RunnablePlugin, prop


class Set(RunnablePlugin):
    """Store a value under a key, in the flow's namespace (or `namespace`), optionally for `ttl`."""

    type = "io.kestra.plugin.core.kv.Set"
    example = """
- id: remember
  type: io.kestra.plugin.core.kv.Set
  key: last_run
  value: "{{ execution.startDate }}"
  ttl: P30D
"""

    class Properties(Properties):
        key: str = prop(description="The key.")
        value: Any = prop(description="The value: any JSON value.")
        namespace: str | None = prop(None, description="Another namespace than the flow's.")
        overwrite: bool = prop(True, description="Replace an existing value.")
        ttl: str | None = prop(None, description="How long the value lives, e.g. PT1H.")

    def run(self, props, ctx):
        try:
            ttl = parse_duration(props.ttl) if props.ttl else None
        except DurationError as exc:
            raise PluginError(f"ttl: {exc}", retryable=False) from None
        ctx.kv.put(props.key, props.value, namespace=props.namespace, ttl=ttl, overwrite=props.overwrite)
        return {}


class KeyProperties(Properties):
    """A key to read or delete."""

    key: str = prop(description="The key.")
    namespace: str | None = prop(None, description="Another namespace than the flow's.")
    errorOnMissing: bool = prop(False, description="Fail when the key is missing.")


class Get(RunnablePlugin):
    """Read a key's value into the output `value`."""

    type = "io.kestra.plugin.core.kv.Get"
    outputs = {"value": "The value, or null when the key is missing (unless errorOnMissing)."}
    example = """
- id: recall
  type: io.kestra.plugin.core.kv.Get
  key: last_run
"""

    Properties = KeyProperties

    def run(self, props, ctx):
        return {"value": ctx.kv.get(props.key, namespace=props.namespace, error_on_missing=props.errorOnMissing)}


class Delete(RunnablePlugin):
    """Delete a key; output `deleted` says whether it was there."""

    type = "io.kestra.plugin.core.kv.Delete"
    outputs = {"deleted": "Whether the key existed."}
    example = """
- id: forget
  type: io.kestra.plugin.core.kv.Delete
  key: last_run
"""

    Properties = KeyProperties

    def run(self, props, ctx):
        return {"deleted": ctx.kv.delete(props.key, namespace=props.namespace, error_on_missing=props.errorOnMissing)}
