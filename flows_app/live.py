"""Live logs over Redis: each stored batch of an execution's log lines is published on its channel.

A viewer subscribes to `tern:logs:<execution id>`; one that connects late reads the database first.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings

from flows_app.events import LogLinesWritten

CHANNEL = "tern:logs:{execution_id}"
logger = logging.getLogger("tern.live")
_redis = None


def publish(event: LogLinesWritten) -> None:
    """Send a batch to the execution's Redis channel; a viewer that missed it reads the database."""
    global _redis
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
    try:
        if _redis is None:
            from orchestrator.embedded_redis import client

            _redis = client(settings.CELERY_BROKER_URL, timeout=2)
        _redis.publish(CHANNEL.format(execution_id=event.execution_id), payload)
    except Exception as exc:  # the database has the lines; live viewers only miss this batch
        logger.warning("could not publish logs of %s: %s", event.execution_id, exc)
