"""Task runs whose worker went silent: sent again to a live worker, as Kestra resubmits a dead worker's task.

A worker's death is not the task's failure: the attempt goes on elsewhere without spending a retry, and the
attempt records it (`resubmitted`: which worker, from when to when). A task that keeps killing its worker
(running out of memory, say) is resubmitted at most MAX_RESUBMITS times; after that each death counts as a
failed attempt, retried or failed by the task's policy. Nothing is sent into an execution that is being
killed or has ended: there the run ends as the kill or the end says.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from flows_app import events
from flows_app.engine.states import State
from flows_app.models import Execution, TaskRun

from .executions import ready_runs
from .flows import spec_of_revision, with_checksum
from .logs import log_now
from .snapshots import revision_checksum
from .taskruns import Attempt, record_attempt
from .transitions import RESUBMITTED, move_task_run


def reap_task_run(task_run_id: str) -> bool:
    """A RUNNING task run whose worker stopped heartbeating: resubmitted, or failed when it may not be.
    Holds the execution's row lock, so a late worker result cannot race it (and is fenced out after)."""
    with transaction.atomic():
        run = TaskRun.objects.filter(id=task_run_id).first()
        if run is None:
            return False
        execution = with_checksum(Execution.objects.select_for_update(of=("self",))).filter(id=run.execution_id).first()
        run.refresh_from_db()
        if execution is None or run.state != State.RUNNING or run.heartbeat_at is None:
            return False
        flow = spec_of_revision(execution.flow_revision_id, revision_checksum(execution))
        task = flow.task(run.task_id)
        worker = run.worker or "?"
        done = resubmissions(run)
        if execution.state in (State.RUNNING, State.PAUSED) and done < max_resubmits():
            _resubmit(run, flow, worker, done + 1)
            return True
        if done >= max_resubmits():
            why = (
                f"worker {worker} stopped answering while running '{run.task_id}', which was already sent "
                f"again {done} times (each time its worker died: does the task kill it, by running out of "
                f"memory say?); attempt {len(run.attempts)} counts as failed"
            )
        else:
            why = (
                f"worker {worker} stopped answering while running '{run.task_id}' in an execution that is "
                f"{execution.state}: it is not sent again"
            )
        log_now(run.execution_id, "ERROR", why, run.id, run.task_id)
        record_attempt(run, flow, task, Attempt(State.FAILED), advance=True)
    return True


def _resubmit(run: TaskRun, flow, worker: str, count: int) -> None:
    """RUNNING -> QUEUED, the open attempt marked RESUBMITTED with the dead worker's stint; sent again."""
    now = timezone.now()
    last = run.attempts[-1]
    stint = {"worker": worker, "startDate": last.get("startDate"), "endDate": now.isoformat()}
    attempts = [
        *run.attempts[:-1],
        {**last, "state": RESUBMITTED, "resubmitted": [*last.get("resubmitted", []), stint]},
    ]
    if not move_task_run(run, State.QUEUED, fenced=True, attempts=attempts, heartbeat_at=None, worker=""):
        return
    log_now(
        run.execution_id,
        "WARN",
        f"worker {worker} stopped answering while running '{run.task_id}': sent "
        f"again to another worker ({count} of at most {max_resubmits()}; attempt {len(run.attempts)} goes on, "
        "no retry spent)",
        run.id,
        run.task_id,
    )
    # Its parent is left out on purpose: a run pinned to the silent worker goes to any worker of its group.
    events.announce(events.TaskRunsReady(run.execution_id, ready_runs(flow, {run.id: run}, [run.id])))


def resubmissions(run: TaskRun) -> int:
    """How many times the run was sent again because its worker died, over all its attempts."""
    return sum(len(attempt.get("resubmitted", ())) for attempt in run.attempts)


def max_resubmits() -> int:
    return settings.TERN["MAX_RESUBMITS"]
