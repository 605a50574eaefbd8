"""Renders Kestra-style `{{ }}` templates with a sandboxed Jinja2 that speaks Pebble's syntax, filters and functions."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2 import ChainableUndefined, StrictUndefined
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from . import operators, pebble
from .pebble_runtime import to_text
from .template_functions import FILTERS, GLOBALS, RAW_FILTERS, TESTS, filter_conventions
from .vocabulary import is_template, truthy

__all__ = ["TemplateError", "check_syntax", "is_template", "render", "render_value", "truthy"]


class TemplateError(Exception):
    """A template failed to compile or render; str() names the expression and the cause."""

    def __init__(self, expression: str, cause: str) -> None:
        super().__init__(f"{expression}: {cause}")
        self.expression = expression
        self.cause = cause


class PebbleUndefined(ChainableUndefined, StrictUndefined):
    """Pebble's strict variables: `a.b.c` on a missing `a` may reach `??`, `default` or `is defined`,
    but printing, iterating or comparing it fails."""

    __slots__ = ()


def render(template: str, variables: Mapping[str, Any]) -> str:
    """Render `template` with `variables`; every failure is a TemplateError naming the template."""
    if not is_template(template):
        return template
    compiled = _compile(template)
    try:
        return compiled.render(variables)
    except TemplateError:
        raise  # from a nested render() the caller put in `variables`: it names the inner template
    except Exception as exc:  # anything a template runs is the template's failure
        raise TemplateError(template, _describe(template, exc)) from exc


def render_value(value: Any, variables: Mapping[str, Any]) -> Any:
    """Render every string in `value`, recursing into dict keys and values and list items."""
    if isinstance(value, str):
        return render(value, variables) if is_template(value) else value
    if isinstance(value, Mapping):
        return {render_value(k, variables): render_value(v, variables) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [render_value(item, variables) for item in value]
    return value


def check_syntax(template: str) -> None:
    """Raise TemplateError if `template` does not compile (for validating flows without running them)."""
    if is_template(template):
        _compile(template)


@functools.lru_cache(maxsize=4096)
def _compile(template: str) -> jinja2.Template:
    """Rewrite Pebble into Jinja and compile it once per distinct source (rendering is on the hot path)."""
    try:
        return _ENV.from_string(pebble.to_jinja(template))
    except jinja2.TemplateSyntaxError as exc:
        where = f" (line {exc.lineno})" if "\n" in template.strip() else ""
        raise TemplateError(template, f"syntax error: {exc.message}{where}") from exc


# Jinja says "'dict object' has no attribute 'nope'"; we find the path in the source to say "'outputs'".
_MISSING = re.compile(r"'?(?:dict|list|str|[\w.]*\bLabels) object'? has no (attribute|element) '?([^']*)'?$")


def _describe(template: str, exc: Exception) -> str:
    """A readable cause for `exc`, naming the variable path when an attribute is missing."""
    message = str(exc) or type(exc).__name__
    if not isinstance(exc, (jinja2.TemplateError, ValueError, TypeError, ArithmeticError)):
        message = f"{type(exc).__name__}: {message}"
    missing = _MISSING.search(message)
    if missing:
        kind, key = missing.groups()
        escaped = re.escape(key)
        path = re.search(
            rf"([A-Za-z_]\w*(?:\.\w+|\[[^\]]*\])*?)(?:\.{escaped}\b|\[\s*['\"]?{escaped}['\"]?\s*\])", template
        )
        if path:
            shown = f"'{key}'" if kind == "attribute" else key
            return f"'{path.group(1)}' has no {kind} {shown}"
    return message


class _Environment(SandboxedEnvironment):
    """The sandbox, reading a map's keys before its methods and doing arithmetic by Pebble's rules."""

    intercepted_binops = frozenset(operators.OPERATIONS)
    intercepted_unops = operators.UNARY

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return operators.binary(operator, left, right)

    def call_unop(self, context: Context, operator: str, arg: Any) -> Any:
        return operators.unary(operator, arg)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Kestra data is maps: `outputs.return.values` is the task's `values` output, not dict.values.
        # A missing key still falls back to methods, so Jinja's `m.items()` keeps working.
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)


def _environment() -> SandboxedEnvironment:
    env = _Environment(
        undefined=PebbleUndefined,
        finalize=to_text,  # how values print: null as nothing, true/false, JSON
        autoescape=False,
        keep_trailing_newline=True,  # Kestra keeps the text exactly, final newline included
    )
    env.filters.update({name: filter_conventions(fn) for name, fn in FILTERS.items()})
    env.filters.update(RAW_FILTERS)
    env.globals.update(GLOBALS)
    env.tests.update(TESTS)
    return env


_ENV = _environment()
