"""Task logs: buffered and written to the database in batches, each batch announced for live listeners."""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.utils import timezone

from flows_app import events
from flows_app.engine.masking import mask, secret_values
from flows_app.models import LogEntry

LEVELS = {"TRACE": 0, "DEBUG": 10, "INFO": 20, "WARN": 30, "WARNING": 30, "ERROR": 40}

FLUSH_SECONDS = 0.5  # a live viewer waits at most this long for a line of a quiet task


def normalize_level(level: str) -> str:
    level = str(level).upper()
    return "WARN" if level == "WARNING" else (level if level in LEVELS else "INFO")


class LogSink:
    """The logs of one task-run attempt (or of the execution itself, with no task run)."""

    def __init__(
        self,
        execution_id: str,
        task_run_id: str | None = None,
        task_id: str = "",
        attempt: int = 1,
        min_level: str | None = None,
    ):
        self.execution_id, self.task_run_id, self.task_id, self.attempt = execution_id, task_run_id, task_id, attempt
        self.min_level = LEVELS[normalize_level(min_level)] if min_level else 0
        self.secrets = secret_values()  # read once per sink: the environment does not change mid-task
        self.batch_size = settings.TERN["LOG_BATCH_SIZE"]
        self.pending: list[LogEntry] = []
        self.lock = threading.Lock()  # stdout and stderr readers log from two threads
        self.last_flush = time.monotonic()

    def emit(self, level: str, message: str) -> None:
        level = normalize_level(level)
        if LEVELS[level] < self.min_level:
            return
        message = mask(str(message), self.secrets)
        entry = LogEntry(
            execution_id=self.execution_id,
            task_run_id=self.task_run_id,
            task_id=self.task_id,
            attempt=self.attempt,
            level=level,
            message=message,
            timestamp=timezone.now(),
        )
        with self.lock:
            self.pending.append(entry)
            due = len(self.pending) >= self.batch_size or time.monotonic() - self.last_flush >= FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        """One INSERT for the batch, announced (live viewers hear it once it commits)."""
        with self.lock:
            batch, self.pending = self.pending, []
            self.last_flush = time.monotonic()
        if batch:
            LogEntry.objects.bulk_create(batch)
            events.announce(
                events.LogLinesWritten(
                    self.execution_id,
                    tuple(
                        events.LogLine(e.task_run_id, e.task_id, e.attempt, e.level, e.message, e.timestamp)
                        for e in batch
                    ),
                )
            )


def log_now(execution_id: str, level: str, message: str, task_run_id: str | None = None, task_id: str = "") -> None:
    sink = LogSink(execution_id, task_run_id, task_id)
    sink.emit(level, message)
    sink.flush()
