"""The plugin catalogue as text: `tern plugins list` and `tern plugins doc TYPE`, from the plugin classes."""

from __future__ import annotations

import json

from .base import FlowablePlugin, Plugin, dynamic_fields
from .registry import all_plugins, get_plugin


def catalogue() -> str:
    lines = []
    for plugin in all_plugins():
        kind = "flowable" if issubclass(plugin, FlowablePlugin) else "runnable"
        lines.append(f"{plugin.type:<48} {kind:<9} {plugin.title()}")
    return "\n".join(lines)


def doc(type_name: str) -> str:
    """A plugin's names, description, properties (type, default, templated or not), outputs and example."""
    plugin: type[Plugin] = get_plugin(type_name)
    schema = plugin.json_schema()
    dynamic = dynamic_fields(plugin.Properties)
    required = set(schema.get("required", []))
    out = [plugin.type, "=" * len(plugin.type), "", (plugin.__doc__ or "").strip(), ""]
    if plugin.aliases:
        out += ["Also known as: " + ", ".join(plugin.aliases), ""]
    out.append("Properties:")
    for name, field in schema.get("properties", {}).items():
        if name == "type":
            continue
        facts = [_type_of(field, schema)]
        if name in required:
            facts.append("required")
        elif "default" in field:
            facts.append(f"default {json.dumps(field['default'])}")
        if name in dynamic:
            facts.append("templated")
        out.append(f"  {name} ({', '.join(facts)})")
        if field.get("description"):
            out.append(f"      {field['description']}")
    children = getattr(plugin, "child_fields", {}) or {}
    shapes = {
        "list": "list of tasks",
        "map": "map of name -> list of tasks",
        "dag": "list of {task, dependsOn: [task ids]}",
    }
    for name, shape in children.items():
        if name not in schema.get("properties", {}):  # a DAG-shaped field is a property too: listed above
            out.append(f"  {name} ({shapes[shape]})")

    if plugin.outputs:
        out += ["", "Outputs:"] + [f"  {name}: {text}" for name, text in plugin.outputs.items()]
    if plugin.example.strip():
        out += ["", "Example:", plugin.example.strip("\n")]
    return "\n".join(out)


def _type_of(field: dict, schema: dict) -> str:
    if "enum" in field:
        return " | ".join(json.dumps(v) for v in field["enum"])
    if "type" in field:
        return field["type"]
    options = field.get("anyOf") or field.get("oneOf") or []
    kinds = [o.get("type", o.get("$ref", "?").rsplit("/", 1)[-1]) for o in options]
    return " | ".join(k for k in kinds if k != "null") or "any"
