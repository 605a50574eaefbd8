"""Live news over Redis: each stored batch of an execution's log lines, and each change of its state or of
one of its task runs, is published on its channel. Hints only: the database is the truth.

A viewer subscribes to `tern:logs:<execution id>` or `tern:execution:<execution id>`, then reads the
database, and reads it again at each message: it misses nothing and sees nothing twice. Messages leave from
a background thread (`Outbox`), so a worker's step never waits on Redis. `wait_for_end` is how an API call
answers when an execution ends; `follow_execution` and `follow_logs` feed the API's event streams.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable

from django.conf import settings

from flows_app.events import ExecutionStateChanged, LogLinesWritten, TaskRunStateChanged

CHANNEL = "tern:logs:{execution_id}"
STATE_CHANNEL = "tern:execution:{execution_id}"
logger = logging.getLogger("tern.live")
_redis = None


def redis():
    global _redis
    if _redis is None:
        from orchestrator.embedded_redis import client

        _redis = client(settings.CELERY_BROKER_URL, timeout=2)
    return _redis


class Outbox:
    """Messages to publish, sent in order by one daemon thread, pipelined: posting costs a queue put."""

    def __init__(self, limit: int = 10_000):
        self.messages: queue.Queue[tuple[str, str]] = queue.Queue(maxsize=limit)
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def post(self, channel: str, payload: str) -> None:
        self._start()
        try:
            self.messages.put_nowait((channel, payload))
        except queue.Full:  # Redis is gone or slow: viewers re-read the database anyway
            pass

    def _start(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        with self.lock:
            if self.thread is None or not self.thread.is_alive():  # also after a fork (a prefork worker)
                self.thread = threading.Thread(target=self._send_forever, name="tern-live", daemon=True)
                self.thread.start()

    def _send_forever(self) -> None:
        while True:
            batch = [self.messages.get()]
            while len(batch) < 500:
                try:
                    batch.append(self.messages.get_nowait())
                except queue.Empty:
                    break
            try:
                pipe = redis().pipeline(transaction=False)
                for channel, payload in batch:
                    pipe.publish(channel, payload)
                pipe.execute()
            except Exception as exc:  # live viewers miss these; the database has it all
                logger.warning("could not publish %d live messages: %s", len(batch), exc)
                time.sleep(0.5)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until what was posted has been handed to Redis (tests, and a process about to exit)."""
        deadline = time.monotonic() + timeout
        while not self.messages.empty() and time.monotonic() < deadline:
            time.sleep(0.01)


outbox = Outbox()


def publish(event: LogLinesWritten) -> None:
    """Log lines of an execution were stored (the Celery dispatcher's `logs_written`)."""
    payload = json.dumps(
        [
            {
                "taskRunId": line.task_run_id,
                "taskId": line.task_id,
                "attempt": line.attempt,
                "level": line.level,
                "message": line.message,
                "timestamp": line.timestamp.isoformat(),
            }
            for line in event.lines
        ]
    )
    outbox.post(CHANNEL.format(execution_id=event.execution_id), payload)


def publish_change(event: ExecutionStateChanged | TaskRunStateChanged) -> None:
    """An execution or a task run of it changed state (the Celery dispatcher's `changed`)."""
    what = f"{event.task_id}:{event.state}" if isinstance(event, TaskRunStateChanged) else event.state
    outbox.post(STATE_CHANNEL.format(execution_id=event.execution_id), what)


def wait_for_end(
    execution_id: str, timeout: float, read_state: Callable[[], str | None], recheck: float = 5.0
) -> str | None:
    """Block until the execution's state is terminal (or `timeout` passes); returns the last state read.

    Subscribes first, then reads the database, so an end between the two is not missed; re-reads every
    `recheck` seconds too, in case a message was lost (Redis restarted)."""
    from flows_app.engine.states import State

    deadline = time.monotonic() + timeout
    pubsub = _subscribe(STATE_CHANNEL.format(execution_id=execution_id))
    try:
        while True:
            state = read_state()
            remaining = deadline - time.monotonic()
            if state is None or State(state).is_terminal or remaining <= 0:
                return state
            pubsub = _wait(pubsub, min(remaining, recheck))
    finally:
        _close(pubsub)


def _subscribe(*channels: str):
    try:
        pubsub = redis().pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(*channels)
        return pubsub
    except Exception as exc:
        logger.warning("following %s without Redis (re-reading the database each second): %s", channels, exc)
        return None


def _wait(pubsub, seconds: float):
    """Until a message (then drain the ones behind it) or `seconds`; without Redis, a short sleep."""
    if pubsub is None:
        time.sleep(min(seconds, 1.0))
        return None
    try:
        if pubsub.get_message(timeout=seconds) is not None:
            while pubsub.get_message(timeout=0) is not None:
                pass
        return pubsub
    except Exception:
        _close(pubsub)
        return None


def _close(pubsub) -> None:
    if pubsub is not None:
        try:
            pubsub.close()
        except Exception:
            pass
