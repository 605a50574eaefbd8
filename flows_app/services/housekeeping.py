"""The scheduler's tick: work that no message asked for — due retries, lost messages, dead workers."""

from __future__ import annotations

import json
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from flows_app import events
from flows_app.engine.states import State
from flows_app.models import Execution, TaskRun

from .reaping import reap_task_run

ACTIVE = [State.CREATED, State.RUNNING, State.KILLING]
TICK_TASK = "tern.tick"


def tick() -> dict[str, int]:
    """1. reap task runs whose worker went silent; 2. advance executions with work due or nothing in
    flight; 3. send again task runs queued too long ago; 4. wake executions waiting for a concurrency slot
    that is free (their wake-up was lost). Every step is safe to repeat."""
    from .concurrency import wake_all_queues

    now = timezone.now()
    reaped = reap_dead_workers(now)
    due = list(Execution.objects.filter(state__in=ACTIVE, wake_at__lte=now).values_list("id", flat=True))
    stalled = list(_stalled_executions())
    for execution_id in dict.fromkeys(due + stalled):
        events.announce(events.WakeUpSet(execution_id))
    resent = _resend_lost_queued(now)
    woken = wake_all_queues()
    return {"reaped": reaped, "advanced": len(set(due + stalled)), "resent": resent, "unqueued": woken}


def reap_dead_workers(now) -> int:
    cutoff = now - timedelta(seconds=settings.TERN["HEARTBEAT_TIMEOUT"])
    dead = TaskRun.objects.filter(state=State.RUNNING, heartbeat_at__lt=cutoff).values_list("id", flat=True)
    return sum(1 for run_id in list(dead) if reap_task_run(run_id))


def _stalled_executions():
    """Running executions with nothing queued, retrying or held by a worker: an advance was lost."""
    in_flight = TaskRun.objects.filter(
        Q(state__in=[State.QUEUED, State.RETRYING]) | Q(state=State.RUNNING, heartbeat_at__isnull=False)
    ).values("execution_id")
    return (
        Execution.objects.filter(state__in=ACTIVE, wake_at__isnull=True)
        .exclude(id__in=in_flight)
        .values_list("id", flat=True)
    )


def _resend_lost_queued(now) -> int:
    from .executions import ready_runs
    from .flows import spec_of_revision
    from .snapshots import revision_checksum

    old = now - timedelta(seconds=settings.TERN["RESEND_AFTER_SECONDS"])
    lost = list(
        TaskRun.objects.filter(state=State.QUEUED, created_at__lt=old)
        .filter(execution__state__in=[State.RUNNING, State.PAUSED])  # never into a killed or ended one
        .select_related("execution")
    )
    for run in lost:
        flow = spec_of_revision(run.execution.flow_revision_id, revision_checksum(run.execution))
        # Its parent is left out on purpose: a run pinned to a worker that went silent goes to any worker
        # of its group, which then holds its WorkingDirectory (see workdirs.open_directory).
        events.announce(events.TaskRunsReady(run.execution_id, ready_runs(flow, {run.id: run}, [run.id])))
    return len(lost)


def ensure_tick_schedule() -> None:
    """The periodic `tick` as a django-celery-beat row (the scheduler reads schedules from the database)."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every, _ = IntervalSchedule.objects.get_or_create(
        every=settings.TERN["TICK_SECONDS"], period=IntervalSchedule.SECONDS
    )
    PeriodicTask.objects.update_or_create(
        name="tern housekeeping tick",
        defaults={"task": TICK_TASK, "interval": every, "args": json.dumps([]), "enabled": True},
    )
