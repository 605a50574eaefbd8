"""The inputs that once crashed or hung the loader, each now a placed error; and the limits that keep it fast."""

from __future__ import annotations

import time

import pytest
import yaml

from flows_app.spec.durations import format_duration, parse_duration
from flows_app.spec.errors import FlowValidationError
from flows_app.spec.flow import MAX_ERRORS, load_flow
from flows_app.spec.yamlsource import YamlLimits

from .strategies import load_or_refuse

HEAD = "id: f\nnamespace: tests\n"
LOG = "  - id: t\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"


def errors_of(source: str, **limits) -> list[str]:
    with pytest.raises(FlowValidationError) as info:
        load_flow(source, YamlLimits(**limits)) if limits else load_flow(source)
    return [str(e) for e in info.value.errors]


def laughs(levels: int) -> str:
    """A "billion laughs": each level is ten aliases of the one before, 10**levels values in all."""
    lines = ["  lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 10)}]" for i in range(1, levels)]
    return HEAD + "variables:\n" + "\n".join(lines) + "\ntasks:\n" + LOG


# --- aliases ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, line",
    [
        ("a: &a [*a]\n", 1),
        (HEAD + "tasks: &loop\n" + LOG + "  - *loop\n", 7),
        (HEAD + "variables: &v\n  x: 1\n  <<: *v\ntasks:\n" + LOG, 5),
        ("? &k [*k]\n: value\n", 1),
    ],
)
def test_an_alias_used_inside_its_own_anchor_is_a_placed_error(source, line):
    anchor = source.split("&")[1].split()[0]
    assert errors_of(source) == [
        f"<flow>: invalid YAML: alias *{anchor} is used inside its own anchor &{anchor} (line {line})"
    ]


def test_a_billion_laughs_is_refused_at_once():
    started = time.monotonic()
    assert errors_of(laughs(9)) == ["<flow>: invalid YAML: aliases expand to more than 100000 values (line 8)"]  # lol4
    assert time.monotonic() - started < 2  # expanded, it would be a billion values


def test_the_alias_limit_counts_values_and_can_be_set():
    load_flow(laughs(3))  # 1110 values
    assert errors_of(laughs(3), max_alias_values=1000) == [
        "<flow>: invalid YAML: aliases expand to more than 1000 values (line 6)"
    ]  # lol2


def test_aliases_within_the_limit_still_share_settings():
    spec = load_flow(
        HEAD
        + """retry: &retry
  type: constant
  interval: PT1M
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: hi
    retry: *retry
  - id: b
    type: io.kestra.plugin.core.log.Log
    message: hi
    retry:
      <<: *retry
      maxAttempt: 3
"""
    )
    assert spec.task("a").retry == spec.retry
    assert spec.task("b").retry.interval == parse_duration("PT1M") and spec.task("b").retry.max_attempts == 3


# --- size and nesting ---------------------------------------------------------------------------


def test_nesting_past_64_levels_is_refused_with_its_line():
    def nested(lists: int) -> str:  # in the flow's map and `variables`, so two levels more
        return HEAD + "variables:\n  x: " + "[" * lists + "]" * lists + "\ntasks:\n" + LOG

    assert errors_of(nested(63)) == ["<flow>: invalid YAML: nesting deeper than 64 levels (line 4)"]
    assert str(load_flow(nested(62)).variables["x"]) == "[" * 62 + "]" * 62


def test_deep_nesting_does_not_reach_the_recursion_limit():
    assert errors_of("a: " + "{b: " * 5000 + "1" + "}" * 5000 + "\n") == [
        "<flow>: invalid YAML: nesting deeper than 64 levels (line 1)"
    ]


def test_a_source_past_the_size_limit_is_refused_before_parsing():
    source = HEAD + "description: " + "x" * 1_000_000 + "\ntasks:\n" + LOG
    assert errors_of(source) == [
        f"<flow>: the source is {len(source):,} bytes, more than the 1,000,000 a flow may have"
        " (TERN_FLOW_SOURCE_MAX_BYTES)"
    ]
    assert errors_of(HEAD, max_bytes=10) == [
        "<flow>: the source is 23 bytes, more than the 10 a flow may have (TERN_FLOW_SOURCE_MAX_BYTES)"
    ]


def test_a_flow_with_thousands_of_mistakes_stops_after_the_first_ones():
    task = "  - id: t{i}\n    type: io.kestra.plugin.core.log.Logg{i}\n    message: hi\n"
    tasks = "".join(task.format(i=i) for i in range(2000))
    errors = errors_of(HEAD + "tasks:\n" + tasks)  # a difflib suggestion for each of 2000 would take seconds
    assert len(errors) == MAX_ERRORS + 1
    assert errors[0].startswith("tasks[0].type: unknown task type 'io.kestra.plugin.core.log.Logg0'")
    assert f"<flow>: stopped after {MAX_ERRORS} errors (line 602)" in errors  # at the 200th, t199


