"""Renders Kestra-style `{{ }}` templates with a sandboxed Jinja2 that speaks Pebble's syntax, filters and functions."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2 import ChainableUndefined, StrictUndefined, nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment

from . import budget, growth, operators, pebble
from .budget import BudgetExceeded, RenderStopped
from .pebble_runtime import to_text
from .template_functions import FILTERS, GLOBALS, RAW_FILTERS, TESTS, filter_conventions
from .vocabulary import is_template, truthy

__all__ = ["RenderStopped", "TemplateError", "check_syntax", "is_template", "render", "render_value", "truthy"]


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
    """Render `template` with `variables`, within the render budget (see `budget`); every failure is a
    TemplateError naming the template, but for RenderStopped: the task was killed or timed out."""
    if not is_template(template):
        return template
    compiled = _compile(template)
    with budget.spending() as spent:
        try:
            return _printed(compiled, variables, spent)
        except (TemplateError, RenderStopped):
            raise  # from a nested render() the caller put in `variables`: it names the inner template
        except Exception as exc:  # anything a template runs is the template's failure
            raise TemplateError(template, _describe(template, exc)) from exc


def _printed(compiled: jinja2.Template, variables: Mapping[str, Any], spent: budget.Budget) -> str:
    """Template.render, but counting what is printed as it comes (a loop may print without end)."""
    limit = spent.limits.max_chars
    pieces, size = [], 0
    for piece in compiled.root_render_func(compiled.new_context(dict(variables))):  # as Template.render does
        size += len(piece)
        if size > limit:
            raise BudgetExceeded(f"the render printed more than {limit:,} characters (TERN_TEMPLATE_MAX_CHARS)")
        pieces.append(piece)
        spent.tick()
    return "".join(pieces)


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
        tree = _ENV.parse(pebble.to_jinja(template))
        _guard(tree)
        return _ENV.from_string(tree)
    except jinja2.TemplateSyntaxError as exc:
        where = f" (line {exc.lineno})" if "\n" in template.strip() else ""
        raise TemplateError(template, f"syntax error: {exc.message}{where}") from exc


def _guard(tree: nodes.Template) -> None:
    """Make each step of every loop and every `~` go through the render's budget (Jinja runs them
    without a call the sandbox sees)."""
    for loop in tree.find_all(nodes.For):
        guard = nodes.Name(_LOOP_GUARD, "load", lineno=loop.lineno)
        loop.iter = nodes.Call(guard, [loop.iter], [], None, None, lineno=loop.lineno)
    for parent in tree.find_all(nodes.Node):
        for field in parent.fields:
            child = getattr(parent, field)
            if isinstance(child, nodes.Concat):
                setattr(parent, field, _guarded_concat(child))
            elif isinstance(child, list):
                setattr(parent, field, [_guarded_concat(c) if isinstance(c, nodes.Concat) else c for c in child])
    tree.set_environment(_ENV)


def _guarded_concat(concat: nodes.Concat) -> nodes.Call:
    guard = nodes.Name(_CONCAT_GUARD, "load", lineno=concat.lineno)
    return nodes.Call(guard, concat.nodes, [], None, None, lineno=concat.lineno)


def _concat(*parts: Any) -> str:
    """Jinja's `~` (where Pebble's is left as written, as in `{% set ns.t = ... %}`): each side as str()
    prints it, joined, and sized before the join (the sandbox's `call` counts the result as built)."""
    texts = [part if isinstance(part, str) else str(part) for part in parts]
    budget.ensure_chars(sum(len(text) for text in texts))
    return "".join(texts)


_LOOP_GUARD, _CONCAT_GUARD = "_tern_bounded_iteration", "_tern_concat"


# Jinja says "'dict object' has no attribute 'nope'"; we find the path in the source to say "'outputs'".
_MISSING = re.compile(r"'?(?:dict|list|str|[\w.]*\bLabels) object'? has no (attribute|element) '?([^']*)'?$")


def _describe(template: str, exc: Exception) -> str:
    """A readable cause for `exc`, naming the variable path when an attribute is missing."""
    message = str(exc) or type(exc).__name__
    if not isinstance(exc, (jinja2.TemplateError, ValueError, TypeError, ArithmeticError, BudgetExceeded)):
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


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, reading a map's keys before its methods and doing arithmetic by Pebble's rules; no
    template changes a value in place (`list.append` and friends are refused, as Pebble has none), and
    every call and operation spends the render's budget."""

    intercepted_binops = frozenset(operators.OPERATIONS)
    intercepted_unops = operators.UNARY

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return budget.built(operators.binary(operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        owner = getattr(method, "__self__", None)
        if isinstance(owner, str):  # `'x'.center(9)`: sized before it runs
            estimate = growth.TEXT_METHODS.get(getattr(__obj, "__name__", ""))
            if estimate is not None:
                estimate(owner, *args, **kwargs)
        return budget.built(super().call(__context, __obj, *args, **kwargs))

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


def _bounded_filter(name: str, fn: Any) -> Any:
    """`fn`, sized before it runs when its arguments make it grow (growth.FILTERS), checked once it has."""
    estimate = growth.FILTERS.get(name)
    skip = 1 if getattr(fn, "jinja_pass_arg", None) is not None else 0  # a context or environment first

    @functools.wraps(fn)  # keeps jinja_pass_arg
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if estimate is not None and len(args) > skip:
            estimate(*args[skip:], **kwargs)
        return budget.built(fn(*args, **kwargs))

    return bounded


# Jinja's globals that Kestra has no word for and that only make load (lipsum writes lorem ipsum).
_UNKNOWN_GLOBALS = ("lipsum", "cycler", "joiner")


def _environment() -> SandboxedEnvironment:
    env = _Environment(
        undefined=PebbleUndefined,
        finalize=to_text,  # how values print: null as nothing, true/false, JSON
        autoescape=False,
        keep_trailing_newline=True,  # Kestra keeps the text exactly, final newline included
    )
    env.filters.update({name: filter_conventions(fn) for name, fn in FILTERS.items()})
    env.filters.update(RAW_FILTERS)
    env.filters = {name: _bounded_filter(name, fn) for name, fn in env.filters.items()}
    for name in _UNKNOWN_GLOBALS:
        del env.globals[name]
    env.globals.update(GLOBALS)
    env.globals[_LOOP_GUARD] = budget.bounded_iteration
    env.globals[_CONCAT_GUARD] = _concat
    env.tests.update(TESTS)
    return env


_ENV = _environment()
