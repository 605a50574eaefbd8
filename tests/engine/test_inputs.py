"""Coercing the values given to a new execution against the flow's input declarations."""

from __future__ import annotations

import json

import pytest

from flows_app.engine.inputs import InputsError, coerce_inputs
from flows_app.spec.errors import ErrorCollector
from flows_app.spec.inputs import InputSpec, parse_inputs


def coerce(spec: InputSpec, value):
    """The coerced value of one input given `value`."""
    return coerce_inputs([spec], {spec.id: value})[spec.id]


def problems(specs, given, **kwargs) -> list[str]:
    with pytest.raises(InputsError) as caught:
        coerce_inputs(specs, given, **kwargs)
    assert str(caught.value) == "\n".join(caught.value.errors)
    return caught.value.errors


def problem(spec: InputSpec, value) -> str:
    (message,) = problems([spec], {spec.id: value})
    return message


# --- presence, defaults and the result ------------------------------------------------------------


def test_a_missing_required_input_is_reported():
    assert problems([InputSpec(id="name", type="STRING")], {}) == ["inputs.name: required input is missing"]


def test_a_missing_optional_input_is_none():
    assert coerce_inputs([InputSpec(id="name", type="STRING", required=False)], {}) == {"name": None}


def test_a_missing_input_takes_its_default_coerced():
    specs = [InputSpec(id="count", type="INT", defaults="3"), InputSpec(id="when", type="DATE", defaults="2024-01-31")]
    assert coerce_inputs(specs, {}) == {"count": 3, "when": "2024-01-31"}


def test_a_given_value_wins_over_the_default():
    assert coerce_inputs([InputSpec(id="def", type="STRING", defaults="amazing")], {"def": "given"}) == {"def": "given"}


def test_a_null_value_counts_as_missing():
    assert coerce_inputs([InputSpec(id="n", type="INT", defaults=7)], {"n": None}) == {"n": 7}


def test_an_empty_form_field_counts_as_missing_except_for_text():
    specs = [InputSpec(id="n", type="INT", required=False), InputSpec(id="s", type="STRING")]
    assert coerce_inputs(specs, {"n": "", "s": ""}) == {"n": None, "s": ""}


def test_undeclared_values_are_ignored_and_left_out():
    assert coerce_inputs([InputSpec(id="a", type="STRING")], {"a": "x", "extra": "y"}) == {"a": "x"}


def test_inputs_declared_with_the_seed_era_name_are_found_by_that_name():
    specs = parse_inputs(
        [{"name": "errorOnMissing", "type": "BOOLEAN", "required": False, "defaults": False}],
        ("inputs",),
        ErrorCollector(),
    )
    assert coerce_inputs(specs, {"errorOnMissing": "true"}) == {"errorOnMissing": True}
    assert coerce_inputs(specs, {}) == {"errorOnMissing": False}


def test_all_problems_are_reported_at_once_each_naming_its_input():
    specs = [
        InputSpec(id="age", type="INT"),
        InputSpec(id="ok", type="STRING"),
        InputSpec(id="when", type="DATE"),
        InputSpec(id="name", type="STRING"),
    ]
    assert problems(specs, {"age": "abc", "ok": "fine", "when": "soon"}) == [
        "inputs.age: 'abc' is not an integer",
        "inputs.when: 'soon' is not a date (like 2024-01-31)",
        "inputs.name: required input is missing",
    ]


def test_the_result_is_json_serialisable():
    specs = [
        InputSpec(id="at", type="DATETIME"),
        InputSpec(id="wait", type="DURATION"),
        InputSpec(id="conf", type="YAML"),
        InputSpec(id="t", type="TIME"),
    ]
    result = coerce_inputs(specs, {"at": "2024-01-31 09:30", "wait": "10m", "conf": "day: 2024-01-31", "t": "09:30"})
    assert json.loads(json.dumps(result)) == result


def test_a_templated_default_is_rendered_when_a_renderer_is_given():
    spec = InputSpec(id="when", type="DATE", defaults="{{ today }}")
    assert coerce_inputs([spec], {}, render=lambda text: "2024-02-29") == {"when": "2024-02-29"}


# --- text -------------------------------------------------------------------------------------


