"""Real flows, mangled as text and as data: each loads as a spec or is refused with placed errors, never a
traceback or a hang. The budget is fixed (tests/conftest.py); HYPOTHESIS_PROFILE=deep searches wider."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from flows_app.spec.errors import FlowValidationError
from flows_app.spec.model import FlowSpec
from plugins_app.registry import all_plugins

from .strategies import PLUGIN_TYPES, SEED_PATHS, TRICKY_TEXT, json_values, load_or_refuse

PLUGINS = all_plugins()
SOURCES = [path.read_text() for path in SEED_PATHS]
# Seeds as data, for the data-level mutations: yaml.safe_load reads all of them (duplicate keys: last wins).
DATA = [data for data in map(yaml.safe_load, SOURCES) if isinstance(data, dict)]

# Values a text edit may put after `key:`: what broke the loader once, and its neighbours.
NASTY_VALUES = [
    "&a [*a]",
    "&b {x: *b}",
    "*nowhere",
    "!!python/object/apply:os.system ['true']",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!Ref x",
    "!!str",
    "!!int x",
    "!!float [1]",
    "9" * 5000,
    "-" + "9" * 30,
    "1e999",
    "-.inf",
    ".nan",
    "0x" + "f" * 40,
    "0o777",
    "1_000",
    "190:20:30",
    "PT99999999999999999999H",
    "P9999999999W",
    "'{{ unclosed'",
    "'{% if %}'",
    '"\\ud800"',
    '"\\x00"',
    '"\\u0007"',
    "[" * 100 + "]" * 100,
    "{a: " * 80 + "1" + "}" * 80,
    "{<<: 3}",
    "{<<: [1]}",
    "{<<: *nowhere}",
    "2024-02-30",
    "'0 0 31 2 *'",
    "~",
    "[]",
    "{}",
    "''",
    "|",
    ">-",
    "[1, 2",
    "{a: 1",
    "'unclosed",
    "? a",
    "- x",
    "@",
    "`",
    "%YAML 1.1",
]
YAML_CHARACTERS = st.sampled_from(list(":-[]{}&*!|>'\"#%@`,? \t\n\\") + ["\x00", "\x85", "\ufeff", "\u2028"])


def _line(draw, lines: list[str]) -> int:
    return draw(st.integers(0, max(len(lines) - 1, 0)))


def delete_line(draw, lines: list[str]) -> list[str]:
    i = _line(draw, lines)
    return lines[:i] + lines[i + 1 :]


def duplicate_line(draw, lines: list[str]) -> list[str]:
    i = _line(draw, lines)
    return lines[: i + 1] + lines[i:]


def swap_lines(draw, lines: list[str]) -> list[str]:
    i, j = _line(draw, lines), _line(draw, lines)
    lines = list(lines)
    if lines:
        lines[i], lines[j] = lines[j], lines[i]
    return lines


def insert_characters(draw, lines: list[str]) -> list[str]:
    i = _line(draw, lines)
    line = lines[i] if lines else ""
    at = draw(st.integers(0, len(line)))
    text = draw(st.text(YAML_CHARACTERS | st.characters(), min_size=1, max_size=4))
    return lines[:i] + [line[:at] + text + line[at:]] + lines[i + 1 :]


def reindent(draw, lines: list[str]) -> list[str]:
    i = _line(draw, lines)
    line = lines[i].lstrip(" ") if lines else ""
    return lines[:i] + [" " * draw(st.integers(0, 12)) + line] + lines[i + 1 :]


def replace_value(draw, lines: list[str]) -> list[str]:
    """`key: value` becomes `key: <something nasty>`."""
    keyed = [i for i, line in enumerate(lines) if ":" in line]
    if not keyed:
        return lines
    i = draw(st.sampled_from(keyed))
    key = lines[i].split(":", 1)[0]
    return lines[:i] + [f"{key}: {draw(st.sampled_from(NASTY_VALUES))}"] + lines[i + 1 :]


def alias_inside_its_anchor(draw, lines: list[str]) -> list[str]:
    """Anchor a block (`tasks: &loop`) and use it inside itself, at a line below (`- *loop`)."""
    blocks = [i for i, line in enumerate(lines) if line.rstrip().endswith(":")]
    if not blocks:
        return lines
    i = draw(st.sampled_from(blocks))
    j = draw(st.integers(i + 1, len(lines)))
    indent = " " * (len(lines[i]) - len(lines[i].lstrip()) + 2)
    use = draw(st.sampled_from(["- *loop", "again: *loop", "<<: *loop"]))
    return lines[:i] + [lines[i].rstrip() + " &loop"] + lines[i + 1 : j] + [indent + use] + lines[j:]


TEXT_MUTATIONS: list[Callable[..., list[str]]] = [
    delete_line,
    duplicate_line,
    swap_lines,
    insert_characters,
    reindent,
    replace_value,
    alias_inside_its_anchor,
]


@st.composite
def mangled_text(draw) -> str:
    lines = draw(st.sampled_from(SOURCES)).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        lines = draw(st.sampled_from(TEXT_MUTATIONS))(draw, lines)
    return "\n".join(lines) + "\n"


def _slots(data: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) of a tree, outermost first."""
    found: list[tuple[Any, Any]] = []
    todo = [data]
    while todo:
        node = todo.pop(0)
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            found.append((node, key))
            todo.append(value)
    return found


