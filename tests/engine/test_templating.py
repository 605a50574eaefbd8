"""Behaviour of the templating engine: Pebble syntax on Jinja, strict variables, Kestra's filters and functions."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
import yaml

from flows_app.engine import templating
from flows_app.engine.templating import TemplateError, check_syntax, is_template, render, render_value, truthy

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "kestra-corpus" / "valid"
# The one corpus template that is meant not to compile: Kestra's BadFlowableTest expects the If to fail.
BROKEN_ON_PURPOSE = {"flowable-with-parent-fail.yaml"}

OUTPUTS = {"outputs": {"first": {"value": "one"}, "empty": {"value": None}}}


def fails(template: str, variables: dict | None = None) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        render(template, variables or {})
    return caught.value


# --- the module stays pure ---------------------------------------------------------------------


def test_it_imports_neither_django_nor_celery():
    code = (
        "import sys; import flows_app.engine.templating, flows_app.engine.pebble, flows_app.engine.javadates, "
        "flows_app.engine.operators, flows_app.engine.pebble_runtime, flows_app.engine.template_functions; "
        "bad = [m for m in ('django', 'celery') if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2]
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- rendering values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [("{{ x }}", True), ("{% if x %}{% endif %}", True), ("plain", False), ("{ x }", False), ("{#c#}", False)],
)
def test_is_template_spots_expressions_and_statements(value, expected):
    assert is_template(value) is expected


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        ({"a": 1, "b": [1, 2]}, '{"a":1,"b":[1,2]}'),
        ([1, "x"], '[1,"x"]'),
        ({"é": "ü"}, '{"é":"ü"}'),
        (3, "3"),
        (2.5, "2.5"),
        ("text", "text"),
    ],
)
def test_it_prints_values_the_way_pebble_does(value, expected):
    assert render("{{ v }}", {"v": value}) == expected


def test_it_keeps_the_text_around_tags_exactly():
    assert render("a ?? b {{ x }} c ? d : e\n", {"x": 1}) == "a ?? b 1 c ? d : e\n"


def test_it_does_not_rewrite_pebble_operators_inside_string_literals():
    assert render("{{ 'a ?? b' ~ \" x ? y : z\" ~ 'c contains d' }}", {}) == "a ?? b x ? y : zc contains d"


def test_it_keeps_whitespace_control_and_comments():
    assert render("a  {{- x -}}  b{# gone #}", {"x": 1}) == "a1b"


def test_render_value_renders_keys_values_and_list_items_recursively():
    value = {"{{ k }}": ["{{ 1 + 1 }}", 3, None, {"nested": "{{ flag }}"}], "plain": "no {template}", "n": 7}
    assert render_value(value, {"k": "key", "flag": False}) == {
        "key": ["2", 3, None, {"nested": "false"}],
        "plain": "no {template}",
        "n": 7,
    }


def test_render_value_leaves_plain_strings_alone_without_compiling(monkeypatch):
    monkeypatch.setattr(templating, "_compile", lambda source: pytest.fail(f"compiled {source!r}"))
    assert render_value(["just text", "curly {but} not {template"], {}) == ["just text", "curly {but} not {template"]


def test_it_compiles_each_distinct_template_once():
    templating._compile.cache_clear()
    for value in range(3):
        assert render("{{ cached_once }}", {"cached_once": value}) == str(value)
    assert templating._compile.cache_info().misses == 1
    assert templating._compile.cache_info().hits == 2


# --- strict variables ----------------------------------------------------------------------------


def test_an_undefined_variable_fails_naming_the_expression_and_the_cause():
    error = fails("{{ ko }}")
    assert error.expression == "{{ ko }}"
    assert "'ko' is undefined" in error.cause
    assert str(error) == f"{{{{ ko }}}}: {error.cause}"


def test_a_missing_attribute_names_the_variable_path():
    assert (
        str(fails("{{ outputs.nope.value }}", OUTPUTS)) == "{{ outputs.nope.value }}: 'outputs' has no attribute 'nope'"
    )
    assert fails("{{ outputs.first['other'] }}", OUTPUTS).cause == "'outputs.first' has no attribute 'other'"
    assert fails("{{ items[5] }}", {"items": [1]}).cause == "'items' has no element 5"


@pytest.mark.parametrize(
    "template",
    [
        "{% for x in missing %}{% endfor %}",
        "{{ outputs.nope == 2 }}",
        "{% if missing %}{% endif %}",
        "{{ missing | upper }}",
        "{{ missing | length }}",
        "{{ missing | json }}",
        "{{ 'x' ~ missing }}",
        "{{ missing is null }}",
        "{{ missing + 1 }}",
        "{{ missing contains 'a' }}",
    ],
)
def test_using_an_undefined_value_fails(template):
    cause = fails(template, OUTPUTS).cause
    assert "'missing' is undefined" in cause or "'outputs' has no attribute 'nope'" in cause


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{ a.b.c ?? 'fallback' }}", "fallback"),
        ("{{ a.b.c | default('fallback') }}", "fallback"),
        ("{{ a.b.c is defined }}", "false"),
        ("{{ outputs.first.value is defined }}", "true"),
        ("{{ outputs.empty.value }}", ""),
    ],
)
def test_chained_access_on_undefined_waits_for_coalescing_default_or_defined(template, expected):
    assert render(template, OUTPUTS) == expected


def test_a_map_key_wins_over_a_dict_method_of_the_same_name():
    outputs = {"return": {"values": {"one": 1}, "items": "i"}}
    assert render("{{ outputs.return.values.one }}{{ outputs.return.items }}", {"outputs": outputs}) == "1i"
    assert render("{% for k, v in m.items() %}{{ k }}{{ v }}{% endfor %}", {"m": {"a": 1}}) == "a1"


def test_jinja_syntax_that_is_not_pebble_still_works():
    assert render("{{ 'y' if flag else 'n' }}{{ 6 is divisibleby 3 }}", {"flag": True}) == "ytrue"


# --- Pebble operators ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{ missing ?? 'x' }}", "x"),
        ("{{ outputs.empty.value ?? 'x' }}", "x"),
        ("{{ missing ?? outputs.empty.value ?? outputs.first.value }}", "one"),
        ("{{ zero ?? 1 }}{{ blank ?? 1 }}{{ no ?? 1 }}", "0false"),
        ("{{ missing ??? 'x' }}", "x"),
        ("{{ outputs.empty.value ??? 'x' }}", ""),
        ("{{ (missing ?? 'NONE') == 'NONE' ? 'yes' : 'no' }}", "yes"),
        ("{{ missing ?? 'a' | upper }}", "A"),  # ?? binds tighter than a filter in Kestra
    ],
)
def test_null_coalescing(template, expected):
    assert render(template, {**OUTPUTS, "zero": 0, "blank": "", "no": False}) == expected


def test_coalescing_calls_a_function_on_its_left_only_once():
    calls = []

    def kv(key):
        calls.append(key)
        return {"field": "v"}

    assert render("{{ kv('my-key').field ?? null }}", {"kv": kv}) == "v"
    assert calls == ["my-key"]


def test_the_ternary_only_evaluates_the_branch_it_takes():
    template = "{{ taskrun.attemptsCount == 3 ? 'ok' : ko }}"
    assert render(template, {"taskrun": {"attemptsCount": 3}}) == "ok"
    assert "'ko' is undefined" in fails(template, {"taskrun": {"attemptsCount": 1}}).cause


@pytest.mark.parametrize("value, expected", [(None, "create"), (0, "create"), (1, "update"), (2, "delete")])
def test_nested_ternaries_choose_like_kestras_state_flow(value, expected):
    template = (
        "{{ (outputs.state.data.value ?? 0) == 0 ? 'create' : ( outputs.state.data.value == 1 ? 'update' : 'delete') }}"
    )
    assert render(template, {"outputs": {"state": {"data": {"value": value}}}}) == expected


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{ value equals 'value 2' }}", "true"),
        ("{{ 'abcd' contains 'bc' }}", "true"),
        ("{{ [1, 2, 3] contains 2 }}", "true"),
        ("{{ [1, 2, 3] contains [1, 3] }}", "true"),
        ("{{ {'k': 1} contains 'k' }}", "true"),
        ("{{ 'abc' contains 'x' }}", "false"),
        ("{{ 2 in [1, 2] and 'z' not in 'abc' }}", "true"),
        ("{{ not false }}", "true"),
        ("{{ 'a' ~ 'b' | upper }}", "AB"),  # Pebble: ~ binds tighter than |
        ("{{ 'a' ~ none ~ 1 ~ true }}", "a1true"),
        ("{{ 1..3 }}", "[1,2,3]"),
        ("{{ 2 + 3 * 4 }}", "14"),
        ("{{ value == 'value 2' ? 'same' : 'other' }}", "same"),
    ],
)
def test_pebble_operators(template, expected):
    assert render(template, {"value": "value 2"}) == expected


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{ n is null }}{{ n is not null }}{{ s is null }}", "truefalsefalse"),
        (
            "{{ '' is empty }}{{ '  ' is empty }}{{ [] is empty }}{{ {} is empty }}{{ n is empty }}{{ 'x' is empty }}",
            "truetruetruetruetruefalse",
        ),
        (
            "{{ '{\"a\": 1}' is json }}{{ '[1]' is json }}{{ 'value 1' is json }}{{ {'a': 1} is json }}",
            "truetruefalsetrue",
        ),
        ("{{ [1] is iterable }}{{ 'abc' is iterable }}", "truefalse"),
        ("{{ 2 is even }}{{ 3 is odd }}{{ 3 is even }}", "truetruefalse"),
        ("{{ s is defined }}{{ nope is defined }}{{ nope is not defined }}", "truefalsetrue"),
    ],
)
def test_pebble_tests(template, expected):
    assert render(template, {"n": None, "s": "x"}) == expected


# --- statements ----------------------------------------------------------------------------------


def test_a_for_loop_over_a_map_gives_key_and_value():
    template = "{% for k, v in m %}{{ k }}={{ v }};{% endfor %}"
    assert render(template, {"m": {"a": 1, "b": [2]}}) == "a=1;b=[2];"


def test_a_for_loop_over_a_map_with_one_variable_gives_entries():
    template = "{% for entry in json(value) %}{{ entry.key }}:{{ entry.value }}{% endfor %}"
    assert render(template, {"value": '{"NEW_MONTH": "2018-01-01"}'}) == "NEW_MONTH:2018-01-01"


def test_loop_index_counts_from_zero_as_in_pebble():
    template = (
        "{% for x in outer %}{% for y in inner %}{{ loop.index }}{{ loop.revindex }}{% endfor %}"
        "|{{ loop.index }}{{ loop.first }}{{ loop.length }} {% endfor %}"
    )
    assert render(template, {"outer": "ab", "inner": [1, 2]}) == "0110|0true2 0110|1false2 "


def test_loop_outside_a_for_block_is_left_alone():
    assert render("{{ loop.index }}", {"loop": {"index": 5}}) == "5"


def test_a_for_loop_over_null_runs_no_iteration_and_else_runs():
    assert render("{% for x in n %}x{% else %}empty{% endfor %}", {"n": None}) == "empty"


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{% if v == 1 %}one{% elseif v == 2 %}two{% else %}many{% endif %}", "two"),
        ("{% set doubled = v * 2 %}{{ doubled }}", "4"),
        ("{% verbatim %}{{ v ?? 1 }}{% endverbatim %}", "{{ v ?? 1 }}"),
        ("{% raw %}{{ v }}{% endraw %}", "{{ v }}"),
        ("{%- if v is not null -%} set {%- endif -%}", "set"),
    ],
)
def test_pebble_statements(template, expected):
    assert render(template, {"v": 2}) == expected


# --- sandbox and errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    ["{{ ''.__class__.__mro__ }}", "{{ x.__init__.__globals__ }}", "{{ ''.__class__.__mro__[1].__subclasses__() }}"],
)
def test_the_sandbox_blocks_python_internals(template):
    assert "unsafe" in fails(template, {"x": object()}).cause


@pytest.mark.parametrize(
    "template, message",
    [
        ("{{ foo( }}", "syntax error"),
        ("{% if %}{% endif %}", "syntax error"),
        ("{{ x | nosuchfilter }}", "No filter named 'nosuchfilter'"),
        ("{% for x in [1] %}", "syntax error"),
    ],
)
def test_syntax_errors_say_what_is_wrong(template, message):
    error = fails(template, {"x": 1})
    assert error.expression == template
    assert message in error.cause
    with pytest.raises(TemplateError):
        check_syntax(template)


@pytest.mark.parametrize("template", ["{{ 1 / 0 }}", "{{ 'abc' | number }}", "{{ boom() }}"])
def test_runtime_failures_become_template_errors(template):
    def boom():
        raise RuntimeError("store is down")

    error = fails(template, {"boom": boom})
    assert error.__cause__ is not None
    assert error.cause


def test_a_failure_in_a_callable_names_its_type():
    def boom():
        raise KeyError("k")

    assert fails("{{ boom() }}", {"boom": boom}).cause == "KeyError: 'k'"


# --- functions -----------------------------------------------------------------------------------


@time_machine.travel(datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), tick=False)
def test_now_is_an_iso_instant_in_utc_or_the_given_zone():
    assert render("{{ now() }}", {}) == "2024-01-02T03:04:05.123456Z"
    assert render("{{ now(timeZone='Europe/Paris') }}", {}) == "2024-01-02T04:04:05.123456+01:00"
    assert render("{{ now(format='yyyy-MM-dd') }}", {}) == "2024-01-02"


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{ json(s).a.b }}", "1"),
        ("{{ fromJson(s).a }}", '{"b":1}'),
        ("{{ toJson(m) }}", '{"k":[1,true,null]}'),
        ("{{ m | json }}", '{"k":[1,true,null]}'),
        ("{{ m | toJson }}", '{"k":[1,true,null]}'),
        ("{{ yaml('a: [1, 2]').a[1] }}", "2"),
        ("{{ range(1, 3) }}", "[1,2,3]"),
        ("{{ range(0, 10, 5) }}", "[0,5,10]"),
        ("{{ max(1, 7, 3) }}{{ min([4, 2]) }}", "72"),
        ("{{ kv('k') }}", "value-of-k"),
    ],
)
def test_functions(template, expected):
    variables = {"s": '{"a": {"b": 1}}', "m": {"k": [1, True, None]}, "kv": lambda key: f"value-of-{key}"}
    assert render(template, variables) == expected


def test_random_int_and_uuid():
    assert all(1 <= int(render("{{ randomInt(1, 3) }}", {})) < 3 for _ in range(20))
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", render("{{ uuid() }}", {}))


def test_secret_reads_a_base64_environment_variable(monkeypatch):
    monkeypatch.setenv("SECRET_MY_SECRET", base64.b64encode(b'{"secretKey": "s3cr3t"}').decode())
    monkeypatch.setenv("SECRET_NEW_LINE", base64.b64encode(b"line1\nline2").decode() + "\n")
    assert render("{{ json(secret('my_secret')).secretKey }}", {}) == "s3cr3t"
    assert render("{{ secret('my_secret', subkey='secretKey') }}", {}) == "s3cr3t"
    assert render("{{ secret('new_line') }}", {}) == "line1\nline2"


def test_a_missing_secret_fails_naming_it(monkeypatch):
    monkeypatch.delenv("SECRET_NOPE", raising=False)
    assert "secret 'NOPE' is not defined" in fails("{{ secret('NOPE') }}").cause


def test_current_each_output_follows_the_parents_values():
    outputs = {"CUMULATIVE": {"a": {"value": "found"}}}
    variables = {
        "outputs": {"get": outputs},
        "parents": [{"taskrun": {"value": "CUMULATIVE"}}],
        "taskrun": {"value": "a"},
    }
    assert render("{{ currentEachOutput(outputs.get).value }}", variables) == "found"
    assert render("{{ (currentEachOutput(outputs.get).nope ?? 'null') ~ '-' ~ taskrun.value }}", variables) == "null-a"


# --- filters -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{ 'Hello' | upper }}{{ 'Hello' | lower }}", "HELLOhello"),
        ("{{ 'hello wORLD' | title }}|{{ 'hello wORLD' | capitalize }}", "Hello WORLD|Hello wORLD"),
        ("[{{ '  x  ' | trim }}]", "[x]"),
        ("{{ n | default('d') }}{{ '' | default('d') }}{{ 0 | default('d') }}{{ missing | default('d') }}", "dd0d"),
        ("{{ -3 | abs }}", "3"),
        ("{{ '42' | number + 1 }}{{ ' 1.5' | number }}{{ '7' | number('DOUBLE') }}", "431.57.0"),
        ("{{ items | first }}{{ items | last }}{{ 'abc' | first }}", "31a"),
        ("{{ items | join(', ') }}|{{ [true, none, 'x'] | join }}", "3, 2, 1|truex"),
        ("{{ m | keys }}{{ m | values }}", '["a","b"][1,2]'),
        ("{{ items | length }}{{ 'abcd' | length }}{{ m | length }}{{ n | length }}", "3420"),
        ("{{ 'a,b,,c' | split(',') }}{{ 'a.b.c' | split('.', 2) }}", '["a","b","","c"]["a","b.c"]'),
        ("{{ 'Hello' | replace({'H': 'J', 'o': '0'}) }}", "Jell0"),
        ("{{ 'aaa' | replace('a', 'b') }}{{ 'aaa' | replace('a', 'b', 1) }}", "bbbbaa"),
        ("{{ 'a1b22' | replace({'[0-9]+': '#'}, regexp=true) }}", "a#b#"),
        ("{{ 'Héllo, World!' | slugify }}", "hello-world"),
        ("{{ 'a.b.c' | substringBefore('.') }}|{{ 'a.b.c' | substringAfter('.') }}", "a|b.c"),
        ("{{ 'a.b.c' | substringBeforeLast('.') }}|{{ 'a.b.c' | substringAfterLast('.') }}", "a.b|c"),
        ("{{ 'abc' | substringBefore('x') }}|{{ 'abc' | substringAfter('x') }}", "abc|"),
        ("{{ 'abc' | startsWith('ab') }}{{ 'abc' | endsWith('x') }}", "truefalse"),
        ("{{ items | sort }}{{ items | rsort }}{{ items | reverse }}{{ 'abc' | reverse }}", "[1,2,3][3,2,1][1,2,3]cba"),
        ("{{ items | slice(1, 3) }}{{ 'abcdef' | slice(2) }}", "[2,1]cdef"),
        (
            "{{ q | escapeChar('single') }}|{{ q | escapeChar('double') }}|{{ q | escapeChar('shell') }}",
            'it\\\'s "x"|it\'s \\"x\\"|it\'\\\'\'s "x"',
        ),
        ("{{ 'héllo' | base64encode }}|{{ 'aMOpbGxv' | base64decode }}", "aMOpbGxv|héllo"),
        ("{{ 'abc' | sha256 }}", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("{{ 'abc' | md5 }}", "900150983cd24fb0d6963f7d28e17f72"),
        ("{{ 'a b&c=é' | urlencode }}", "a+b%26c%3D%C3%A9"),
        ("{{ [[1, 2], 3, [4]] | flatten }}", "[1,2,3,4]"),
        ("{{ [1, 2, 3, 4, 5] | chunk(2) }}", "[[1,2],[3,4],[5]]"),
        ("{{ [1, 2, 1, 3, 2] | distinct }}", "[1,2,3]"),
        ("{{ 'a\nb' | indent(2) }}|{{ 'a\nb' | nindent(2) }}", "a\n  b|\n  a\n  b"),
        ("{{ 'x' | className }}{{ 1 | className }}", "java.lang.Stringjava.lang.Integer"),
        ("{{ m | jsonpath('$.b') }}{{ '{\"l\": [1, 2]}' | jsonpath('$.l[*]') }}", "2[1,2]"),
        ("{{ '{\"key\": \"my-key\"}' | jq('.key') }}{{ deep | jq('.a[].b') }}", '["my-key"][1,2]'),
        ("{{ n | upper }}", ""),
    ],
)
def test_filters(template, expected):
    variables = {
        "n": None,
        "items": [3, 2, 1],
        "m": {"a": 1, "b": 2},
        "q": 'it\'s "x"',
        "deep": {"a": [{"b": 1}, {"b": 2}]},
    }
    assert render(template, variables) == expected


def test_an_unsupported_jq_expression_says_so():
    assert "only paths" in fails("{{ v | jq('.a | length') }}", {"v": {"a": []}}).cause


# --- dates ---------------------------------------------------------------------------------------

MOMENT = "2024-03-05T07:08:09.123456Z"


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ("yyyy-MM-dd HH:mm:ss", "2024-03-05 07:08:09"),
        ("yy/M/d H:m:s", "24/3/5 7:8:9"),
        ("MMM MMMM EEE EEEE", "Mar March Tue Tuesday"),
        ("hh:mm a", "07:08 AM"),
        ("SSS SSSSSS", "123 123456"),
        ("yyyyMMdd'T'HHmm", "20240305T0708"),
        ("'o''clock' ''", "o'clock '"),
        ("XXX Z z", "Z +0000 UTC"),
        ("iso", "2024-03-05T07:08:09.123456Z"),
        ("iso_sec", "2024-03-05T07:08:09Z"),
        ("sql", "2024-03-05 07:08:09.123456"),
    ],
)
def test_date_formats_with_java_patterns(pattern, expected):
    assert render("{{ d | date(p) }}", {"d": MOMENT, "p": pattern}) == expected


@pytest.mark.parametrize(
    "value", [MOMENT, datetime(2024, 3, 5, 7, 8, 9, 123456, tzinfo=UTC), "2024-03-05T08:08:09.123456+01:00"]
)
def test_date_reads_iso_strings_and_datetimes(value):
    assert render("{{ d | date('yyyy-MM-dd HH:mm:ss.SSS') }}", {"d": value}) == "2024-03-05 07:08:09.123"


def test_date_reads_epoch_seconds_and_an_existing_format():
    assert render("{{ 0 | date('yyyy-MM-dd HH:mm') }}", {}) == "1970-01-01 00:00"
    assert (
        render("{{ '05/03/2024 10:00' | date('yyyy-MM-dd', existingFormat='dd/MM/yyyy HH:mm') }}", {}) == "2024-03-05"
    )


def test_date_converts_to_the_given_time_zone():
    template = "{{ d | date('yyyy-MM-dd HH:mm XXX z', timeZone='Europe/Paris') }}"
    assert render(template, {"d": MOMENT}) == "2024-03-05 08:08 +01:00 CET"
    assert render("{{ d | date(timeZone='America/New_York') }}", {"d": MOMENT}) == "2024-03-05T02:08:09.123456-05:00"


@pytest.mark.parametrize(
    "amount, unit, expected",
    [
        (1, "DAYS", "2024-03-06T07:08:09.123456Z"),
        (-2, "HOURS", "2024-03-05T05:08:09.123456Z"),
        (30, "MINUTES", "2024-03-05T07:38:09.123456Z"),
        (1, "WEEKS", "2024-03-12T07:08:09.123456Z"),
        (1, "YEARS", "2025-03-05T07:08:09.123456Z"),
    ],
)
def test_date_add(amount, unit, expected):
    assert render("{{ d | dateAdd(a, u) }}", {"d": MOMENT, "a": amount, "u": unit}) == expected


def test_date_add_clamps_months_and_keeps_the_wall_clock_across_daylight_saving():
    assert render("{{ '2024-01-31T10:00:00Z' | dateAdd(1, 'MONTHS', format='yyyy-MM-dd') }}", {}) == "2024-02-29"
    before_dst = "2024-03-30T12:00:00+01:00"
    paris = "format='HH:mm XXX', timeZone='Europe/Paris'"
    assert render(f"{{{{ d | dateAdd(1, 'DAYS', {paris}) }}}}", {"d": before_dst}) == "12:00 +02:00"
    assert render(f"{{{{ d | dateAdd(24, 'HOURS', {paris}) }}}}", {"d": before_dst}) == "13:00 +02:00"


def test_timestamps():
    variables = {"d": "2024-01-01T00:00:01.5Z"}
    rendered = render(
        "{{ d | timestamp }} {{ d | timestampMilli }} {{ d | timestampMicro }} {{ d | timestampNano }}", variables
    )
    assert rendered == "1704067201 1704067201500 1704067201500000 1704067201500000000"


def test_a_bad_date_or_pattern_fails_with_the_reason():
    assert "ISO-8601" in fails("{{ 'yesterday' | date('yyyy') }}").cause
    assert "'b'" in fails("{{ '2024-01-01T00:00:00Z' | date('bbb') }}").cause
    assert "unknown time zone" in fails("{{ now(timeZone='Mars/Olympus') }}").cause


# --- truthiness ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["", "  ", "false", "False", "FALSE", "0", "-0", "null", "None", " false\n", False, 0, None, [], {}]
)
def test_falsy_conditions(value):
    assert truthy(value) is False


@pytest.mark.parametrize("value", ["true", "1", "yes", "anything", "[]", True, 1, -1, [0], {"a": 1}])
def test_truthy_conditions(value):
    assert truthy(value) is True


def test_a_rendered_condition_feeds_truthy():
    assert truthy(render("{{ labels.some == 'label' }}", {"labels": {"some": "label"}}))
    assert not truthy(render("{{ n }}", {"n": None}))


# --- the Kestra corpus ---------------------------------------------------------------------------


def _template_strings(value):
    if isinstance(value, str):
        if is_template(value):
            yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _template_strings(key)
            yield from _template_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _template_strings(item)


def _corpus_templates():
    if not CORPUS.is_dir():
        return []
    return [
        (path.name, template)
        for path in sorted(CORPUS.glob("*.y*ml"))
        for document in yaml.safe_load_all(path.read_text())
        for template in _template_strings(document)
    ]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the Kestra corpus is not beside the repository")
def test_every_template_in_the_kestra_corpus_compiles():
    templates = _corpus_templates()
    assert len(templates) > 200
    broken = [(name, template) for name, template in templates if not _compiles(template)]
    assert [name for name, _ in broken] == sorted(BROKEN_ON_PURPOSE)


def _compiles(template: str) -> bool:
    try:
        check_syntax(template)
    except TemplateError:
        return False
    return True


@pytest.mark.parametrize(
    "template, variables, expected",
    [
        ("{{ outputs.default.value ?? outputs['error-t1'].value }}", {"outputs": {"error-t1": {"value": "e"}}}, "e"),
        (
            "{{outputs['1-2-1_return'].s1['a a'].value}}",
            {"outputs": {"1-2-1_return": {"s1": {"a a": {"value": 1}}}}},
            "1",
        ),
        (
            "{{ flow.namespace ~ '.' ~ flow.id }}",
            {"flow": {"namespace": "io.kestra.tests", "id": "f"}},
            "io.kestra.tests.f",
        ),
        ("{{ trigger | json }}", {"trigger": {"state": "SUCCESS", "n": 1}}, '{"state":"SUCCESS","n":1}'),
        ("{{ taskrun.value is json }}", {"taskrun": {"value": "value 1"}}, "false"),
        (
            "{{ parent.taskrun.value | jq('.value') }}",
            {"parent": {"taskrun": {"value": '{"key": "k", "value": {"sub": 1}}'}}},
            '[{"sub":1}]',
        ),
        ("{{ outputs.state.data.value + 1 }}", {"outputs": {"state": {"data": {"value": 1}}}}, "2"),
        ("{{ (inputs.failed ?? 'NONE') == 'FIRST' ? ko : '0'}}", {"inputs": {}}, "0"),
        (
            "{%- for log in errorLogs() -%}{{ log.taskId }}:{{ log.message }}{%- endfor -%}",
            {"errorLogs": lambda: [{"taskId": "t", "message": "m"}]},
            "t:m",
        ),
    ],
)
def test_kestra_corpus_expressions_render_as_kestra_does(template, variables, expected):
    assert render(template, variables) == expected
