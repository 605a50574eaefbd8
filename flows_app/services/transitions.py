"""The one door for state changes: checked against the table of legal moves, written by compare-and-set."""
from __future__ import annotations

from typing import Any

import os
import socket

from django.db import models
from django.utils import timezone

from flows_app.engine.states import State, check_transition
from flows_app.models import Execution, TaskRun


WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}"


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
    return _compare_and_set(run, f"task run '{run.task_id}'", target, fields)


def claim_task_run(run: TaskRun) -> bool:
    """QUEUED -> RUNNING for exactly one worker; a duplicate or late message gets False."""
    now = timezone.now()
    fields: dict[str, Any] = {"attempts": [*run.attempts, {"state": State.RUNNING.value, "startDate": now.isoformat()}],
                              "heartbeat_at": now, "worker": WORKER_NAME}
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
    return _compare_and_set(execution, f"execution {execution.id}", target, fields)
