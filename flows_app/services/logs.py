"""Task logs: buffered and written to the database in batches, each batch announced for live listeners."""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.utils import timezone

from flows_app import events
from flows_app.engine.masking import mask, secret_values, with_disguises
from flows_app.models import LogEntry

from .logfiles import LogFile, cut_line, file_line, switch_message

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
        log_file: LogFile | None = None,
        to_file: bool = False,
    ):
        self.execution_id, self.task_run_id, self.task_id, self.attempt = execution_id, task_run_id, task_id, attempt
        self.min_level = LEVELS[normalize_level(min_level)] if min_level else 0
        self.secrets = secret_values()  # read once per sink: the environment does not change mid-task
        self.batch_size = settings.TERN["LOG_BATCH_SIZE"]
        self.pending: list[LogEntry] = []
        self.lock = threading.Lock()  # stdout and stderr readers log from two threads
        self.last_flush = time.monotonic()
        self.max_line_bytes = settings.TERN["LOG_LINE_MAX_BYTES"]
        # the task's own lines past its share of the database go to `log_file` (logToFile: all of them)
        self.log_file, self.to_file = log_file, to_file
        self.max_lines = 0 if to_file else settings.TERN["LOG_MAX_LINES"]
        self.task_lines = 0
        self.on_file = False

    def task_line(self, level: str, message: str) -> None:
        """A line the task itself writes (its RunContext's log): past the database's share, to the log file."""
        level = normalize_level(level)
        if self.log_file is None or LEVELS[level] < self.min_level:
            return self.emit(level, message)
        with self.lock:
            self.task_lines += 1
            to_file, switching = self.task_lines > self.max_lines, not self.on_file
            self.on_file = to_file
        if not to_file:
            return self.emit(level, message)
        if switching:
            reason = "logToFile" if self.to_file else f"more than {self.max_lines:,} lines (TERN_LOG_MAX_LINES)"
            self._record("INFO", switch_message(self.log_file.open(), reason))  # ours: never cut
        line = file_line(timezone.now(), level, self.task_id, self._shaped(message))
        with self.lock:
            self.log_file.write(line)

    def add_secret(self, value: str) -> None:
        """Mask `value` and its disguises from now on, here and in the task's outputs (a script's
        `::{"mask": …}::` line). One assignment: the other output reader sees the old list or the new."""
        self.secrets = with_disguises([value], known=self.secrets)

    def emit(self, level: str, message: str) -> None:
        """A line in the database, announced to live viewers."""
        level = normalize_level(level)
        if LEVELS[level] >= self.min_level:
            self._record(level, self._shaped(message))

    def _record(self, level: str, message: str) -> None:
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

    def _shaped(self, message: str) -> str:
        return cut_line(mask(str(message), self.secrets), self.max_line_bytes)

    def close(self) -> None:
        """The attempt is over: the last lines written, its log file closed."""
        self.flush()
        if self.log_file is not None:
            self.log_file.close()

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
