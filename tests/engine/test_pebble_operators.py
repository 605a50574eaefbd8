"""Pebble's operators in templates: arithmetic only on numbers, `+` joining text and lists, Java's division."""

from __future__ import annotations

import pytest

from flows_app.engine.templating import TemplateError, render

VARIABLES = {
    "text_one": "1",
    "n": 7,
    "half": 0.5,
    "nothing": None,
    "items": [1, 2, 1],
    "flag": True,
    "taskrun": {"value": "1"},
    "m": {"a": 1},
}


def fails(template: str) -> str:
    with pytest.raises(TemplateError) as caught:
        render(template, VARIABLES)
    return caught.value.cause


# --- arithmetic on numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{ 2 + 3 }}", "5"),
        ("{{ n + half }}", "7.5"),
        ("{{ 2 - 5 }}", "-3"),
        ("{{ n - half }}", "6.5"),
        ("{{ 6 * 7 }}", "42"),
        ("{{ n * half }}", "3.5"),
        ("{{ 2 + 3 * 4 }}", "14"),
        ("{{ (2 + 3) * 4 }}", "20"),
        ("{{ 2 ** 3 }}", "8"),
        ("{{ 7 // 2 }}", "3"),
        ("{{ -n }}", "-7"),
        ("{{ +n }}", "7"),
        ("{{ -half }}", "-0.5"),
    ],
)
def test_numbers_add_subtract_and_multiply_as_numbers(template, expected):
    assert render(template, VARIABLES) == expected


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{ 10 / 4 }}", "2"),
        ("{{ 7 / 7 }}", "1"),
        ("{{ -7 / 2 }}", "-3"),
        ("{{ 7 / -2 }}", "-3"),
        ("{{ 10 / 4.0 }}", "2.5"),
        ("{{ 10.0 / 4 }}", "2.5"),
        ("{{ n / half }}", "14.0"),
    ],
)
def test_two_integers_divide_as_java_longs_do_truncating_toward_zero(template, expected):
    assert render(template, VARIABLES) == expected


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{ 7 % 3 }}", "1"),
        ("{{ -7 % 3 }}", "-1"),
        ("{{ 7 % -3 }}", "1"),
        ("{{ 7.5 % 2 }}", "1.5"),
        ("{{ -7.5 % 2 }}", "-1.5"),
    ],
)
def test_the_remainder_takes_the_sign_of_the_dividend_as_in_java(template, expected):
    assert render(template, VARIABLES) == expected


@pytest.mark.parametrize("template", ["{{ 1 / 0 }}", "{{ n % 0 }}"])
def test_an_integer_division_by_zero_fails(template):
    assert "/ by zero" in fails(template)


@pytest.mark.parametrize(
    "template, expected",
    [("{{ 1.0 / 0 }}", "inf"), ("{{ -1 / 0.0 }}", "-inf"), ("{{ 0.0 / 0 }}", "nan"), ("{{ 1.5 % 0 }}", "nan")],
)
def test_a_decimal_division_by_zero_gives_infinity_or_nan_as_java_doubles_do(template, expected):
    assert render(template, VARIABLES) == expected


# --- arithmetic on anything else fails, as Pebble's does ---------------------------------------------


@pytest.mark.parametrize(
    "template, operation",
    [
        ("{{ taskrun.value * 3 }}", "MULTIPLICATION"),
        ("{{ 3 * text_one }}", "MULTIPLICATION"),
        ("{{ 'ab' * 2 }}", "MULTIPLICATION"),
        ("{{ text_one - 1 }}", "SUBTRACT"),
        ("{{ text_one / 1 }}", "DIVISION"),
        ("{{ text_one % 2 }}", "MODULUS"),
        ("{{ flag + 1 }}", "ADD"),
        ("{{ true * 2 }}", "MULTIPLICATION"),
        ("{{ nothing + 1 }}", "ADD"),
        ("{{ 1 - nothing }}", "SUBTRACT"),
        ("{{ m + 1 }}", "ADD"),
        ("{{ 1 + items }}", "ADD"),
        ("{{ items * 2 }}", "MULTIPLICATION"),
        ("{{ text_one ** 2 }}", "POWER"),
        ("{{ -text_one }}", "MULTIPLICATION"),
        ("{{ -flag }}", "MULTIPLICATION"),
        ("{{ -nothing }}", "MULTIPLICATION"),
    ],
)
def test_arithmetic_on_text_booleans_null_maps_or_lists_fails_with_pebbles_words(template, operation):
    assert f"invalid operands for mathematical operation [{operation}]" in fails(template)


def test_the_error_shows_the_operands():
    assert fails("{{ taskrun.value * 3 }}") == (
        "invalid operands for mathematical operation [MULTIPLICATION]: text '1' * number 3"
    )


def test_arithmetic_is_not_folded_into_the_compiled_template():
    with pytest.raises(TemplateError):
        render("{{ 'a' * 3 }}", {})