def test_a_string_is_kept_and_plain_json_values_become_text():
    spec = InputSpec(id="s", type="STRING")
    assert [coerce(spec, v) for v in ("abc", 42, 1.5, True)] == ["abc", "42", "1.5", "true"]
    assert problem(spec, {"a": 1}) == 'inputs.s: {"a": 1} is not a string'


def test_a_validator_must_match_the_whole_string():
    spec = InputSpec(id="code", type="STRING", validator="[0-9]{3}")
    assert coerce(spec, "123") == "123"
    assert problem(spec, "1234") == "inputs.code: '1234' does not match the pattern `[0-9]{3}`"


def test_string_length_bounds():
    spec = InputSpec(id="s", type="STRING", min=2, max=4)
    assert coerce(spec, "abc") == "abc"
    assert problem(spec, "a") == "inputs.s: 'a' is shorter than 2 characters"
    assert problem(spec, "abcde") == "inputs.s: 'abcde' is longer than 4 characters"


def test_a_secret_is_text_and_errors_never_show_it():
    spec = InputSpec(id="pin", type="SECRET", validator="[0-9]{4}")
    assert coerce(spec, "1234") == "1234"
    assert problem(spec, "hunter2") == "inputs.pin: the value does not match the pattern `[0-9]{4}`"


def test_an_email_must_look_like_one():
    spec = InputSpec(id="to", type="EMAIL")
    assert coerce(spec, "alice@example.com") == "alice@example.com"
    assert problem(spec, "alice") == "inputs.to: 'alice' is not an email address"
    assert problem(spec, "a@b@c") == "inputs.to: 'a@b@c' is not an email address"


def test_a_uri_needs_a_scheme():
    spec = InputSpec(id="u", type="URI")
    assert coerce(spec, "https://kestra.io/docs") == "https://kestra.io/docs"
    assert coerce(spec, "s3://bucket/key") == "s3://bucket/key"
    assert problem(spec, "kestra.io") == "inputs.u: 'kestra.io' is not a URI with a scheme (like https://example.com/x)"
    assert problem(spec, "http://[::1").startswith("inputs.u: 'http://[::1' is not a URI")


# --- numbers and booleans ---------------------------------------------------------------------


def test_an_int_from_text_or_json():
    spec = InputSpec(id="age", type="INT")
    assert [coerce(spec, v) for v in ("42", " -7 ", "+3", 12)] == [42, -7, 3, 12]


@pytest.mark.parametrize(
    "value, shown",
    [("abc", "'abc'"), ("1.5", "'1.5'"), (1.5, "1.5"), (True, "true"), ("1_000", "'1_000'"), ("٣", "'٣'")],
)
def test_an_int_rejects_anything_else(value, shown):
    assert problem(InputSpec(id="age", type="INT"), value) == f"inputs.age: {shown} is not an integer"


def test_int_bounds():
    spec = InputSpec(id="n", type="INT", min=1, max=10)
    assert coerce(spec, "10") == 10
    assert problem(spec, 0) == "inputs.n: 0 is less than the minimum 1"
    assert problem(spec, "11") == "inputs.n: '11' is more than the maximum 10"


def test_a_float_from_text_or_json():
    spec = InputSpec(id="x", type="FLOAT")
    assert [coerce(spec, v) for v in ("3.14", "1e3", 2, ".5")] == [3.14, 1000.0, 2.0, 0.5]
    assert isinstance(coerce(spec, 2), float)


@pytest.mark.parametrize("value", ["pi", "nan", "inf", True, [1]])
def test_a_float_rejects_anything_else(value):
    assert problem(InputSpec(id="x", type="FLOAT"), value).startswith("inputs.x: ")


def test_float_bounds():
    spec = InputSpec(id="x", type="FLOAT", min=0.0, max=1.0)
    assert problem(spec, "1.5") == "inputs.x: '1.5' is more than the maximum 1.0"


@pytest.mark.parametrize("type_", ["BOOLEAN", "BOOL"])
def test_a_boolean_is_true_or_false_in_any_case(type_):
    spec = InputSpec(id="b", type=type_)
    assert [coerce(spec, v) for v in ("true", "False", "TRUE", True, False)] == [True, False, True, True, False]


@pytest.mark.parametrize("value", ["yes", "1", 1, "on"])
def test_a_boolean_rejects_other_words(value):
    assert problem(InputSpec(id="b", type="BOOLEAN"), value).endswith("is not a boolean (true or false)")


