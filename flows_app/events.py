"""What the engine announces, and who hears it: small frozen events, delivered once their transaction commits.

Services call `announce(event)` where something happened; nothing is delivered for a transaction that rolls
back, and the events of one transaction reach their subscribers in the order they were announced. Outside a
transaction an event is delivered at once. Subscribers are listed in SUBSCRIBERS (dotted paths, imported on
first use) — the one place to add a new listener — or added at run time with `subscribe()`.

A subscriber that raises is logged and does not stop the others: the database is the truth, and the
scheduler's tick recovers any work whose message was not sent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from django.db import transaction
from django.utils.module_loading import import_string

logger = logging.getLogger("tern.events")


# ---- the events ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionCreated:
    execution_id: str
    namespace: str
    flow_id: str
    parent_id: str | None = None


@dataclass(frozen=True)
class ExecutionStateChanged:
    execution_id: str
    state: str
    previous: str


@dataclass(frozen=True)
class ExecutionEnded:
    """The execution reached its final state (SUCCESS, WARNING, FAILED, KILLED): after its `afterExecution`
    tasks, if it has any (they run while it is still RUNNING, seeing the state it is about to end in)."""

    execution_id: str
    state: str
    outputs: Mapping[str, Any] = field(default_factory=dict)
    parent_id: str | None = None  # the execution whose Subflow or ForEachItem task started this one
    flow_pk: int | None = None  # its Flow row
    trigger: Mapping[str, Any] | None = None  # what started it (Execution.trigger): a trigger's id and type


@dataclass(frozen=True)
class ReadyRun:
    """One task run to start now, with the facts its routing is decided from (by the dispatcher)."""

    task_run_id: str
    task_id: str
    parent_id: str | None
    worker_group: str | None = None
    pinned_worker: str | None = None  # the worker that must run it: it holds files earlier runs left
    joined: bool = False  # one of a fan-in parent's children that all start now: one advance after the last


@dataclass(frozen=True)
class TaskRunsReady:
    """Task runs were queued. `kept`: the one of them that the worker which caused this runs itself next."""

    execution_id: str
    runs: tuple[ReadyRun, ...]
    kept: str | None = None


@dataclass(frozen=True)
class TaskRunStateChanged:
    execution_id: str
    task_run_id: str
    task_id: str
    state: str
    previous: str


@dataclass(frozen=True)
class WakeUpSet:
    """The execution must be advanced at `at` (None: now): a retry's time, a pause's end, new work."""

    execution_id: str
    at: datetime | None = None


@dataclass(frozen=True)
class LogLine:
    task_run_id: str | None  # None: a line of the execution itself
    task_id: str
    attempt: int
    level: str  # TRACE, DEBUG, INFO, WARN, ERROR
    message: str
    timestamp: datetime


@dataclass(frozen=True)
class LogLinesWritten:
    """Log lines stored for an execution (secrets already masked), in the order they were written."""

    execution_id: str
    lines: tuple[LogLine, ...]


# ---- who hears them ------------------------------------------------------------------------------

SUBSCRIBERS: dict[type, tuple[str, ...]] = {
    ExecutionCreated: ("flows_app.dispatch.on_execution_created",),
    WakeUpSet: ("flows_app.dispatch.on_wake_up",),
    TaskRunsReady: ("flows_app.dispatch.on_task_runs_ready",),
    ExecutionEnded: (
        "flows_app.services.subflows.on_execution_ended",
        "flows_app.services.concurrency.on_execution_ended",
        "flows_app.triggers.stops.on_execution_ended",
        "flows_app.triggers.flow_triggers.on_execution_ended",
        "flows_app.triggers.backfill_runs.on_execution_ended",
        "flows_app.dispatch.on_execution_ended",
    ),
    ExecutionStateChanged: ("flows_app.dispatch.on_state_changed",),
    TaskRunStateChanged: ("flows_app.dispatch.on_state_changed",),
    LogLinesWritten: ("flows_app.dispatch.on_log_lines",),
}

Handler = Callable[[Any], None]
_lock = threading.Lock()
_resolved: dict[type, tuple[Handler, ...]] = {}  # SUBSCRIBERS imported, plus the ones added at run time
_added: dict[type, list[Handler]] = {}


def subscribe(event_type: type, handler: Handler) -> None:
    with _lock:
        _added.setdefault(event_type, []).append(handler)
        _resolved.pop(event_type, None)


def unsubscribe(event_type: type, handler: Handler) -> None:
    with _lock:
        if handler in _added.get(event_type, ()):
            _added[event_type].remove(handler)
        _resolved.pop(event_type, None)


@contextmanager
def subscribed(event_type: type, handler: Handler) -> Iterator[Handler]:
    subscribe(event_type, handler)
    try:
        yield handler
    finally:
        unsubscribe(event_type, handler)


def handlers(event_type: type) -> tuple[Handler, ...]:
    found = _resolved.get(event_type)
    if found is None:
        with _lock:
            listed = tuple(import_string(path) for path in SUBSCRIBERS.get(event_type, ()))
            found = _resolved[event_type] = listed + tuple(_added.get(event_type, ()))
    return found


def announce(event: Any) -> None:
    """Deliver `event` to its subscribers once the current transaction commits (at once outside one)."""
    if handlers(type(event)):
        transaction.on_commit(partial(_deliver, event))


def _deliver(event: Any) -> None:
    for handler in handlers(type(event)):
        try:
            handler(event)
        except Exception:  # one listener's failure must not silence the others, nor undo the commit
            logger.exception("subscriber %s failed on %s", getattr(handler, "__qualname__", handler), event)
