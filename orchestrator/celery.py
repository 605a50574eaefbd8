"""The Celery app: Redis broker and result backend, JSON only, late acks; configured from Django settings.

Queues: `tern` carries advances and task runs; a task with `workerGroup: {key: gpu}` goes to `tern.gpu`,
served by `tern worker --queues tern.gpu`.
"""
from __future__ import annotations

import os

from celery import Celery
from celery.signals import task_postrun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

app = Celery("tern")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery's Django fixup closes every database connection after every task unless told to reuse them;
# we keep them and let Django drop the old or broken ones after each task instead (CONN_MAX_AGE).
app.conf.CELERY_DB_REUSE_MAX = 1_000_000
app.autodiscover_tasks(["flows_app"])


@task_postrun.connect
def _close_old_connections(**kwargs) -> None:
    from django.db import close_old_connections

    close_old_connections()

DEFAULT_QUEUE = "tern"


def queue_for(worker_group: str | None) -> str:
    return f"{DEFAULT_QUEUE}.{worker_group}" if worker_group else DEFAULT_QUEUE