# --- time ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2013-08-09T14:19:00Z", "2013-08-09T14:19:00Z"),
        ("2013-08-09T16:19:00+02:00", "2013-08-09T14:19:00Z"),
        ("2013-08-09T14:19:00", "2013-08-09T14:19:00Z"),
        ("2013-08-09T14:19:00.250Z", "2013-08-09T14:19:00.250000Z"),
    ],
)
def test_a_datetime_becomes_iso_utc(value, expected):
    assert coerce(InputSpec(id="at", type="DATETIME"), value) == expected


@pytest.mark.parametrize("value", ["2013-08-09", "yesterday", "2013-13-09T14:19:00Z", 1700000000])
def test_a_datetime_needs_a_date_and_a_time(value):
    assert problem(InputSpec(id="at", type="DATETIME"), value).endswith(
        "is not a date-time (like 2024-01-31T09:30:00Z)"
    )


def test_datetime_bounds_compare_instants():
    spec = InputSpec(id="at", type="DATETIME", min="2024-01-01T00:00:00Z", max="2024-12-31T00:00:00Z")
    assert coerce(spec, "2024-01-01T01:00:00+01:00") == "2024-01-01T00:00:00Z"
    assert problem(spec, "2023-12-31T23:59:59Z") == ("inputs.at: '2023-12-31T23:59:59Z' is before 2024-01-01T00:00:00Z")
    assert problem(spec, "2025-01-01T00:00:00Z").endswith("is after 2024-12-31T00:00:00Z")


def test_a_date():
    spec = InputSpec(id="d", type="DATE", min="2024-01-01")
    assert coerce(spec, "2024-02-29") == "2024-02-29"
    assert problem(spec, "2023-02-29") == "inputs.d: '2023-02-29' is not a date (like 2024-01-31)"
    assert problem(spec, "2023-12-31") == "inputs.d: '2023-12-31' is before 2024-01-01"


def test_a_time_is_local_and_has_seconds():
    spec = InputSpec(id="t", type="TIME", max="18:00:00")
    assert coerce(spec, "09:30") == "09:30:00"
    assert coerce(spec, "09:30:15") == "09:30:15"
    assert problem(spec, "25:00") == "inputs.t: '25:00' is not a time (like 09:30:00)"
    assert problem(spec, "09:30+02:00").endswith("has a time zone; a TIME input is a local time (like 09:30:00)")
    assert problem(spec, "19:00") == "inputs.t: '19:00' is after 18:00:00"


def test_a_duration_becomes_canonical_iso():
    spec = InputSpec(id="wait", type="DURATION", min="PT1M", max="PT1H")
    assert [coerce(spec, v) for v in ("PT15M", "10m", "PT1H")] == ["PT15M", "PT10M", "PT1H"]
    assert problem(spec, "PT15X") == "inputs.wait: 'PT15X' is not a duration (like PT15M or 15m)"
    assert problem(spec, "30s") == "inputs.wait: '30s' is shorter than the minimum PT1M"
    assert problem(spec, "2h") == "inputs.wait: '2h' is longer than the maximum PT1H"


# --- structured values --------------------------------------------------------------------------


def test_json_text_is_parsed_and_json_values_kept():
    spec = InputSpec(id="labels", type="JSON")
    assert coerce(spec, '{"keyFromJson":"valueFromJson"}') == {"keyFromJson": "valueFromJson"}
    assert coerce(spec, {"a": [1, 2]}) == {"a": [1, 2]}
    assert coerce(spec, "[1, 2]") == [1, 2]
    assert problem(spec, "{oops").startswith("inputs.labels: '{oops' is not valid JSON: ")
    assert problem(spec, "NaN") == "inputs.labels: 'NaN' cannot be stored as JSON"


def test_yaml_text_is_parsed_and_dates_become_text():
    spec = InputSpec(id="conf", type="YAML")
    assert coerce(spec, "a: 1\nb: [x, y]\nday: 2024-01-31\n") == {"a": 1, "b": ["x", "y"], "day": "2024-01-31"}
    assert coerce(spec, {"kept": True}) == {"kept": True}
    assert problem(spec, "a: [1").startswith("inputs.conf: 'a: [1' is not valid YAML")


# --- choices and lists --------------------------------------------------------------------------


