"""Every render ends: within its time, with bounded output and bounded values on the way, or with an error
that names the limit and its setting."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows_app.engine import budget
from flows_app.engine.inputs import InputsError, coerce_inputs
from flows_app.engine.templating import TemplateError, render
from flows_app.spec.flow import load_flow

SECONDS = 0.5


@pytest.fixture
def tight():
    """Limits small enough to reach in a test; the deployment's limits come back afterwards."""
    saved = budget.LIMITS
    budget.configure(budget.Limits(seconds=SECONDS, max_chars=100_000, max_items=1000, built_chars=1_000_000))
    yield budget.LIMITS
    budget.configure(saved)


def rendered_within(template: str, variables=None) -> tuple[str | TemplateError, float]:
    started = time.monotonic()
    try:
        result: str | TemplateError = render(template, variables or {})
    except TemplateError as exc:
        result = exc
    return result, time.monotonic() - started


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'x' | center(2000000000) }}",  # the example: at compile time too (Jinja folds constants)
        "{{ 'x'.center(2000000000) }}",
        "{{ 'x'.ljust(2000000000) }}",
        "{{ 'x'.zfill(2000000000) }}",
        "{{ '%2000000000s' | format('x') }}",
        "{{ '{:>2000000000}'.format('x') }}",
        "{{ 'a\tb'.expandtabs(2000000000) }}",
        "{{ 'a\nb' | indent(2000000000) }}",
        "{{ 'a b c' | wordwrap(1, wrapstring='x') | replace('x', 'y') | center(2000000000) }}",
    ],
)
def test_a_width_past_the_limit_is_refused_before_the_text_is_made(template):
    result, seconds = rendered_within(template)
    assert isinstance(result, TemplateError)
    assert "more than the limit of 10,000,000 (TERN_TEMPLATE_MAX_CHARS)" in result.cause
    assert seconds < 0.5


def test_a_growing_replacement_is_sized_first(tight):
    result, _ = rendered_within("{{ 'aaaaaaaaaa' | replace('a', 'b') | replace({'a': 'x'}) }}")
    assert result == "bbbbbbbbbb"
    long = "y" * 20_000
    result, _ = rendered_within("{{ 'aaaaaaaaaa' | replace('a', r) }}", {"r": long})
    assert isinstance(result, TemplateError) and "200,010 characters" in result.cause


def test_a_loop_without_end_in_sight_stops_at_the_time_limit(tight):
    template = "{% for i in range(1, 1000) %}{% for j in range(1, 1000) %}{% for k in range(1, 1000) %}{% endfor %}{% endfor %}{% endfor %}"
    result, seconds = rendered_within(template)
    assert isinstance(result, TemplateError)
    assert result.cause == "the render took more than its 0.5 s (TERN_TEMPLATE_SECONDS)"
    assert SECONDS <= seconds < SECONDS + 0.5


def test_what_a_render_prints_is_bounded(tight):
    result, _ = rendered_within("{% for i in range(1, 1000) %}{{ 'x' | center(999) }}{% endfor %}")
    assert isinstance(result, TemplateError)
    assert result.cause == "the render printed more than 100,000 characters (TERN_TEMPLATE_MAX_CHARS)"


def test_what_a_render_builds_on_the_way_is_bounded(tight):
    # each text is within the limit, and nothing is printed: only the sum of what was built is too much
    result, _ = rendered_within("{{ range(1, 999) | map('center', 90000) | list | length }}")
    assert isinstance(result, TemplateError)
    assert result.cause == "the render built more than 1,000,000 characters in all (TERN_TEMPLATE_BUILT_CHARS)"


def test_doubling_a_text_stops_at_the_limit(tight):
    template = "{% set ns = namespace(t='ab') %}{% for i in range(1, 60) %}{% set ns.t = ns.t ~ ns.t %}{% endfor %}"
    result, _ = rendered_within(template)
    assert isinstance(result, TemplateError) and "TERN_TEMPLATE_MAX_CHARS" in result.cause


def test_joining_texts_each_within_the_limit_is_sized_as_a_whole(tight):
    # `~` in a namespace's `set` is Jinja's own (a Concat node), elsewhere Pebble's (a call): both sized
    result, _ = rendered_within("{% set b = a ~ a ~ a %}{{ b | length }}", {"a": "x" * 40_000})
    assert isinstance(result, TemplateError)
    assert result.cause == "a text of 120,000 characters is more than the limit of 100,000 (TERN_TEMPLATE_MAX_CHARS)"
    template = "{% set ns = namespace(t='') %}{% set ns.t = a ~ a ~ a %}built, never read"
    result, _ = rendered_within(template, {"a": "x" * 40_000})
    assert isinstance(result, TemplateError)
    assert result.cause == "a text of 120,000 characters is more than the limit of 100,000 (TERN_TEMPLATE_MAX_CHARS)"


def test_squaring_a_number_stops_before_it_gets_slow():
    template = "{% set ns = namespace(n=9) %}{% for i in range(1, 60) %}{% set ns.n = ns.n * ns.n %}{% endfor %}"
    result, seconds = rendered_within(template)
    assert isinstance(result, TemplateError) and "too large a number to compute" in result.cause
    assert seconds < 1


def test_range_and_lists_have_an_item_limit(tight):
    result, _ = rendered_within("{{ range(1, 5000) | length }}")
    assert isinstance(result, TemplateError)
    assert result.cause == "5,000 items are more than the limit of 1,000 (TERN_TEMPLATE_MAX_ITEMS)"
    result, _ = rendered_within("{{ (range(1, 900) + range(1, 900)) | length }}")
    assert isinstance(result, TemplateError) and "TERN_TEMPLATE_MAX_ITEMS" in result.cause
    assert rendered_within("{{ range(1, 1000) | length }}")[0] == "1000"


