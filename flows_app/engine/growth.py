"""How big a filter's or a text method's result can get, known from its arguments before it runs.

One C call such as `'x' | center(2000000000)` cannot be stopped once started, so the few calls that grow
by an argument (a width, a count, a separator, a replacement) are sized first and refused over the limit
(see `budget.ensure_chars`). Every other call's result is checked once made (`budget.built`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .budget import ensure_chars, ensure_items

Estimate = Callable[..., None]  # (value, *args, **kwargs) -> None, or BudgetExceeded

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\d+|\*)?(?:\.(\d+|\*))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*?:([^{}]*)\}")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple, dict)) else len(str(value))


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return default


def _width(position: int, keyword: str, default: int = 0) -> Estimate:
    """The result is as wide as an argument (center, ljust, zfill)."""

    def estimate(value: Any, *args: Any, **kwargs: Any) -> None:
        width = args[position] if len(args) > position else kwargs.get(keyword, default)
        ensure_chars(max(_size(value), _int(width)))

    return estimate


def _indent(value: Any, amount: Any = 4, prefix: Any = " ", *args: Any, **kwargs: Any) -> None:
    amount = kwargs.get("width", amount)
    lines = str(value).count("\n") + 1
    ensure_chars(_size(value) + lines * _int(amount) * max(len(str(prefix)), 1))


def _wordwrap(value: Any, width: Any = 79, *args: Any, **kwargs: Any) -> None:
    wrapstring = kwargs.get("wrapstring") or (args[1] if len(args) > 1 else None) or "\n"
    breaks = _size(value) // max(_int(width, 79), 1) + 1
    ensure_chars(_size(value) + breaks * len(str(wrapstring)))


def _batch(value: Any, linecount: Any = 1, *args: Any, **kwargs: Any) -> None:
    ensure_items(_int(linecount))


def _join(value: Any, separator: Any = "", *args: Any, **kwargs: Any) -> None:
    count = len(value) if isinstance(value, (list, tuple, dict, str)) else 0
    ensure_chars(count * len(str(kwargs.get("d", separator))))


def _replace(value: Any, old: Any = None, new: Any = None, *args: Any, regexp: bool = False, **kwargs: Any) -> None:
    text = str(value)
    pairs = old.items() if isinstance(old, Mapping) else [(old, new)]
    grown = len(text)
    for search, replacement in pairs:
        search, replacement = str(search), str(replacement if replacement is not None else "")
        # a pattern may match anywhere, even on nothing: at most once per position
        matches = len(text) + 1 if regexp or not search else text.count(search)
        grown += matches * len(replacement)
    ensure_chars(grown)


def _percent_format(value: Any, *args: Any, **kwargs: Any) -> None:
    """`'%20s' | format(x)` and `%*d`: the widths and precisions, added up."""
    numbers = iter(args)
    total = _size(value) + sum(_size(a) for a in args)
    for width, precision in _PERCENT_SPEC.findall(str(value)):
        for part in (width, precision):
            total += _int(next(numbers, 0)) if part == "*" else _int(part)
    ensure_chars(total)


def _brace_format(value: Any, *args: Any, **kwargs: Any) -> None:
    """`'{:>20}'.format(x)`: the numbers in each format spec, added up."""
    total = _size(value) + sum(_size(a) for a in args) + sum(_size(v) for v in kwargs.values())
    for spec in _BRACE_SPEC.findall(str(value)):
        total += sum(int(n) for n in re.findall(r"\d+", spec))
    ensure_chars(total)


def _expandtabs(value: Any, tabsize: Any = 8, *args: Any, **kwargs: Any) -> None:
    ensure_chars(_size(value) + str(value).count("\t") * _int(kwargs.get("tabsize", tabsize)))


def _str_join(value: Any, items: Any = (), *args: Any, **kwargs: Any) -> None:
    if isinstance(items, (list, tuple, dict, str)):
        ensure_chars(len(value) * len(items) + sum(_size(i) for i in items))


def _str_replace(value: Any, old: Any = "", new: Any = "", *args: Any, **kwargs: Any) -> None:
    _replace(value, old, new)


FILTERS: dict[str, Estimate] = {
    "center": _width(0, "width", 80),
    "indent": _indent,
    "nindent": _indent,
    "wordwrap": _wordwrap,
    "batch": _batch,
    "join": _join,
    "replace": _replace,
    "format": _percent_format,
}

# Methods of a text a template may call (`'x'.center(9)`): those that grow by an argument.
TEXT_METHODS: dict[str, Estimate] = {
    "center": _width(0, "width"),
    "ljust": _width(0, "width"),
    "rjust": _width(0, "width"),
    "zfill": _width(0, "width"),
    "expandtabs": _expandtabs,
    "join": _str_join,
    "replace": _str_replace,
    "format": _brace_format,
    "format_map": _brace_format,
}
