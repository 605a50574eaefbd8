"""Task logs: buffered and written to the database in batches; live listeners see each line at once."""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Callable

from django.conf import settings
from django.utils import timezone

from flows_app.engine.masking import mask, secret_values
from flows_app.models import LogEntry

LEVELS = {"TRACE": 0, "DEBUG": 10, "INFO": 20, "WARN": 30, "WARNING": 30, "ERROR": 40}

FLUSH_SECONDS = 0.5  # a live viewer waits at most this long for a line of a quiet task
CHANNEL = "tern:logs:{execution_id}"
logger = logging.getLogger("tern.logs")

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
        self.last_flush = time.monotonic()

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
            due = len(self.pending) >= self.batch_size or time.monotonic() - self.last_flush >= FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        """One INSERT for the batch, then one PUBLISH for live viewers."""
        with self.lock:
            batch, self.pending = self.pending, []
            self.last_flush = time.monotonic()
        if batch:
            LogEntry.objects.bulk_create(batch)
            publish(self.execution_id, batch)


def log_now(execution_id: str, level: str, message: str, task_run_id: str | None = None, task_id: str = "") -> None:
    sink = LogSink(execution_id, task_run_id, task_id)
    sink.emit(level, message)
    sink.flush()


_redis = None


def publish(execution_id: str, entries: list[LogEntry]) -> None:
    """Send a batch to the execution's Redis channel; a viewer that missed it reads the database."""
    global _redis
    from flows_app import dispatch

    if not isinstance(dispatch.get(), dispatch.CeleryDispatcher):
        return  # in-process runs (`tern flow test`) have no Redis and no live viewers
    payload = json.dumps([
        {"taskRunId": e.task_run_id, "taskId": e.task_id, "attempt": e.attempt, "level": e.level,
         "message": e.message, "timestamp": e.timestamp.isoformat()} for e in entries
    ])
    try:
        if _redis is None:
            from orchestrator.embedded_redis import client

            _redis = client(settings.CELERY_BROKER_URL, timeout=2)
        _redis.publish(CHANNEL.format(execution_id=execution_id), payload)
    except Exception as exc:  # the database has the lines; live viewers only miss this batch
        logger.warning("could not publish logs of %s: %s", execution_id, exc)
