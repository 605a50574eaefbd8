"""What one render may spend: time, the size of what it prints, and the size of what it builds on the way.

A template runs on a worker's thread, where nothing can interrupt it from outside, so it has to stop
itself: the rendering environment calls `tick()` on every loop step, call and printed piece, and passes
every value a filter, function or operator makes through `built()`. The arguments that make a single
step grow without bound (a width, a count, a separator) are checked before the step, by `ensure()`.

The budget is per top-level render; a render inside a render (the `render()` function) spends its
parent's. A task's own limits join in through `task_scope()`: its timeout and its kill stop a render too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

STOP_CHECK_SECONDS = 0.5  # how often a render asks whether its task was killed (a database query)
CHECK_EVERY = 64  # ticks between two looks at the clock
CHARS_PER_TICK = 1024  # a built value costs a tick per this many characters or items: big values cost time


@dataclass(frozen=True)
class Limits:
    seconds: float = 10.0  # TERN_TEMPLATE_SECONDS: one render, start to end
    max_chars: int = 10_000_000  # TERN_TEMPLATE_MAX_CHARS: any one text a render prints or builds
    max_items: int = 100_000  # TERN_TEMPLATE_MAX_ITEMS: any one list or map it builds (range() included)
    built_chars: int = 50_000_000  # TERN_TEMPLATE_BUILT_CHARS: all the text it builds, added up


LIMITS = Limits()


def configure(limits: Limits) -> None:
    """Set the deployment's limits (Django's app start reads them from the settings)."""
    global LIMITS
    LIMITS = limits


class BudgetExceeded(Exception):
    """A render went past a limit; the message names the limit and the setting that raises it."""


class RenderStopped(Exception):
    """The task whose properties were rendering was killed or timed out."""


@dataclass
class _TaskLimits:
    deadline: float | None  # time.monotonic() by which the task must end
    timeout_text: str
    should_stop: Callable[[], bool]


class Budget:
    __slots__ = ("built_total", "deadline", "limits", "next_check", "next_stop_check", "task", "ticks")

    def __init__(self, limits: Limits, task: _TaskLimits | None) -> None:
        now = time.monotonic()
        self.limits, self.task = limits, task
        self.deadline = now + limits.seconds
        self.ticks = 0
        self.next_check = CHECK_EVERY
        self.built_total = 0
        self.next_stop_check = now + STOP_CHECK_SECONDS

    def tick(self, weight: int = 1) -> None:
        """One step of work, or `weight` steps' worth; the clock is read every CHECK_EVERY steps."""
        self.ticks += weight
        if self.ticks >= self.next_check:
            self.next_check = self.ticks + CHECK_EVERY
            self.check_clock()

    def check_clock(self) -> None:
        now = time.monotonic()
        task = self.task
        if task is not None:
            if task.deadline is not None and now > task.deadline:
                raise RenderStopped(f"Timeout after {task.timeout_text}, while rendering")
            if now >= self.next_stop_check:
                self.next_stop_check = now + STOP_CHECK_SECONDS
                if task.should_stop():
                    raise RenderStopped("the execution was killed while this task was rendering")
        if now > self.deadline:
            raise BudgetExceeded(
                f"the render took more than its {_number(self.limits.seconds)} s (TERN_TEMPLATE_SECONDS)"
            )

    def remaining(self) -> float:
        """Seconds left before the render's deadline, or its task's (a single C call's own time limit)."""
        deadline = self.deadline
        if self.task is not None and self.task.deadline is not None:
            deadline = min(deadline, self.task.deadline)
        return max(deadline - time.monotonic(), 0.001)

    def built(self, value: Any) -> Any:
        """`value`, once its size is within the limits (and added to what this render has built)."""
        size = 0
        if isinstance(value, (str, bytes)):
            size = len(value)
            if size > self.limits.max_chars:
                raise BudgetExceeded(_too_long(size, self.limits.max_chars))
            self.built_total += size
            if self.built_total > self.limits.built_chars:
                raise BudgetExceeded(
                    f"the render built more than {self.limits.built_chars:,} characters in all "
                    "(TERN_TEMPLATE_BUILT_CHARS)"
                )
        elif isinstance(value, (list, tuple, dict, set)):
            size = len(value)
            if size > self.limits.max_items:
                raise BudgetExceeded(_too_many(size, self.limits.max_items))
        self.tick(1 + size // CHARS_PER_TICK)
        return value


def _too_long(size: int, limit: int) -> str:
    return f"a text of {size:,} characters is more than the limit of {limit:,} (TERN_TEMPLATE_MAX_CHARS)"


def _too_many(count: int, limit: int) -> str:
    return f"{count:,} items are more than the limit of {limit:,} (TERN_TEMPLATE_MAX_ITEMS)"


def _number(value: float) -> str:
    return f"{value:g}"


def ensure_chars(size: int) -> None:
    """Refuse, before building it, a text of `size` characters over the limit."""
    if size > LIMITS.max_chars:
        raise BudgetExceeded(_too_long(size, LIMITS.max_chars))


def ensure_items(count: int) -> None:
    """Refuse, before building it, a list of `count` items over the limit."""
    if count > LIMITS.max_items:
        raise BudgetExceeded(_too_many(count, LIMITS.max_items))


_local = threading.local()


def current() -> Budget | None:
    return getattr(_local, "budget", None)


@contextmanager
def spending() -> Iterator[Budget]:
    """The budget of the render starting now, or of the render this one runs inside."""
    running = current()
    if running is not None:
        yield running
        return
    budget = Budget(LIMITS, getattr(_local, "task", None))
    _local.budget = budget
    try:
        yield budget
    finally:
        _local.budget = None


@contextmanager
def task_scope(deadline: float | None, timeout_text: str, should_stop: Callable[[], bool]) -> Iterator[None]:
    """While a task runs on this thread, its renders also stop at its deadline and on its kill."""
    _local.task = _TaskLimits(deadline, timeout_text, should_stop)
    try:
        yield
    finally:
        _local.task = None


def tick() -> None:
    budget = current()
    if budget is not None:
        budget.tick()


def built(value: Any) -> Any:
    """`value` checked against the running render's budget (against the limits alone outside a render)."""
    budget = current()
    if budget is not None:
        return budget.built(value)
    if isinstance(value, (str, bytes)):
        ensure_chars(len(value))
    elif isinstance(value, (list, tuple, dict, set)):
        ensure_items(len(value))
    return value


def bounded_iteration(iterable: Any) -> Iterator[Any]:
    """A template loop's items, with a tick for each: nested loops over small lists multiply."""
    budget = current()
    if budget is None:
        yield from iterable
        return
    for item in iterable:
        budget.tick()
        yield item
