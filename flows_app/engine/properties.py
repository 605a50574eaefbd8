"""Renders a task's templated properties and checks them against its plugin's typed Properties."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from flows_app.spec.model import TaskSpec
from plugins_app.base import Plugin, Properties, dynamic_fields

from .templating import TemplateError, render_value


class PropertyError(Exception):
    """A property could not be rendered or is invalid once rendered; the message names task and property."""


def render_properties(plugin: type[Plugin], task: TaskSpec, variables: Mapping[str, Any]) -> Properties:
    dynamic = dynamic_fields(plugin.Properties)
    raw: dict[str, Any] = {}
    for key, value in task.properties.items():
        if key in dynamic:
            try:
                value = render_value(value, variables)
            except TemplateError as exc:
                raise PropertyError(f"task '{task.id}', property '{key}': {exc}") from None
        raw[key] = value
    try:
        return plugin.Properties.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "?"
            problems.append(f"property '{where}': {error['msg']} (got {error.get('input')!r})")
        raise PropertyError(f"task '{task.id}', " + "; ".join(problems)) from None
