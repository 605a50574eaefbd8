"""The engine's words a plugin may use: states, Kestra's truth, Pebble's text, durations, the task spec.

Pure and small. A plugin imports nothing else of flows_app (tests/test_arrows.py holds it to that): the
rest of the world reaches it through the context it is handed.
"""

from __future__ import annotations

from typing import Any

from flows_app.spec.durations import DurationError, format_duration, parse_duration
from flows_app.spec.model import TaskSpec

from .masking import MIN_LENGTH as MASK_MIN_LENGTH
from .pebble_runtime import to_text
from .states import TERMINAL, State

__all__ = [
    "MASK_MIN_LENGTH",
    "TERMINAL",
    "DurationError",
    "State",
    "TaskSpec",
    "format_duration",
    "is_template",
    "parse_duration",
    "to_text",
    "truthy",
]

# Kestra's If accepts these (trimmed, any case) as false; we add null/none so a rendered null is false.
FALSE_TEXTS = frozenset({"", "false", "0", "-0", "null", "none"})


def truthy(value: Any) -> bool:
    """Kestra's truth for If, runIf and Fail conditions: rendered text is false when blank, false, 0 or null."""
    if isinstance(value, str):
        return value.strip().lower() not in FALSE_TEXTS
    return bool(value)


def is_template(value: str) -> bool:
    """Whether `value` has anything to render (cheap enough to call on every property)."""
    return "{{" in value or "{%" in value