def test_a_select_must_be_one_of_its_values():
    spec = InputSpec(id="mode", type="SELECT", values=("PASS", "CANCEL"))
    assert coerce(spec, "PASS") == "PASS"
    assert problem(spec, "LABEL") == "inputs.mode: 'LABEL' is not one of 'PASS', 'CANCEL'"


def test_an_enum_matches_numbers_as_text():
    assert coerce(InputSpec(id="n", type="ENUM", values=("1", "2")), 2) == "2"


def test_a_select_may_allow_custom_values():
    assert coerce(InputSpec(id="m", type="SELECT", values=("A",), allow_custom_value=True), "Z") == "Z"


def test_a_multiselect_is_a_list_of_values():
    spec = InputSpec(id="tags", type="MULTISELECT", values=("a", "b", "c"))
    assert coerce(spec, ["a", "c"]) == ["a", "c"]
    assert coerce(spec, '["b"]') == ["b"]
    assert problem(spec, ["a", "z"]) == "inputs.tags[1]: 'z' is not one of 'a', 'b', 'c'"
    assert problem(spec, "a") == """inputs.tags: 'a' is not a list (like ["a", "b"])"""


def test_a_multiselect_item_type_types_its_items():
    spec = InputSpec(id="n", type="MULTISELECT", values=("1", "2"), item_type="INT")
    assert coerce(spec, ["1", 2]) == [1, 2]


def test_an_array_coerces_each_item():
    spec = InputSpec(id="ports", type="ARRAY", item_type="INT")
    assert coerce(spec, '["80", 443]') == [80, 443]
    assert coerce(spec, [1, "2"]) == [1, 2]
    assert problem(spec, ["80", "http"]) == "inputs.ports[1]: 'http' is not an integer"
    assert problem(spec, "80,443") == """inputs.ports: '80,443' is not a list (like ["a", "b"])"""


def test_an_array_default_is_coerced_too():
    spec = InputSpec(id="d", type="ARRAY", item_type="DATE", defaults=["2024-01-31"])
    assert coerce_inputs([spec], {}) == {"d": ["2024-01-31"]}


# --- files -------------------------------------------------------------------------------------


def test_a_file_is_handed_to_storage():
    stored = []

    def store_file(input_id, value):
        stored.append((input_id, value))
        return f"kestra:///flows/{input_id}"

    specs = [InputSpec(id="f", type="FILE"), InputSpec(id="raw", type="FILE")]
    result = coerce_inputs(specs, {"f": "data/in.csv", "raw": b"a,b\n"}, store_file=store_file)
    assert result == {"f": "kestra:///flows/f", "raw": "kestra:///flows/raw"}
    assert stored == [("f", "data/in.csv"), ("raw", b"a,b\n")]


def test_a_file_default_uri_is_stored_as_a_local_path():
    spec = InputSpec(id="f", type="FILE", defaults="file:///srv/in.csv")
    assert coerce_inputs([spec], {}, store_file=lambda i, v: f"stored:{v}") == {"f": "stored:/srv/in.csv"}


def test_a_file_already_in_storage_is_kept():
    never = lambda i, v: pytest.fail("must not store again")  # noqa: E731
    assert coerce_inputs([InputSpec(id="f", type="FILE")], {"f": "kestra:///a/b.txt"}, store_file=never) == {
        "f": "kestra:///a/b.txt"
    }


def test_without_storage_a_file_path_is_returned_as_given():
    assert coerce(InputSpec(id="f", type="FILE"), "in.csv") == "in.csv"
    assert problem(InputSpec(id="f", type="FILE"), b"x") == (
        "inputs.f: b'x' is file content, but there is no file storage to put it in"
    )


def test_an_unreadable_file_is_reported():
    def store_file(input_id, value):
        raise FileNotFoundError(2, "No such file or directory")

    assert problems([InputSpec(id="f", type="FILE")], {"f": "missing.csv"}, store_file=store_file) == [
        "inputs.f: 'missing.csv' cannot be read: No such file or directory"
    ]


def test_a_file_must_have_an_accepted_extension():
    spec = InputSpec(id="f", type="FILE", extra={"acceptedExtensions": [".csv"]})
    assert coerce(spec, "IN.CSV") == "IN.CSV"
    assert problem(spec, "in.txt") == "inputs.f: 'in.txt' does not have one of the extensions .csv"
