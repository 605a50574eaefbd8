"""The one door for state changes: checked against the table of legal moves, written by compare-and-set."""
from __future__ import annotations

from typing import Any

from django.utils import timezone

from flows_app.engine.states import State, check_transition
from flows_app.models import Execution, TaskRun


def move_task_run(run: TaskRun, target: State, **fields: Any) -> bool:
    """Move `run` to `target` only if its row is still in the state we read; False if someone else moved it."""
    check_transition(f"task run '{run.task_id}'", run.state, target)
    if target.is_terminal and "ended_at" not in fields:
        fields["ended_at"] = timezone.now()
    updated = TaskRun.objects.filter(id=run.id, state=run.state).update(state=target.value, **fields)
    if updated:
        run.state = target.value
        for key, value in fields.items():
            setattr(run, key, value)
    return updated == 1


def claim_task_run(run: TaskRun) -> bool:
    """QUEUED -> RUNNING for exactly one worker; a duplicate or late message gets False."""
    now = timezone.now()
    attempts = list(run.attempts) + [{"state": State.RUNNING.value, "startDate": now.isoformat()}]
    fields: dict[str, Any] = {"attempts": attempts}
    if run.started_at is None:
        fields["started_at"] = now
    return move_task_run(run, State.RUNNING, **fields)


def move_execution(execution: Execution, target: State, **fields: Any) -> bool:
    check_transition(f"execution {execution.id}", execution.state, target)
    now = timezone.now()
    if target == State.RUNNING and execution.started_at is None:
        fields.setdefault("started_at", now)
    if target.is_terminal:
        fields.setdefault("ended_at", now)
        fields.setdefault("wake_at", None)
    updated = Execution.objects.filter(id=execution.id, state=execution.state).update(state=target.value, **fields)
    if updated:
        execution.state = target.value
        for key, value in fields.items():
            setattr(execution, key, value)
    return updated == 1
