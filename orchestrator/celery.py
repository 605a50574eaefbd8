"""The Celery app: Redis broker and result backend, JSON only, late acks; configured from Django settings.

Queues: `tern` carries advances and task runs; a task with `workerGroup: {key: gpu}` goes to `tern.gpu`,
served by `tern worker --queues tern.gpu`.
"""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

app = Celery("tern")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["flows_app"])

DEFAULT_QUEUE = "tern"


def queue_for(worker_group: str | None) -> str:
    return f"{DEFAULT_QUEUE}.{worker_group}" if worker_group else DEFAULT_QUEUE
