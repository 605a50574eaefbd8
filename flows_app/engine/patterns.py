"""Regular expressions written by users (a template's `replace(..., regexp=true)`, an input's
`validator`), run with a time limit: one pattern such as `(a+)+$` backtracks for hours in a single C call
of Python's `re`, which nothing can interrupt. The `regex` module takes a timeout and is re-compatible."""

from __future__ import annotations

import functools

import regex

from . import budget

VALIDATOR_SECONDS = 1.0  # an input's validator on one value


class PatternTimeout(ValueError):
    """A pattern took longer than its time; the message names it."""


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> regex.Pattern[str]:
    try:
        return regex.compile(pattern)
    except regex.error as exc:
        raise ValueError(f"`{pattern}` is not a valid regular expression: {exc}") from None


def _seconds() -> float:
    """What the running render has left, or its whole limit outside a render."""
    spent = budget.current()
    return spent.remaining() if spent is not None else budget.LIMITS.seconds


def sub(pattern: str, replacement: str, text: str) -> str:
    seconds = _seconds()
    try:
        result: str = _compiled(pattern).sub(replacement, text, timeout=seconds)
        return result
    except TimeoutError:
        raise budget.BudgetExceeded(
            f"the pattern `{pattern}` ran past the render's time limit (TERN_TEMPLATE_SECONDS)"
        ) from None


def fullmatch(pattern: str, text: str, seconds: float = VALIDATOR_SECONDS) -> bool:
    try:
        return _compiled(pattern).fullmatch(text, timeout=seconds) is not None
    except TimeoutError:
        raise PatternTimeout(f"the pattern `{pattern}` took more than {seconds:g} s on this value") from None
