"""Type name -> plugin class: core plugins by dotted path, third-party ones by the `tern.plugins` entry points.

Classes are imported on first use and cached. Every Kestra name (seed era and current) is an alias.
"""

from __future__ import annotations

import difflib
import importlib
from functools import lru_cache
from importlib.metadata import entry_points

from .base import Plugin

# Core plugin classes by dotted path; each declares its own type name and aliases.
CORE_PLUGINS = (
    "plugins_app.core.log.Log",
    "plugins_app.core.debug.Return",
    "plugins_app.core.debug.Echo",
    "plugins_app.core.execution.Fail",
    "plugins_app.core.execution.Exit",
    "plugins_app.core.flow.Sequential",
    "plugins_app.core.flow.Parallel",
    "plugins_app.core.shell.Commands",
    "plugins_app.core.shell.Script",
    "plugins_app.core.shell.Bash",
    "plugins_app.core.scripts.PythonCommands",
    "plugins_app.core.scripts.PythonScript",
    "plugins_app.core.scripts.NodeCommands",
    "plugins_app.core.scripts.NodeScript",
    "plugins_app.core.branching.Switch",
    "plugins_app.core.branching.If",
    "plugins_app.core.branching.AllowFailure",
    "plugins_app.core.branching.Dag",
    "plugins_app.core.misc.OutputValues",
    "plugins_app.core.misc.Sleep",
    # branching and simple runnables (issue 5) — add entries above this line
    "plugins_app.core.loops.EachSequential",
    "plugins_app.core.loops.EachParallel",
    "plugins_app.core.loops.ForEach",
    # loops (issue 5) — add entries above this line
    "plugins_app.core.pause.Pause",
    "plugins_app.core.subflow.Subflow",
    "plugins_app.core.foreachitem.ForEachItem",
    "plugins_app.core.labels.Labels",
    "plugins_app.core.kv.Set",
    "plugins_app.core.kv.Get",
    "plugins_app.core.kv.Delete",
    "plugins_app.core.state.Set",
    "plugins_app.core.state.Get",
    "plugins_app.core.state.Delete",
    "plugins_app.core.http.Request",
    "plugins_app.core.http.Download",
    "plugins_app.core.workdir.WorkingDirectory",
    "plugins_app.core.workdir.LocalFiles",
    # pause and subflows (issue 5) — add entries above this line
    "plugins_app.buses.redis.ListPush",
    "plugins_app.buses.redis.ListPop",
    "plugins_app.buses.redis.Publish",
    # message buses (issue 12): redis — add entries above this line
    "plugins_app.buses.mqtt.Publish",
    "plugins_app.buses.mqtt.Subscribe",
    # message buses (issue 12): mqtt — add entries above this line
    "plugins_app.buses.amqp.Publish",
    "plugins_app.buses.amqp.Consume",
    "plugins_app.buses.amqp.CreateQueue",
    "plugins_app.buses.amqp.DeclareExchange",
    "plugins_app.buses.amqp.QueueBind",
    # message buses (issue 12): amqp — add entries above this line
    "plugins_app.buses.nats.Produce",
    "plugins_app.buses.nats.Consume",
    "plugins_app.buses.nats.Request",
    # message buses (issue 12): nats — add entries above this line
)

ENTRY_POINT_GROUP = "tern.plugins"


class UnknownPlugin(LookupError):
    def __init__(self, type_name: str, suggestions: list[str]):
        hint = f"; did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        super().__init__(f"unknown task type '{type_name}'{hint}")
        self.suggestions = suggestions


def import_string(dotted: str) -> type[Plugin]:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@lru_cache(maxsize=1)
def _catalogue() -> dict[str, type[Plugin]]:
    classes: list[type[Plugin]] = [import_string(path) for path in CORE_PLUGINS]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        loaded = ep.load()
        classes.extend(loaded if isinstance(loaded, (list, tuple)) else [loaded])
    table: dict[str, type[Plugin]] = {}
    for cls in classes:
        for name in (cls.type, *cls.aliases):
            table[name] = cls
    return table


def all_plugins() -> list[type[Plugin]]:
    """Every plugin class once, by canonical type name."""
    return sorted(set(_catalogue().values()), key=lambda c: c.type)


def get_plugin(type_name: str) -> type[Plugin]:
    try:
        return _catalogue()[type_name]
    except KeyError:
        raise UnknownPlugin(type_name, suggest(type_name)) from None


def suggest(type_name: str) -> list[str]:
    names = list(_catalogue())
    close = difflib.get_close_matches(type_name, names, n=2, cutoff=0.6)
    if close:
        return close
    # A short or mangled name (`Logg`, `log.Log`): compare the last parts, suggest the canonical names.
    canonical = {cls.type.rsplit(".", 1)[-1].lower(): cls.type for cls in all_plugins()}
    tails = difflib.get_close_matches(type_name.rsplit(".", 1)[-1].lower(), list(canonical), n=2, cutoff=0.6)
    return [canonical[t] for t in tails]


def clear_cache() -> None:
    _catalogue.cache_clear()
