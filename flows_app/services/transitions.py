"""The one door for state changes: checked against the table of legal moves, written by compare-and-set,
and announced (the events reach their subscribers once the change commits)."""
from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from flows_app import events
from flows_app.engine.states import State, check_transition
from flows_app.models import Execution, TaskRun

from .identity import PROCESS


def _compare_and_set(row: models.Model, what: str, target: State, fields: dict[str, Any]) -> bool:
    """UPDATE ... WHERE id = row.id AND state = <the state we read>; False if someone moved it first."""
    check_transition(what, row.state, target)
    updated = type(row).objects.filter(pk=row.pk, state=row.state).update(state=target.value, **fields)
    if updated:
        row.state = target.value
        for key, value in fields.items():
            setattr(row, key, value)
    return updated == 1


def move_task_run(run: TaskRun, target: State, **fields: Any) -> bool:
    if target.is_terminal:
        fields.setdefault("ended_at", timezone.now())
    previous = run.state
    moved = _compare_and_set(run, f"task run '{run.task_id}'", target, fields)
    if moved:
        events.announce(events.TaskRunStateChanged(run.execution_id, run.id, run.task_id, target.value, previous))
    return moved


def claim_task_run(run: TaskRun) -> bool:
    """QUEUED -> RUNNING for exactly one worker; a duplicate or late message gets False."""
    now = timezone.now()
    fields: dict[str, Any] = {"attempts": [*run.attempts, {"state": State.RUNNING.value, "startDate": now.isoformat()}],
                              "heartbeat_at": now, "worker": PROCESS}
    if run.started_at is None:
        fields["started_at"] = now
    return move_task_run(run, State.RUNNING, **fields)


def move_execution(execution: Execution, target: State, **fields: Any) -> bool:
    now = timezone.now()
    if target == State.RUNNING and execution.started_at is None:
        fields.setdefault("started_at", now)
    if target.is_terminal:
        fields.setdefault("ended_at", now)
        fields.setdefault("wake_at", None)
    previous = execution.state
    moved = _compare_and_set(execution, f"execution {execution.id}", target, fields)
    if moved:
        events.announce(events.ExecutionStateChanged(execution.id, target.value, previous))
        if target.is_terminal:
            events.announce(events.ExecutionEnded(execution.id, target.value, dict(execution.outputs or {}),
                                                  execution.parent_id))
    return moved