def test_a_long_dag_chain_is_checked_without_recursion():
    entries = [
        {"task": {"id": f"t{i}", "type": "io.kestra.plugin.core.log.Log", "message": "x"}, "dependsOn": [f"t{i + 1}"]}
        for i in range(1200)
    ]
    dag = {"id": "dag", "type": "io.kestra.plugin.core.flow.Dag", "tasks": entries}
    flow = {"id": "f", "namespace": "tests", "tasks": [dag]}
    assert "dependency cycle" not in "\n".join(errors_of(yaml.safe_dump(flow)))  # t1199 depends on a missing t1200
    entries[-1]["dependsOn"] = ["t0"]
    (cycle,) = errors_of(yaml.safe_dump(flow))
    assert cycle.startswith("tasks[0].tasks: dependency cycle: t0 -> t1 -> t2 -> ") and "t1199 -> t0" in cycle


# --- values -------------------------------------------------------------------------------------


NO_CHARACTER = "an escape that is no character (a lone surrogate like \\ud800, or past \\U0010FFFF) (line 3)"


@pytest.mark.parametrize(
    "value, message",
    [
        ("PT99999999999999999999H", "'PT99999999999999999999H' is not a duration: it is longer than 999999999 days"),
        ("99999999999d", "'99999999999d' is not a duration: it is longer than 999999999 days"),
        (".inf", "'inf' is not a duration: it is longer than 999999999 days"),
        (".nan", "'nan' is not a duration"),
        ("-5", "'-5' is not a duration: it is negative"),
    ],
)
def test_a_duration_out_of_range_is_a_duration_error(value, message):
    retry = f"    retry:\n      type: constant\n      interval: {value}\n"
    assert errors_of(HEAD + "tasks:\n" + LOG + retry) == [f"tasks[0].retry.interval: {message} (line 9)"]
    assert errors_of(HEAD + "tasks:\n" + LOG + f"    timeout: {value}\n") == [f"tasks[0].timeout: {message} (line 7)"]


def test_a_duration_is_printed_so_that_it_reads_back():
    for text in ("PT0.000001S", "PT1H30M", "PT0.25S", "PT0S", "PT23999999999H59M59.999999S"):
        assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize(
    "value, message",
    [
        ("9" * 5000, "revision: invalid YAML: the number 99999999999999999999... is too large (line 3)"),
        (
            "!!python/object/apply:os.system ['true']",
            "revision: invalid YAML: tag '!!python/object/apply:os.system' is not allowed (line 3)",
        ),
        ("!!binary aGVsbG8=", "revision: invalid YAML: tag '!!binary' is not allowed (line 3)"),
        # libyaml refuses these escapes as it parses, before a key is known: the line says where
        ('"\\ud800"', "<flow>: invalid YAML: " + NO_CHARACTER),
        ('"\\U00110000"', "<flow>: invalid YAML: " + NO_CHARACTER),
        (
            "{<<: 3}",
            "revision: invalid YAML: expected a mapping or list of mappings for merging, but found scalar (line 3)",
        ),
        ("x\x00", "<flow>: invalid YAML: the character U+0000 is not allowed (line 3)"),
    ],
)
def test_a_value_python_or_json_cannot_hold_is_a_placed_error(value, message):
    assert errors_of(HEAD + f"revision: {value}\ntasks:\n" + LOG) == [message]


def test_a_key_that_is_not_a_plain_value_is_a_placed_error():
    assert "<flow>: a mapping key must be a plain value (line 3)" in errors_of(HEAD + "? [a, b]\n: x\ntasks:\n" + LOG)


@pytest.mark.parametrize(
    "snippet, message",
    [
        (
            "inputs:\n  - id: a\n    type: ARRAY\n    itemType: [STRING]\n",
            "inputs[0].itemType: `itemType` cannot be ['STRING']",
        ),
        (
            "inputs:\n  - id: a\n    type: STRING\n  - id: b\n    type: STRING\n    dependsOn: {inputs: [[a]]}\n",
            "inputs[1].dependsOn.inputs[0]: ['a'] is not another input of this flow",
        ),
        (
            "inputs:\n  - id: a\n    type: STRING\n    validator: 'a{4294967296}'\n",
            "inputs[0].validator: 'a{4294967296}' is not a valid regular expression: the repetition number is too large",
        ),
        (
            "inputs:\n  - id: a\n    type: STRING\n    validator: '" + "(" * 1000 + ")" * 1000 + "'\n",
            "is not a valid regular expression: groups nested too deeply",
        ),
        ("outputs:\n  - id: [x]\n    type: STRING\n    value: x\n", "outputs[0].id: '['x']' is not a valid id"),
        ("disabled: 'false'\n", "disabled: 'false' is not a boolean (true or false)"),
    ],
)
def test_a_declaration_of_the_wrong_kind_is_a_placed_error(snippet, message):
    (error,) = errors_of(HEAD + snippet + "tasks:\n" + LOG)
    assert message in error and "(line " in error


def test_an_empty_source_is_placed_on_line_one():
    assert errors_of("") == ["<flow>: a flow must be a YAML map with at least `id`, `namespace` and `tasks` (line 1)"]


def test_the_fuzz_check_rejects_an_unplaced_error():
    """load_or_refuse is the oracle of the fuzz tests: it must fail on what it is meant to catch."""
    with pytest.raises(AssertionError, match="unplaced error"):
        load_or_refuse(HEAD + "description: " + "x" * 1_000_000)