@pytest.mark.parametrize(
    "template", ["{{ missing + 1 }}", "{{ 1 * missing }}", "{{ -missing }}", "{{ missing == 1 }}", "{{ missing < 1 }}"]
)
def test_an_undefined_operand_fails_as_undefined(template):
    assert "'missing' is undefined" in fails(template)


# --- `+` joins text and lists -------------------------------------------------------------------


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{ 'item-' + 1 }}", "item-1"),
        ("{{ 1 + '-item' }}", "1-item"),
        ("{{ 'a' + 'b' }}", "ab"),
        ("{{ text_one + 1 }}", "11"),
        ("{{ 'x' + half }}", "x0.5"),
        ("{{ 'is ' + flag }}", "is true"),
        ("{{ 'v=' + nothing }}", "v=null"),
        ("{{ 'l=' + items }}", "l=[1,2,1]"),
        ("{{ 'm=' + m }}", 'm={"a":1}'),
        ("{{ 1 + 2 + 'x' }}", "3x"),
        ("{{ 'x' + 1 + 2 }}", "x12"),
    ],
)
def test_plus_joins_as_text_when_either_side_is_text(template, expected):
    assert render(template, VARIABLES) == expected


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{ [1, 2] + 3 }}", "[1,2,3]"),
        ("{{ [1] + [2, 3] }}", "[1,2,3]"),
        ("{{ [1] + nothing }}", "[1,null]"),
        ("{{ [1] + m }}", '[1,{"a":1}]'),
        ("{{ [] + [] }}", "[]"),
    ],
)
def test_plus_on_a_list_appends_the_right_or_its_items(template, expected):
    assert render(template, VARIABLES) == expected


def test_plus_on_a_list_leaves_the_variable_unchanged():
    assert render("{{ items + 9 }}{{ items }}", VARIABLES) == "[1,2,1,9][1,2,1]"
    assert VARIABLES["items"] == [1, 2, 1]


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{ items - 1 }}", "[2,1]"),
        ("{{ items - [1] }}", "[2]"),
        ("{{ items - 5 }}", "[1,2,1]"),
        ("{{ items - [] }}", "[1,2,1]"),
        ("{{ [true, 1] - 1 }}", "[true]"),
        ("{{ ['a', 'b'] - 'a' }}", '["b"]'),
    ],
)
def test_minus_on_a_list_removes_the_first_equal_item_or_every_listed_one(template, expected):
    assert render(template, VARIABLES) == expected


# --- equality and comparisons ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{ 1 == 1.0 }}", "true"),
        ("{{ n == 7 }}", "true"),
        ("{{ text_one == 1 }}", "false"),
        ("{{ flag == 1 }}", "false"),
        ("{{ true == true }}", "true"),
        ("{{ 0 == false }}", "false"),
        ("{{ nothing == null }}", "true"),
        ("{{ nothing == 0 }}", "false"),
        ("{{ [1, 2] == [1, 2.0] }}", "true"),
        ("{{ [true] == [1] }}", "false"),
        ("{{ {'a': 1} == m }}", "true"),
        ("{{ {'a': true} == m }}", "false"),
        ("{{ 'a' equals 'a' }}", "true"),
        ("{{ flag != 1 }}", "true"),
        ("{{ n != 7 }}", "false"),
    ],
)
def test_equality_compares_numbers_by_value_and_booleans_only_with_booleans(template, expected):
    assert render(template, VARIABLES) == expected


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{ 1 < 2 }}", "true"),
        ("{{ 2 <= 2.0 }}", "true"),
        ("{{ half > 1 }}", "false"),
        ("{{ n >= 7 }}", "true"),
        ("{{ nothing < 1 }}", "false"),
        ("{{ 1 > nothing }}", "false"),
        ("{{ nothing >= nothing }}", "false"),
        ("{% if n > 5 %}big{% else %}small{% endif %}", "big"),
    ],
)
def test_comparisons_order_numbers_and_are_false_against_null(template, expected):
    assert render(template, VARIABLES) == expected


@pytest.mark.parametrize(
    "template, comparison",
    [
        ("{{ 'a' < 'b' }}", "LESS_THAN"),
        ("{{ text_one <= 1 }}", "LESS_THAN_EQUALS"),
        ("{{ flag > 0 }}", "GREATER_THAN"),
        ("{{ items >= 1 }}", "GREATER_THAN_EQUALS"),
    ],
)
def test_comparing_anything_but_numbers_fails_with_pebbles_words(template, comparison):
    assert f"invalid operands for mathematical comparison [{comparison}]" in fails(template)


def test_a_huge_integer_power_is_refused_instead_of_hanging_the_worker():
    assert render("{{ 2 ** 10 }}", VARIABLES) == "1024"
    with pytest.raises(TemplateError, match="too large a number"):
        render("{{ 2 ** 999999999 }}", VARIABLES)
