"""Pebble's operators (its OperatorUtils): arithmetic on numbers only, `+` on text and lists, Java's division."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from .pebble_runtime import fail_if_undefined, to_text

# Pebble's names for its operations, which its errors quote; `//` and `**` are Jinja's, kept for Jinja-minded users.
OPERATIONS = {
    "+": "ADD",
    "-": "SUBTRACT",
    "*": "MULTIPLICATION",
    "/": "DIVISION",
    "%": "MODULUS",
    "//": "FLOOR_DIVISION",
    "**": "POWER",
}
COMPARISONS = {"<": "LESS_THAN", "<=": "LESS_THAN_EQUALS", ">": "GREATER_THAN", ">=": "GREATER_THAN_EQUALS"}
UNARY = frozenset({"-", "+"})
MAX_POWER_BITS = 1 << 16  # `**` on integers: a bigger result is refused

_PYTHON: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "//": operator.floordiv,
    "**": operator.pow,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def is_number(value: Any) -> bool:
    """Java's Number: booleans are not numbers for Pebble, as they are for Python."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def binary(op: str, left: Any, right: Any) -> Any:
    """`left op right` for the operators Jinja lets the sandbox intercept."""
    fail_if_undefined(left, right)
    if op == "+":
        return add(left, right)
    if op == "-" and isinstance(left, (list, tuple)):
        return _remove(left, right)
    return arithmetic(op, left, right)


def unary(op: str, value: Any) -> Any:
    """Pebble's unary minus and plus multiply by -1 and 1, so only numbers take them."""
    fail_if_undefined(value)
    if not is_number(value):
        raise TypeError(
            f"invalid operands for mathematical operation [MULTIPLICATION]: unary {op} on {_operand(value)}"
        )
    return -value if op == "-" else value


def add(left: Any, right: Any) -> Any:
    """Text on either side joins both as text; a list on the left gains the right's items (or the right)."""
    if isinstance(left, str) or isinstance(right, str):
        return _as_text(left) + _as_text(right)
    if isinstance(left, (list, tuple)):
        return [*left, *(right if isinstance(right, (list, tuple, set)) else [right])]
    return arithmetic("+", left, right)


def _as_text(value: Any) -> str:
    """Java's String.valueOf prints null as "null"; everything else prints as `~` prints it."""
    return "null" if value is None else to_text(value)


def _remove(items: list[Any] | tuple[Any, ...], removed: Any) -> list[Any]:
    """A list minus a collection drops every equal item; minus one value drops its first occurrence (Java's List)."""
    if isinstance(removed, (list, tuple, set)):
        return [item for item in items if not any(equals(item, r) for r in removed)]
    result = list(items)
    for index, item in enumerate(result):
        if equals(item, removed):
            del result[index]
            break
    return result


def arithmetic(op: str, left: Any, right: Any) -> Any:
    """Numbers only; two integers divide as Java's longs do (truncated), a decimal on either side as doubles."""
    if not (is_number(left) and is_number(right)):
        raise TypeError(
            f"invalid operands for mathematical operation [{OPERATIONS[op]}]: {_operand(left)} {op} {_operand(right)}"
        )
    if (
        op == "**"
        and isinstance(left, int)
        and isinstance(right, int)
        and abs(left) > 1
        and left.bit_length() * right > MAX_POWER_BITS
    ):
        raise TypeError(
            f"{_operand(left)} ** {right} is too large a number to compute"
        )  # one template must not hang a worker
    if (
        op == "*"
        and isinstance(left, int)
        and isinstance(right, int)
        and left.bit_length() + right.bit_length() > MAX_POWER_BITS
    ):
        raise TypeError(f"{_operand(left)} * {_operand(right)} is too large a number to compute")  # squaring in a loop
    if op not in ("/", "%"):
        return _PYTHON[op](left, right)
    if isinstance(left, int) and isinstance(right, int):
        if right == 0:
            raise ZeroDivisionError(f"/ by zero: {left} {op} 0")
        quotient = abs(left) // abs(right) * (1 if (left < 0) == (right < 0) else -1)
        return quotient if op == "/" else left - right * quotient
    return _double_division(op, float(left), float(right))


def _double_division(op: str, left: float, right: float) -> float:
    """IEEE doubles as Java has them: x/0 is infinite, 0/0 and x%0 are NaN, the remainder takes x's sign."""
    try:
        return left / right if op == "/" else math.fmod(left, right)
    except (ZeroDivisionError, ValueError):
        if op == "%" or left == 0 or math.isnan(left):
            return math.nan
        return math.copysign(math.inf, left) * math.copysign(1.0, right)


def equals(left: Any, right: Any) -> bool:
    """Pebble's `==`: numbers by value whatever their type, anything else by Java's equals (true is not 1)."""
    fail_if_undefined(left, right)
    if is_number(left) and is_number(right):
        return bool(left == right)
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        return len(left) == len(right) and all(equals(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(equals(left[k], right[k]) for k in left)
    return bool(left == right)


def compare(op: str, left: Any, right: Any) -> bool:
    """Pebble's `<`, `<=`, `>`, `>=`: false when either side is null, an error unless both are numbers."""
    fail_if_undefined(left, right)
    if left is None or right is None:
        return False
    if not (is_number(left) and is_number(right)):
        raise TypeError(
            f"invalid operands for mathematical comparison [{COMPARISONS[op]}]: {_operand(left)} {op} {_operand(right)}"
        )
    return bool(_PYTHON[op](left, right))


def _operand(value: Any) -> str:
    """An operand for an error message: its kind, then its value cut short."""
    kind = (
        "null"
        if value is None
        else "boolean"
        if isinstance(value, bool)
        else "number"
        if is_number(value)
        else "text"
        if isinstance(value, str)
        else "map"
        if isinstance(value, Mapping)
        else "list"
        if isinstance(value, (list, tuple))
        else type(value).__name__
    )
    if value is None:
        return kind
    if isinstance(value, int) and value.bit_length() > 128:  # str() of a huge number is slow, then refused
        return f"{kind} of about {int(value.bit_length() * 0.30103) + 1:,} digits"
    shown = repr(value) if isinstance(value, str) else to_text(value)
    return f"{kind} {shown if len(shown) <= 40 else shown[:37] + '...'}"


RUNTIME_GLOBALS = {"_pebble_equals": equals, "_pebble_compare": compare}