@st.composite
def mangled_data(draw) -> str:
    """A seed parsed, its values replaced by others of any type, keys dropped and added, dumped back."""
    data = copy.deepcopy(draw(st.sampled_from(DATA)))
    for _ in range(draw(st.integers(1, 5))):
        slots = _slots(data)
        if not slots:  # everything was dropped
            break
        container, key = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(["replace", "replace", "drop", "add", "duplicate"]))
        if action == "replace":
            container[key] = draw(json_values)
        elif action == "drop":
            del container[key]
        elif action == "add" and isinstance(container, dict):
            container[draw(st.sampled_from(KNOWN_KEYS_AND_JUNK))] = draw(json_values)
        elif action == "duplicate" and isinstance(container, list):
            container.append(copy.deepcopy(container[key]))
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


KNOWN_KEYS_AND_JUNK = [
    "id",
    "type",
    "tasks",
    "retry",
    "timeout",
    "inputs",
    "triggers",
    "cron",
    "dependsOn",
    "values",
    "defaults",
    "cases",
    "x-unknown",
    "Id",
    "",
]


@pytest.mark.parametrize("path", SEED_PATHS, ids=lambda p: p.name)
def test_each_seed_is_what_its_name_says(path):
    """The mutations start from flows that load (or, for `invalid-*`, are refused for a reason)."""
    outcome = load_or_refuse(path.read_text())
    wanted = FlowValidationError if path.name.startswith("invalid-") else FlowSpec
    assert isinstance(outcome, wanted), outcome


@given(mangled_text())
def test_a_flow_mangled_as_text_loads_or_is_refused_with_placed_errors(source):
    load_or_refuse(source)


@given(mangled_data())
def test_a_flow_mangled_as_data_loads_or_is_refused_with_placed_errors(source):
    load_or_refuse(source)


@st.composite
def any_task(draw) -> dict[str, Any]:
    """A task of any type whose properties (its own, its children, the common ones) hold anything."""
    plugin = draw(st.sampled_from(PLUGINS))
    keys = sorted(
        {info.alias or name for name, info in plugin.Properties.model_fields.items()}
        | set(getattr(plugin, "child_fields", None) or {})
        | {"timeout", "retry", "disabled", "runIf"}
    )
    child = st.fixed_dictionaries(
        {"id": st.sampled_from(["c1", "c2"]), "type": st.sampled_from(PLUGIN_TYPES), "message": st.just("hi")}
    )
    values = (
        json_values
        | st.lists(child, max_size=2)
        | st.dictionaries(st.text(max_size=3), st.lists(child))
        | st.lists(st.fixed_dictionaries({"task": child, "dependsOn": st.lists(st.sampled_from(["c1", "c2"]))}))
    )
    task = {"id": "t", "type": plugin.type}
    for key in draw(st.lists(st.sampled_from(keys), max_size=5, unique=True)):
        task[key] = draw(values)
    return task


@given(any_task())
def test_a_task_of_any_type_with_any_properties_loads_or_is_refused(task):
    load_or_refuse(yaml.safe_dump({"id": "f", "namespace": "tests.fuzz", "tasks": [task]}))


@given(
    st.sampled_from(["timeout", "retry.interval", "retry.maxDuration", "duration"]),
    st.sampled_from(TRICKY_TEXT) | st.integers() | st.floats(),
)
def test_any_duration_is_a_duration_or_a_placed_error(where, value):
    task: dict[str, Any] = {"id": "t", "type": "io.kestra.plugin.core.flow.Sleep", "duration": "PT1S"}
    if where.startswith("retry."):
        task["retry"] = {"type": "constant", "interval": "PT1S", where.split(".")[1]: value}
    else:
        task[where] = value
    source = yaml.safe_dump({"id": "f", "namespace": "tests.fuzz", "tasks": [task]})
    outcome = load_or_refuse(source)
    if isinstance(outcome, FlowValidationError):
        assert {e.path[-1] for e in outcome.errors} == {where.split(".")[-1]}, outcome
