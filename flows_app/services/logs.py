"""Task logs: buffered and written to the database in batches; live listeners see each line at once."""
from __future__ import annotations

import threading
from typing import Callable

from django.conf import settings
from django.utils import timezone

from flows_app.engine.masking import mask, secret_values
from flows_app.models import LogEntry

LEVELS = {"TRACE": 0, "DEBUG": 10, "INFO": 20, "WARN": 30, "WARNING": 30, "ERROR": 40}

# Called with each LogEntry as it is emitted (the `tern flow test` printer; later the live stream).
_listeners: list[Callable[[LogEntry], None]] = []
_lock = threading.Lock()


def add_listener(listener: Callable[[LogEntry], None]) -> None:
    with _lock:
        _listeners.append(listener)


def remove_listener(listener: Callable[[LogEntry], None]) -> None:
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def normalize_level(level: str) -> str:
    level = str(level).upper()
    return "WARN" if level == "WARNING" else (level if level in LEVELS else "INFO")


class LogSink:
    """The logs of one task-run attempt (or of the execution itself, with no task run)."""

    def __init__(self, execution_id: str, task_run_id: str | None = None, task_id: str = "",
                 attempt: int = 1, min_level: str | None = None):
        self.execution_id, self.task_run_id, self.task_id, self.attempt = execution_id, task_run_id, task_id, attempt
        self.min_level = LEVELS[normalize_level(min_level)] if min_level else 0
        self.secrets = secret_values()  # read once per sink: the environment does not change mid-task
        self.batch_size = settings.TERN["LOG_BATCH_SIZE"]
        self.pending: list[LogEntry] = []
        self.lock = threading.Lock()  # stdout and stderr readers log from two threads

    def emit(self, level: str, message: str) -> None:
        level = normalize_level(level)
        if LEVELS[level] < self.min_level:
            return
        message = mask(str(message), self.secrets)
        entry = LogEntry(execution_id=self.execution_id, task_run_id=self.task_run_id, task_id=self.task_id,
                         attempt=self.attempt, level=level, message=message, timestamp=timezone.now())
        for listener in list(_listeners):
            listener(entry)
        with self.lock:
            self.pending.append(entry)
            full = len(self.pending) >= self.batch_size
        if full:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            batch, self.pending = self.pending, []
        if batch:
            LogEntry.objects.bulk_create(batch)


def log_now(execution_id: str, level: str, message: str, task_run_id: str | None = None, task_id: str = "") -> None:
    sink = LogSink(execution_id, task_run_id, task_id)
    sink.emit(level, message)
    sink.flush()
