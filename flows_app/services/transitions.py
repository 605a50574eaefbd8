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

RESUBMITTED = "RESUBMITTED"  # an attempt whose worker died, sent again to another worker (Kestra's name)


def _compare_and_set(
    row: models.Model,
    what: str,
    target: State,
    fields: dict[str, Any],
    fence: dict[str, Any] | None = None,
    reopening: bool = False,
) -> bool:
    """UPDATE ... WHERE id = row.id AND state = <the state we read> [AND the fence]; False if someone moved
    it first."""
    check_transition(what, row.state, target, reopening)
    updated = type(row).objects.filter(pk=row.pk, state=row.state, **(fence or {})).update(state=target.value, **fields)
    if updated:
        row.state = target.value
        for key, value in fields.items():
            setattr(row, key, value)
    return updated == 1


def move_task_run(run: TaskRun, target: State, *, fenced: bool = False, **fields: Any) -> bool:
    """`fenced`: only if no worker claimed the run since `run` was read (a worker recording its attempt)."""
    if target.is_terminal:
        fields.setdefault("ended_at", timezone.now())
    previous = run.state
    fence = {"claim": run.claim} if fenced else None
    moved = _compare_and_set(run, f"task run '{run.task_id}'", target, fields, fence)
    if moved:
        events.announce(events.TaskRunStateChanged(run.execution_id, run.id, run.task_id, target.value, previous))
    return moved


def claim_task_run(run: TaskRun) -> bool:
    """QUEUED -> RUNNING for exactly one worker; a duplicate or late message gets False. The claim number
    goes up: from now on only this worker's heartbeat and result count (see `move_task_run(fenced=True)`).

    A new attempt starts, unless the last one was resubmitted (its worker died): it goes on here."""
    now = timezone.now()
    opened = {"state": State.RUNNING.value, "startDate": now.isoformat()}
    if run.attempts and run.attempts[-1].get("state") == RESUBMITTED:
        attempts = [*run.attempts[:-1], {**run.attempts[-1], **opened}]
    else:
        attempts = [*run.attempts, opened]
    fields: dict[str, Any] = {"attempts": attempts, "heartbeat_at": now, "worker": PROCESS, "claim": run.claim + 1}
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
    fields["histories"] = [*(execution.histories or []), {"state": target.value, "date": now.isoformat()}]
    moved = _compare_and_set(execution, f"execution {execution.id}", target, fields)
    if moved:
        events.announce(events.ExecutionStateChanged(execution.id, target.value, previous))
        if target.is_terminal:
            outputs = dict(execution.outputs or {})
            ended = events.ExecutionEnded(
                execution.id, target.value, outputs, execution.parent_id, execution.flow_id, execution.trigger
            )
            events.announce(ended)
    return moved


def reopen_task_run(run: TaskRun, target: State, **fields: Any) -> bool:
    """An ended run runs again (RUNNING, RETRYING) or is given another end by hand (a restart, a replay,
    a changed state: services/restarts.py)."""
    if target.is_terminal:
        fields.setdefault("ended_at", timezone.now())
    else:
        fields.setdefault("ended_at", None)
    previous = run.state
    moved = _compare_and_set(run, f"task run '{run.task_id}'", target, fields, reopening=True)
    if moved:
        events.announce(events.TaskRunStateChanged(run.execution_id, run.id, run.task_id, target.value, previous))
    return moved


def reopen_execution(execution: Execution, target: State = State.RUNNING) -> bool:
    """An ended execution runs again: RESTARTED, then RUNNING (or QUEUED, to wait for a slot of its flow's
    concurrency limit), in its histories (Kestra's names)."""
    moment = timezone.now()
    now = moment.isoformat()
    histories = [
        *(execution.histories or []),
        {"state": "RESTARTED", "date": now},
        {"state": target.value, "date": now},
    ]
    previous = execution.state
    fields: dict[str, Any] = {"histories": histories, "ended_at": None, "wake_at": None}
    if target == State.QUEUED:
        fields["queued_at"] = moment
    moved = _compare_and_set(execution, f"execution {execution.id}", target, fields, reopening=True)
    if moved:
        events.announce(events.ExecutionStateChanged(execution.id, target.value, previous))
    return moved