def test_recursion_without_end_is_an_error():
    result, _ = rendered_within("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}")
    assert isinstance(result, TemplateError) and "RecursionError" in result.cause


@pytest.mark.parametrize("name", ["lipsum", "cycler", "joiner"])
def test_jinja_globals_kestra_has_not_are_gone(name):
    result, _ = rendered_within(f"{{{{ {name}(10) }}}}")
    assert isinstance(result, TemplateError) and result.cause == f"'{name}' is undefined"


def test_a_template_changes_no_value_in_place():
    result, _ = rendered_within("{% set l = [1] %}{{ l.append(2) }}")
    assert isinstance(result, TemplateError) and "unsafe" in result.cause


def test_what_kestra_users_write_still_renders():
    variables = {"outputs": {"t": {"values": ["a", "b"]}}, "inputs": {"n": 3}}
    assert render("{% for v in outputs.t.values %}{{ v | upper }}{% endfor %}", variables) == "AB"
    assert render("{% for i in 1..inputs.n %}{{ i }}{% if not loop.last %},{% endif %}{% endfor %}", variables) == (
        "1,2,3"
    )
    assert render("{{ 'a-b' | replace('-', '+') }} {{ 'x1y2' | replace('(\\d)', '<$1>', regexp=true) }}", {}) == (
        "a+b x<1>y<2>"
    )
    assert render("{{ render('{{ 1 + 1 }}') }}", {"render": lambda t: render(t, {})}) == "2"


def test_a_render_inside_a_render_spends_its_parents_budget(tight):
    def inner(text):
        return render(text, {})

    body = "{% for i in range(1, 1000) %}{% for j in range(1, 1000) %}{% endfor %}{% endfor %}"
    started = time.monotonic()
    with pytest.raises(TemplateError, match="TERN_TEMPLATE_SECONDS"):
        render("{% for i in range(1, 100) %}{{ render(body) }}{% endfor %}", {"render": inner, "body": body})
    assert time.monotonic() - started < SECONDS + 0.5  # not 100 budgets of 0.5 s


def test_a_pattern_that_backtracks_for_ever_stops_at_the_time_limit(tight):
    started = time.monotonic()
    result, _ = rendered_within("{{ text | replace('(a|aa)+$', '-', regexp=true) }}", {"text": "a" * 40 + "!"})
    assert isinstance(result, TemplateError) and "ran past the render's time limit" in result.cause
    assert time.monotonic() - started < SECONDS + 0.5


def test_an_input_validator_that_backtracks_is_refused_with_a_message():
    flow = load_flow(
        "id: f\nnamespace: t\ninputs:\n  - id: code\n    type: STRING\n    validator: '(a|aa)+$'\n"
        "tasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
    )
    started = time.monotonic()
    with pytest.raises(InputsError, match=r"took more than 1 s on this value"):
        coerce_inputs(flow.inputs, {"code": "a" * 40 + "!"})
    assert time.monotonic() - started < 3


# A grammar of the template pieces that make work: loops, growth by argument, concatenation, recursion.
_NUMBER = st.sampled_from([0, 1, 7, 999, 10**5, 10**7, 2 * 10**9])
_TEXT = st.sampled_from(["'x'", "'ab'", "'\\t'", "'a\\nb'", "t", "'%5s'"])


@st.composite
def _expression(draw, depth=0):
    text = draw(_TEXT)
    if depth > 2:
        return text
    kind = draw(st.sampled_from(["filter", "method", "concat", "join", "plain"]))
    inner = draw(_expression(depth + 1))
    n = draw(_NUMBER)
    if kind == "filter":
        name = draw(st.sampled_from(["center", "indent", "wordwrap", "format", "replace", "truncate", "batch"]))
        if name == "replace":
            return f"({inner} | replace({text}, {inner}))"
        return f"({inner} | {name}({n}))"
    if kind == "method":
        name = draw(st.sampled_from(["center", "ljust", "zfill", "expandtabs", "replace", "join"]))
        if name in ("replace", "join"):
            return f"({text}).{name}({inner}{', ' + inner if name == 'replace' else ''})"
        return f"({inner}).{name}({n})"
    if kind == "concat":
        return f"({inner} ~ {inner} ~ {inner})"
    if kind == "join":
        return f"(range(1, {min(n, 10**6)}) | join({inner}))"
    return inner


@st.composite
def _template(draw):
    body = "{{ " + draw(_expression()) + " }}"
    for _ in range(draw(st.integers(0, 3))):
        n = draw(_NUMBER)
        body = f"{{% for i in range(1, {max(n, 1)}) %}}{body}{{% endfor %}}"
    return body


@settings(max_examples=150)  # many renders run to the time limit: the suite's time is the budget
@given(_template())
def test_every_generated_render_ends_in_time_with_a_value_or_a_clear_error(template):
    saved = budget.LIMITS
    budget.configure(budget.Limits(seconds=0.1, max_chars=1_000_000, max_items=100_000, built_chars=5_000_000))
    try:
        result, seconds = rendered_within(template, {"t": "text\twith\ttabs"})
    finally:
        budget.configure(saved)
    assert seconds < 0.1 + 0.5, template  # the margin: one C call (a join of 100 000 items) past the clock
    if isinstance(result, TemplateError):
        assert result.cause and "Traceback" not in result.cause
    else:
        assert isinstance(result, str) and len(result) <= 1_000_000
