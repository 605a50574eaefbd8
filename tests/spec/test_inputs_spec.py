"""Parsing the `inputs:` declarations of a flow: what is accepted, and where each mistake is reported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flows_app.spec import inputs as inputs_module
from flows_app.spec.errors import ErrorCollector
from flows_app.spec.inputs import INPUT_TYPES, InputSpec, parse_inputs
from flows_app.spec.yamlsource import load_yaml

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "kestra-corpus"


def parse(source: str) -> tuple[tuple[InputSpec, ...], list[str]]:
    """Parse the inputs of a YAML flow; return the specs and the errors as text (with line numbers)."""
    data, lines, dup_errors = load_yaml(textwrap.dedent(source))
    assert not dup_errors
    errors = ErrorCollector(lines=lines)
    specs = parse_inputs(data.get("inputs"), ("inputs",), errors)
    return specs, [str(e) for e in errors.errors]


def parse_ok(source: str) -> tuple[InputSpec, ...]:
    specs, errors = parse(source)
    assert errors == []
    return specs


def one_error(source: str) -> str:
    _, errors = parse(source)
    assert len(errors) == 1, errors
    return errors[0]


# --- what is accepted ---------------------------------------------------------------------------


def test_it_reads_a_string_input_with_kestra_defaults():
    (spec,) = parse_ok("""
        inputs:
          - id: user
            type: STRING
    """)
    assert spec == InputSpec(id="user", type="STRING", required=True)
    assert spec.defaults is None and spec.extra == {}


def test_it_reads_every_common_property():
    (spec,) = parse_ok("""
        inputs:
          - id: region
            type: STRING
            displayName: Region
            description: Where to deploy
            required: false
            defaults: eu-west-1
            validator: "[a-z]+-[a-z]+-[0-9]"
    """)
    assert (spec.display_name, spec.description, spec.required) == ("Region", "Where to deploy", False)
    assert (spec.defaults, spec.validator) == ("eu-west-1", "[a-z]+-[a-z]+-[0-9]")


def test_it_accepts_the_seed_era_name_key():
    specs = parse_ok("""
        inputs:
          - name: namespace
            type: STRING
            required: false
            defaults: io.kestra.tests
          - name: errorOnMissing
            type: BOOLEAN
            defaults: false
    """)
    assert [s.id for s in specs] == ["namespace", "errorOnMissing"]
    assert specs[1].defaults is False


def test_id_wins_over_name_as_in_kestra():
    (spec,) = parse_ok("""
        inputs:
          - id: new
            name: old
            type: INT
    """)
    assert spec.id == "new"


def test_an_id_may_hold_dots_dashes_and_underscores():
    (spec,) = parse_ok("""
        inputs:
          - id: 1st.input_name-x
            type: STRING
    """)
    assert spec.id == "1st.input_name-x"


def test_it_reads_choices_as_text():
    select, multi, enum = parse_ok("""
        inputs:
          - id: mode
            type: SELECT
            values: [PASS, CANCEL]
            allowCustomValue: true
            defaults: PASS
          - id: sizes
            type: MULTISELECT
            values: [1, 2, 3]
            defaults: [1, 3]
          - id: level
            type: ENUM
            values: [LOW, HIGH]
    """)
    assert select.values == ("PASS", "CANCEL") and select.allow_custom_value is True
    assert multi.values == ("1", "2", "3")
    assert enum.values == ("LOW", "HIGH") and enum.allow_custom_value is False


def test_a_multiselect_accepts_the_old_options_key():
    (spec,) = parse_ok("""
        inputs:
          - id: colours
            type: MULTISELECT
            options: [red, blue]
    """)
    assert spec.values == ("red", "blue")


def test_a_select_from_an_expression_needs_no_values():
    (spec,) = parse_ok("""
        inputs:
          - id: env
            type: SELECT
            expression: "{{ kv('envs') }}"
    """)
    assert spec.values is None
    assert spec.extra == {"expression": "{{ kv('envs') }}"}


def test_it_reads_an_array_with_its_item_type_and_default():
    (spec,) = parse_ok("""
        inputs:
          - id: ports
            type: ARRAY
            itemType: INT
            defaults: [80, 443]
    """)
    assert (spec.item_type, spec.defaults) == ("INT", [80, 443])


def test_it_normalises_bounds_per_type():
    number, text, moment, day, duration = parse_ok("""
        inputs:
          - id: n
            type: FLOAT
            min: 0
            max: 2.5
          - id: s
            type: STRING
            minLength: 2
            max: 10
          - id: at
            type: DATETIME
            after: 2024-01-01T01:00:00+01:00
          - id: day
            type: DATE
            before: 2030-12-31
          - id: wait
            type: DURATION
            min: 5m
            max: PT1H
    """)
    assert (number.min, number.max) == (0.0, 2.5)
    assert (text.min, text.max) == (2, 10)
    assert (moment.min, moment.max) == ("2024-01-01T00:00:00Z", None)
    assert (day.min, day.max) == (None, "2030-12-31")
    assert (duration.min, duration.max) == ("PT5M", "PT1H")


def test_it_keeps_ui_properties_in_extra():
    first, second = parse_ok("""
        inputs:
          - id: cloud
            type: SELECT
            values: [aws, gcp]
            autoSelectFirst: true
          - id: region
            type: STRING
            required: false
            prefill: eu
            dependsOn:
              inputs: [cloud]
              condition: "{{ inputs.cloud == 'aws' }}"
    """)
    assert first.extra == {"autoSelectFirst": True}
    assert second.extra["prefill"] == "eu"
    assert second.extra["dependsOn"]["inputs"] == ["cloud"]


def test_a_templated_default_is_left_for_run_time():
    (spec,) = parse_ok("""
        inputs:
          - id: when
            type: DATETIME
            defaults: "{{ now() }}"
    """)
    assert spec.defaults == "{{ now() }}"


def test_a_file_default_must_be_a_local_file_uri():
    (spec,) = parse_ok("""
        inputs:
          - id: data
            type: FILE
            defaults: file:///srv/data.csv
    """)
    assert spec.defaults == "file:///srv/data.csv"


def test_absent_inputs_are_no_inputs():
    errors = ErrorCollector()
    assert parse_inputs(None, ("inputs",), errors) == () and errors.errors == []


def test_every_type_says_which_properties_it_takes():
    assert set(inputs_module._TYPE_KEYS) == INPUT_TYPES


def test_every_declared_type_is_accepted():
    for type_ in sorted(INPUT_TYPES - {"ENUM", "SELECT", "MULTISELECT", "ARRAY"}):
        (spec,) = parse_ok(f"inputs:\n  - id: x\n    type: {type_}\n")
        assert spec.type == type_


# --- what is reported, and where -----------------------------------------------------------------


def test_inputs_must_be_a_list():
    assert one_error("inputs:\n  a: 1\n") == "inputs: must be a list of inputs (line 1)"


def test_an_input_must_be_a_map():
    assert (
        one_error("inputs:\n  - just-a-name\n")
        == "inputs[0]: an input must be a map with an `id` and a `type` (line 2)"
    )


def test_an_input_needs_an_id():
    assert one_error("inputs:\n  - type: STRING\n") == "inputs[0]: an input needs an `id` (line 2)"


def test_a_bad_id_is_reported_on_its_line():
    error = one_error("""
        inputs:
          - id: ok
            type: STRING
          - id: "wrong one"
            type: STRING
    """)
    assert error.startswith("inputs[1].id: 'wrong one' is not a valid input id")
    assert error.endswith("(line 5)")


def test_a_bad_seed_era_name_is_reported_under_name():
    assert one_error("inputs:\n  - name: -x\n    type: INT\n").startswith(
        "inputs[0].name: '-x' is not a valid input id"
    )


def test_duplicate_ids_are_rejected():
    specs, errors = parse("""
        inputs:
          - id: first_input
            type: STRING
          - name: first_input
            type: INT
    """)
    assert errors == ["inputs[1].name: duplicate input id 'first_input' (also inputs[0]) (line 5)"]
    assert [s.type for s in specs] == ["STRING"]


def test_an_input_without_a_type_is_rejected():
    assert one_error("inputs:\n  - id: x\n").startswith("inputs[0]: an input needs a `type`, one of ARRAY, BOOL")


def test_an_unknown_type_suggests_close_names():
    assert one_error("inputs:\n  - id: x\n    type: STRNG\n") == (
        "inputs[0].type: unknown input type 'STRNG'; did you mean STRING? (line 3)"
    )
    assert "did you mean INT?" in one_error("inputs:\n  - id: x\n    type: int\n")


def test_an_unknown_type_with_nothing_close_lists_the_types():
    assert "use one of ARRAY, BOOL, BOOLEAN" in one_error("inputs:\n  - id: x\n    type: FOO\n")


def test_a_validator_must_be_a_regex():
    assert one_error("inputs:\n  - id: x\n    type: STRING\n    validator: '[a-'\n").startswith(
        "inputs[0].validator: '[a-' is not a valid regular expression"
    )


def test_choices_need_values():
    assert (
        one_error("inputs:\n  - id: x\n    type: ENUM\n") == "inputs[0]: an input of type ENUM needs `values` (line 2)"
    )
    assert one_error("inputs:\n  - id: x\n    type: SELECT\n    values: []\n") == (
        "inputs[0].values: must be a non-empty list of plain values (line 4)"
    )


def test_an_array_needs_a_plain_item_type():
    assert one_error("inputs:\n  - id: x\n    type: ARRAY\n") == (
        "inputs[0]: an input of type ARRAY needs an `itemType` (line 2)"
    )
    assert one_error("inputs:\n  - id: x\n    type: ARRAY\n    itemType: ARRAY\n").startswith(
        "inputs[0].itemType: `itemType` cannot be 'ARRAY'"
    )
    assert one_error("inputs:\n  - id: x\n    type: ARRAY\n    itemType: WORD\n").startswith(
        "inputs[0].itemType: `itemType` cannot be 'WORD'"
    )


@pytest.mark.parametrize(
    "type_, default, message",
    [
        ("INT", "abc", "inputs[0].defaults: 'abc' is not an integer (line 4)"),
        ("INT", 1.5, "inputs[0].defaults: 1.5 is not an integer (line 4)"),
        ("BOOLEAN", "yes", "inputs[0].defaults: 'yes' is not a boolean (true or false) (line 4)"),
        (
            "DATETIME",
            "tomorrow",
            "inputs[0].defaults: 'tomorrow' is not a date-time (like 2024-01-31T09:30:00Z) (line 4)",
        ),
        ("DURATION", "PT15X", "inputs[0].defaults: 'PT15X' is not a duration (like PT15M or 15m) (line 4)"),
        (
            "JSON",
            "{oops",
            "inputs[0].defaults: '{oops' is not valid JSON: Expecting property name enclosed in double quotes (line 4)",
        ),
        ("EMAIL", "nobody", "inputs[0].defaults: 'nobody' is not an email address (line 4)"),
        (
            "FILE",
            "something",
            "inputs[0].defaults: an input of type FILE only accepts a file URI (file:///path) as `defaults` (line 4)",
        ),
    ],
)
def test_a_default_must_be_valid_for_its_type(type_, default, message):
    assert one_error(f"inputs:\n  - id: x\n    type: {type_}\n    defaults: {default!r}\n") == message


def test_a_default_must_obey_the_inputs_own_rules():
    assert (
        one_error("""
        inputs:
          - id: mode
            type: SELECT
            values: [A, B]
            defaults: C
    """)
        == "inputs[0].defaults: 'C' is not one of 'A', 'B' (line 6)"
    )
    assert (
        one_error("""
        inputs:
          - id: code
            type: STRING
            validator: "[0-9]+"
            defaults: abc
    """)
        == "inputs[0].defaults: 'abc' does not match the pattern `[0-9]+` (line 6)"
    )


def test_a_bad_array_default_names_the_item():
    assert (
        one_error("""
        inputs:
          - id: ports
            type: ARRAY
            itemType: INT
            defaults: [80, http]
    """)
        == "inputs[0].defaults[1]: 'http' is not an integer (line 6)"
    )


def test_a_bad_secret_default_does_not_echo_the_secret():
    error = one_error("""
        inputs:
          - id: pin
            type: SECRET
            validator: "[0-9]{4}"
            defaults: hunter2
    """)
    assert error == "inputs[0].defaults: the value does not match the pattern `[0-9]{4}` (line 6)"


def test_unknown_keys_are_reported_with_a_suggestion():
    assert one_error("inputs:\n  - id: x\n    type: STRING\n    defualts: a\n") == (
        "inputs[0].defualts: unknown property `defualts`; did you mean `defaults`? (line 4)"
    )


def test_a_key_of_another_type_is_reported_as_not_applying():
    assert one_error("inputs:\n  - id: x\n    type: INT\n    validator: '[0-9]+'\n") == (
        "inputs[0].validator: `validator` does not apply to an input of type INT (line 4)"
    )


def test_property_kinds_are_checked():
    _, errors = parse("""
        inputs:
          - id: x
            type: STRING
            required: "no"
            description: [a]
            minLength: -1
          - id: n
            type: INT
            min: ten
    """)
    assert errors == [
        "inputs[0].required: must be true or false, not 'no' (line 5)",
        "inputs[0].description: must be a string, not ['a'] (line 6)",
        "inputs[0].minLength: must be a length (a whole number, 0 or more), not -1 (line 7)",
        "inputs[1].min: 'ten' is not an integer (line 10)",
    ]


def test_accepted_extensions_must_be_a_list():
    specs, errors = parse("inputs:\n  - id: f\n    type: FILE\n    acceptedExtensions: .csv\n")
    assert errors == ["inputs[0].acceptedExtensions: must be a list of extensions, like [.csv, .txt] (line 4)"]
    assert specs[0].extra == {}


def test_prefill_and_defaults_cannot_be_combined():
    assert one_error("inputs:\n  - id: x\n    type: STRING\n    defaults: a\n    prefill: b\n") == (
        "inputs[0].prefill: `prefill` and `defaults` cannot be used together (line 5)"
    )


def test_depends_on_must_name_another_input():
    assert (
        one_error("""
        inputs:
          - id: a
            type: STRING
          - id: b
            type: STRING
            dependsOn:
              inputs: [a, c]
    """)
        == "inputs[1].dependsOn.inputs[1]: 'c' is not another input of this flow (line 8)"
    )


def test_every_error_of_the_list_is_reported_at_once():
    _, errors = parse("""
        inputs:
          - id: "bad id"
            type: STRING
          - id: b
          - id: c
            type: INT
            defaults: x
          - id: c
            type: STRING
    """)
    assert [e.split(":")[0] for e in errors] == ["inputs[0].id", "inputs[1]", "inputs[2].defaults", "inputs[3].id"]


# --- the Kestra corpus ----------------------------------------------------------------------------


def _corpus_flows(folder: str) -> list[Path]:
    return sorted(p for p in (CORPUS / folder).glob("*.y*ml") if "inputs:" in p.read_text())


@pytest.mark.skipif(not CORPUS.exists(), reason="Kestra corpus not available")
@pytest.mark.parametrize("flow", _corpus_flows("valid") if CORPUS.exists() else [], ids=lambda p: p.name)
def test_the_inputs_of_every_valid_corpus_flow_parse_cleanly(flow):
    data, lines, _ = load_yaml(flow.read_text())
    errors = ErrorCollector(lines=lines)
    parse_inputs(data.get("inputs"), ("inputs",), errors)
    assert [str(e) for e in errors.errors] == []


@pytest.mark.skipif(not CORPUS.exists(), reason="Kestra corpus not available")
@pytest.mark.parametrize(
    "name",
    [
        "duplicate-inputs.yaml",
        "inputs-bad-type.yaml",
        "inputs-bad-validator-syntax.yaml",
        "inputs-validation.yaml",
        "inputs.yaml",
    ],
)
def test_the_invalid_corpus_inputs_are_rejected(name):
    data, lines, _ = load_yaml((CORPUS / "invalid" / name).read_text())
    errors = ErrorCollector(lines=lines)
    parse_inputs(data["inputs"], ("inputs",), errors)
    assert errors.errors and all(e.path[0] == "inputs" and e.line for e in errors.errors)


def test_the_inputs_modules_stay_pure():
    code = (
        "import sys, flows_app.spec.inputs, flows_app.engine.inputs; "
        "assert 'django' not in sys.modules and 'celery' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
