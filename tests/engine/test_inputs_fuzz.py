"""Random input declarations and random values: a declaration loads or is a placed error, and a value is typed
JSON or an InputsError naming its input, never another exception. Budget: tests/conftest.py."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from flows_app.engine.inputs import InputsError, coerce_inputs
from flows_app.spec.inputs import INPUT_TYPES, InputSpec
from flows_app.spec.model import FlowSpec
from tests.spec.strategies import TRICKY_TEXT, json_values, load_or_refuse

TYPES = sorted(INPUT_TYPES)
# Text an input value may be given as (the CLI and web forms send text): near-misses of every type.
VALUE_TEXT = TRICKY_TEXT + [
    "42",
    "-7",
    "+3",
    "4.5",
    "-0.0",
    ".5",
    "1e3",
    "1e400",
    "inf",
    "nan",
    "٣",
    "TRUE",
    " false ",
    "yes",
    "2024-01-31T09:30",
    "2024-01-31 09:30:00+02:00",
    "2024-13-01",
    "23:59:59.999999",
    "09:30+02:00",
    "a: &a [*a]",
    "a: [" + "[" * 100 + "]",
    "{a: 1}",
    "- 1\n- 2",
    "!!python/object:os.system {}",
    "!!binary aGk=",
    "!!set {a}",
    "? [1]\n: x",
    "x: 2024-02-30",
    "[1, [2]]",
    '["a", "b"]',
    "[1e999]",
    "x.csv",
    "x.CSV",
]
values = json_values | st.sampled_from(VALUE_TEXT) | st.lists(st.sampled_from(VALUE_TEXT), max_size=3)
REGEXES = ["[a-z]+", "^\\d{3}$", "(", "a{4294967296}", "(" * 1000 + ")" * 1000, "(?i)x", "", ".*"]

# What each key of a declaration is given: mostly the right kind of thing, sometimes anything.
KEY_VALUES = {
    "defaults": values,
    "prefill": values,
    "min": values,
    "max": values,
    "after": values,
    "before": values,
    "minLength": st.integers(-2, 5) | values,
    "maxLength": st.integers(-2, 5) | values,
    "validator": st.sampled_from(REGEXES) | json_values,
    "values": st.lists(st.sampled_from(VALUE_TEXT) | st.integers(), max_size=4) | json_values,
    "options": st.lists(st.sampled_from(VALUE_TEXT), max_size=3) | json_values,
    "itemType": st.sampled_from(TYPES) | json_values,
    "required": st.booleans() | json_values,
    "allowCustomValue": st.booleans() | json_values,
    "acceptedExtensions": st.lists(st.sampled_from([".csv", ".txt", ""]), max_size=2) | json_values,
    "dependsOn": st.fixed_dictionaries({"inputs": st.lists(st.sampled_from(["a", "b", "c"]), max_size=2)})
    | json_values,
    "expression": st.sampled_from(["{{ [1, 2] }}", "{{"]) | json_values,
    "description": json_values,
    "displayName": json_values,
    "name": json_values,
    "extension": json_values,
    "isRadio": json_values,
    "autoSelectFirst": json_values,
    "x-unknown": json_values,
}


@st.composite
def declaration(draw, input_id: str) -> dict:
    decl = {"id": input_id, "type": draw(st.sampled_from(TYPES) | json_values)}
    for key in draw(st.lists(st.sampled_from(sorted(KEY_VALUES)), max_size=4, unique=True)):
        decl[key] = draw(KEY_VALUES[key])
    return decl


@st.composite
def flow_with_inputs(draw) -> str:
    ids = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True))
    flow = {
        "id": "fuzz",
        "namespace": "tests.fuzz",
        "inputs": [draw(declaration(i)) for i in ids],
        "tasks": [{"id": "t", "type": "io.kestra.plugin.core.log.Log", "message": "{{ inputs }}"}],
    }
    return yaml.safe_dump(flow, sort_keys=False, allow_unicode=True)


def _stored(input_id: str, path_or_bytes) -> str:
    return f"kestra://tests/{input_id}"


@given(flow_with_inputs(), st.data())
def test_any_declaration_and_any_value_give_typed_json_or_an_inputs_error(source, data):
    spec = load_or_refuse(source)
    if not isinstance(spec, FlowSpec):
        assert all(e.path[0] == "inputs" for e in spec.errors), spec
        return
    given_values = {i.id: data.draw(values) for i in spec.inputs if data.draw(st.booleans())}
    store_file = data.draw(st.sampled_from([None, _stored]))
    try:
        result = coerce_inputs(spec.inputs, given_values, store_file=store_file)
    except InputsError as exc:
        assert exc.errors and all(line.startswith("inputs.") for line in exc.errors), exc.errors
        return
    assert set(result) == {i.id for i in spec.inputs}
    json.dumps(result, allow_nan=False)  # stored as JSON on the execution


@given(st.text(max_size=10))
def test_a_secret_value_never_appears_in_an_error(text):
    secret = InputSpec(id="token", type="SECRET", validator="[a-z]+", min=3, max=12)
    try:
        coerce_inputs([secret], {"token": "hunter2-" + text})  # never matches the validator
    except InputsError as exc:
        assert "hunter2" not in str(exc), exc
    else:
        raise AssertionError("a value that does not match the validator was accepted")


@pytest.mark.parametrize(
    "type_, value, message",
    [
        ("INT", "9" * 5000, "has too many digits"),
        ("DATETIME", "9999-12-31T23:00:00-05:00", "is out of range once in UTC"),
        ("JSON", "[" * 5000, "is not valid JSON: too large or too deeply nested"),
        ("JSON", "9" * 5000, "is not valid JSON: too large or too deeply nested"),
        ("YAML", "a: &a [*a]", "is not valid YAML: alias *a is used inside its own anchor &a"),
        ("YAML", "x: 2024-02-30", "is not valid YAML: a value out of range"),
        ("YAML", "[" * 100 + "]" * 100, "is not valid YAML: nesting deeper than 64 levels"),
        ("ARRAY", "[" * 5000, 'is not a list (like ["a", "b"])'),
        ("FILE", "file://[", "is not a file URI (like file:///tmp/data.csv)"),
        ("JSON", {(1, 2): "a key JSON cannot hold"}, "this dict cannot be stored as JSON"),
    ],
)
def test_a_value_that_once_crashed_coercion_is_an_inputs_error(type_, value, message):
    spec = InputSpec(id="x", type=type_, item_type="STRING" if type_ == "ARRAY" else None)
    with pytest.raises(InputsError) as caught:
        coerce_inputs([spec], {"x": value}, store_file=_stored)
    (error,) = caught.value.errors
    assert error.startswith("inputs.x: ") and error.endswith(message), error


def test_a_tiny_duration_keeps_within_its_bounds():
    """It was stored as `PT1e-06S`, which the bound check could not read back."""
    spec = InputSpec(id="d", type="DURATION", min="PT0S", max="PT1S")
    assert coerce_inputs([spec], {"d": "PT0.000001S"}) == {"d": "PT0.000001S"}
