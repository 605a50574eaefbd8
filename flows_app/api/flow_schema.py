"""JSON Schemas for editors: of one task type, and of a whole flow (every task type a `tasks` item may be),
built from the plugins' own property models."""

from __future__ import annotations

import copy
import functools
from typing import Any

from flows_app.spec.flow import FLOW_KEYS
from flows_app.spec.inputs import INPUT_TYPES
from flows_app.spec.tasks import RETRY_TYPES
from flows_app.spec.triggers import TRIGGER_TYPES
from plugins_app.registry import all_plugins

DURATION = {"type": "string", "description": "a duration: ISO 8601 like PT30S"}
TASK_REF = {"$ref": "#/$defs/task"}
TASK_LIST = {"type": "array", "items": TASK_REF}
COMMON_TASK = {
    "id": {"type": "string", "pattern": "^[a-zA-Z0-9][a-zA-Z0-9_-]*$", "maxLength": 256},
    "description": {"type": "string"},
    "disabled": {"type": "boolean"},
    "timeout": DURATION,
    "retry": {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"enum": sorted(RETRY_TYPES)},
            "interval": DURATION,
            "maxInterval": DURATION,
            "minInterval": DURATION,
            "maxDuration": DURATION,
            "delayFactor": {"type": "number"},
            "maxAttempts": {"type": "integer", "minimum": 1},
            "maxAttempt": {"type": "integer", "minimum": 1},
            "warningOnRetry": {"type": "boolean"},
            "behavior": {"enum": ["RETRY_FAILED_TASK", "CREATE_NEW_EXECUTION"]},
        },
    },
    "allowFailure": {"type": "boolean"},
    "allowWarning": {"type": "boolean"},
    "logLevel": {"enum": ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]},
    "workerGroup": {"type": "object", "properties": {"key": {"type": "string"}}},
    "runIf": {"type": "string"},
}


def task_schema(plugin) -> dict[str, Any]:
    """One task type's schema: its own properties, the ones every task has, `id` and `type` required."""
    schema = plugin.json_schema()
    schema["properties"] = {**COMMON_TASK, **schema.get("properties", {})}
    schema["required"] = sorted({"id", *schema.get("required", [])})
    for field in schema.get("x-children", {}):
        schema["properties"][field] = TASK_LIST if schema["x-children"][field] == "list" else {"type": "object"}
    return schema


@functools.cache  # the plugins are known at start: one schema per process
def flow_schema() -> dict[str, Any]:
    """The whole flow: its keys, and `$defs/task`, one of every task type (told apart by `type`)."""
    defs: dict[str, Any] = {}
    choices = []
    for plugin in all_plugins():
        schema = _hoisted(task_schema(plugin), plugin.type, defs)
        defs[plugin.type] = schema
        choices.append({"$ref": f"#/$defs/{plugin.type}"})
    # A disabled task is not checked (as the loader does): it may be a draft.
    disabled = {"required": ["disabled"], "properties": {"disabled": {"const": True}}}
    defs["task"] = {"type": "object", "required": ["id", "type"], "anyOf": [disabled, *choices]}
    trigger = {
        "type": "object",
        "required": ["id", "type"],
        "properties": {
            "id": {"type": "string"},
            "type": {"enum": sorted(TRIGGER_TYPES)},
            "disabled": {"type": "boolean"},
            "cron": {"type": "string"},
            "key": {"type": "string"},
        },
    }
    properties: dict[str, Any] = {key: {} for key in sorted(FLOW_KEYS)}
    properties.update(
        id={"type": "string", "pattern": "^[a-zA-Z0-9][a-zA-Z0-9._-]*$", "maxLength": 100},
        namespace={"type": "string", "pattern": "^[a-zA-Z0-9][a-zA-Z0-9._-]*$", "maxLength": 150},
        description={"type": "string"},
        labels={"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]},
        inputs={
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type"],
                "anyOf": [{"required": ["id"]}, {"required": ["name"]}],  # `name`: the seed-era spelling
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "type": {"enum": sorted(INPUT_TYPES)},
                    "description": {"type": "string"},
                    "required": {"type": "boolean"},
                    "defaults": {},
                },
            },
        },
        variables={"type": "object"},
        tasks={**TASK_LIST, "minItems": 1},
        errors=TASK_LIST,
        afterExecution=TASK_LIST,
        triggers={"type": "array", "items": trigger},
        disabled={"type": "boolean"},
        outputs={"type": "array", "items": {"type": "object", "required": ["id"]}},
        retry=COMMON_TASK["retry"],
    )
    properties["finally"] = TASK_LIST
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Tern flow",
        "type": "object",
        "required": ["id", "namespace", "tasks"],
        "properties": properties,
        "additionalProperties": False,
        "$defs": defs,
    }


def _hoisted(schema: dict[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """Move a plugin schema's own `$defs` to the top, renamed `<type>.<name>` (two plugins may both name a
    model `Item`), and point its references there."""
    schema = copy.deepcopy(schema)
    own = schema.pop("$defs", {})
    renamed = {name: f"{prefix}.{name}" for name in own}

    def repoint(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in renamed:
                node = {**node, "$ref": f"#/$defs/{renamed[ref[8:]]}"}
            return {k: repoint(v) for k, v in node.items()}
        if isinstance(node, list):
            return [repoint(v) for v in node]
        return node

    for name, definition in own.items():
        defs[renamed[name]] = repoint(definition)
    return repoint(schema)
