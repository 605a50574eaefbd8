"""The Celery app: Redis broker and result backend, JSON only, late acks; configured from Django settings.

Queues: `tern` carries advances and task runs; a task with `workerGroup: {key: gpu}` goes to `tern.gpu`,
served by `tern worker --queues tern.gpu`. Each worker also serves a queue of its own,
`tern.direct.<worker name>`, for work that must run where earlier work left files (WorkingDirectory).
"""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import celeryd_after_setup, task_postrun

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

# This worker's own queue (None outside a worker): set as the worker starts, before its pool forks.
worker_queue: str | None = None


@celeryd_after_setup.connect
def _serve_own_queue(sender, instance, **kwargs) -> None:
    """`sender` is the worker's node name (`w1@host`), unique among running workers."""
    global worker_queue
    from flows_app.services import identity

    identity.node = sender
    worker_queue = direct_queue(sender)
    instance.app.amqp.queues.select_add(worker_queue)


def queue_for(worker_group: str | None) -> str:
    return f"{DEFAULT_QUEUE}.{worker_group}" if worker_group else DEFAULT_QUEUE


def direct_queue(worker: str) -> str:
    """The queue only the worker of that node name serves."""
    return f"{DEFAULT_QUEUE}.direct.{worker}"
