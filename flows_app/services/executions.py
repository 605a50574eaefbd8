"""Advancing, killing and resuming executions: the only writers of executions and task runs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from flows_app import events
from flows_app.engine.actions import (
    CreateTaskRun,
    DiscardTaskRuns,
    Plan,
    RequeueTaskRun,
    RestartTaskRun,
    SetExecutionOutputs,
    SetExecutionState,
    SetTaskRunState,
)
from flows_app.engine.inputs import coerce_inputs
from flows_app.engine.masking import mask_value, secret_values
from flows_app.engine.planner import plan
from flows_app.engine.states import State, check_transition
from flows_app.events import ReadyRun
from flows_app.models import Execution, TaskRun
from flows_app.spec.model import FlowSpec
from plugins_app.base import active
from plugins_app.registry import get_plugin

from . import concurrency, workdirs
from .flows import with_checksum
from .logs import log_now
from .snapshots import load_snapshot
from .starting import FlowDisabled, start_execution  # noqa: F401  (their home before; callers still import them here)
from .subflows import start_subflow
from .transitions import move_execution, move_task_run

Keep = Callable[[ReadyRun], bool]


@dataclass(frozen=True)
class Advanced:
    plan: Plan
    kept: ReadyRun | None = None  # the one ready run the caller asked to run itself (see `keep`)


def advance_execution(
    execution_id: str, first: Callable[[], None] | None = None, keep: Keep | None = None
) -> Advanced | None:
    """Holds the execution's row lock while it plans and applies the next steps; announces the work.

    `first` runs under the lock before planning, in the same transaction: a worker records the end of
    its task run there, so recording and the next decision cost one commit, not two. `keep`: when the
    next step is exactly one task run and `keep` accepts it, it is returned for the caller to run at once
    (a worker that keeps the next task of a sequence saves a hop); it is still announced, as kept.
    """
    with transaction.atomic(savepoint=False):
        execution = with_checksum(Execution.objects.select_for_update(of=("self",))).filter(id=execution_id).first()
        if first is not None:
            first()
        if execution is None or State(execution.state).is_terminal:
            return None
        snapshot = load_snapshot(execution)
        if execution.state in (State.CREATED, State.QUEUED) and not _passes_gate(execution, snapshot.flow):
            return None
        runs: dict[str, Any] = {r.id: r for r in snapshot.runs}
        result = plan(snapshot)
        _apply(execution, runs, result)
        _release_directories(snapshot, runs, result)
        if execution.wake_at != result.wake_at and not State(execution.state).is_terminal:
            Execution.objects.filter(id=execution.id).update(wake_at=result.wake_at)
        ready = ready_runs(snapshot.flow, runs, result.to_dispatch)
        kept = ready[0] if keep is not None and len(ready) == 1 and keep(ready[0]) else None
        if ready:
            events.announce(events.TaskRunsReady(execution_id, ready, kept.task_run_id if kept else None))
        if result.wake_at is not None:
            events.announce(events.WakeUpSet(execution_id, result.wake_at))
    return Advanced(result, kept)


def _passes_gate(execution: Execution, flow: FlowSpec) -> bool:
    """Must hold the execution's row lock. The concurrency gate of a CREATED or QUEUED execution: True when
    it may start (or its flow has no limit); otherwise it waits QUEUED or ends CANCELLED or FAILED, said in
    its log."""
    verdict = concurrency.admit(execution, flow)
    if verdict is None or verdict.admitted:
        return True
    if verdict.state == State.QUEUED and execution.state == State.QUEUED:
        return False  # still waiting: nothing to say again
    assert flow.concurrency is not None
    fields = {"queued_at": timezone.now()} if verdict.state == State.QUEUED else {}
    move_execution(execution, verdict.state, **fields)
    level = "INFO" if verdict.state == State.QUEUED else "ERROR"
    log_now(execution.id, level, verdict.message(flow.concurrency.limit))
    return False


def ready_runs(flow: FlowSpec, runs: Mapping[str, Any], ids: list[str]) -> tuple[ReadyRun, ...]:
    """The runs to start, with what routing needs to know of each (the dispatcher decides the queues)."""
    siblings: dict[str | None, list[str]] = {}
    for run_id in ids:
        siblings.setdefault(runs[run_id].parent_id, []).append(run_id)
    ready = []
    for parent_id, members in siblings.items():
        parent = runs.get(parent_id) if parent_id else None
        joined = _joins(flow, runs, parent_id, members)
        pinned = workdirs.holder(flow, parent) if parent is not None else None
        for run_id in members:
            run = runs[run_id]
            ready.append(ReadyRun(run_id, run.task_id, parent_id, flow.task(run.task_id).worker_group, pinned, joined))
    return tuple(ready)


def _joins(flow: FlowSpec, runs: Mapping[str, Any], parent_id: str | None, members: list[str]) -> bool:
    """All the children of a fan-in parent start now: nothing can happen before the last has ended."""
    if parent_id is None or len(members) < 2:
        return False
    parent = flow.task(runs[parent_id].task_id)
    if not getattr(get_plugin(parent.type), "fan_in", False):
        return False
    siblings = [r for r in runs.values() if r.parent_id == parent_id]
    return len(siblings) == len(members) == len(active(parent.branches.get("tasks", ())))


def _apply(execution: Execution, runs: dict[str, Any], result: Plan) -> None:
    """Carry out the planner's actions, in order, each state change through the one door.

    `runs` maps ids to the runs read for planning (RunState) and gains the TaskRun rows created here.
    """
    now = timezone.now()
    order = max((r.order for r in runs.values()), default=-1) + 1
    new_runs: list[TaskRun] = []
    subflows: list[tuple[TaskRun, Any]] = []  # runs whose Subflow request is carried out once they exist
    errors: list[tuple[str | None, str, str]] = []  # (run id, task id, message) logged at ERROR
    for action in result.actions:
        if isinstance(action, CreateTaskRun):
            check_transition(f"task run '{action.task_id}'", State.CREATED, action.state)
            started = action.state in (State.RUNNING, State.PAUSED) or action.state.is_terminal
            attempt = {"state": action.state.value, "startDate": now.isoformat()}
            if action.state.is_terminal:  # a flowable that ended as it started (a Switch with no case)
                attempt["endDate"] = now.isoformat()
            run = TaskRun(
                id=action.id,
                execution_id=execution.id,
                task_id=action.task_id,
                parent_id=action.parent_id,
                value=action.value,
                state=action.state.value,
                order=order,
                outputs=dict(action.outputs),
                attempts=[attempt] if started else [],
                started_at=now if started or action.state.is_terminal else None,
                ended_at=now if action.state.is_terminal else None,
                next_attempt_at=action.wake_at,
            )
            order += 1
            runs[run.id] = run
            new_runs.append(run)
            if action.subflow is not None:
                subflows.append((run, action.subflow))
            if action.message:
                errors.append((run.id, run.task_id, action.message))
        elif isinstance(action, SetTaskRunState):
            _flush_new(new_runs)
            run = _row(runs, action.task_run_id, execution)
            ended = _end_attempt(run.id, action.state, now) if action.state.is_terminal else {}
            move_task_run(run, action.state, next_attempt_at=action.next_attempt_at, **ended)
            if action.message:
                errors.append((run.id, run.task_id, action.message))
        elif isinstance(action, RestartTaskRun):
            _flush_new(new_runs)
            restarted = TaskRun.objects.get(id=action.task_run_id)
            attempts = [*restarted.attempts, {"state": State.RUNNING.value, "startDate": now.isoformat()}]
            move_task_run(
                restarted, State.RUNNING, outputs=dict(action.outputs), attempts=attempts, next_attempt_at=None
            )
            runs[restarted.id] = restarted
            if action.subflow is not None:
                subflows.append((restarted, action.subflow))
        elif isinstance(action, RequeueTaskRun):
            _flush_new(new_runs)
            move_task_run(_row(runs, action.task_run_id, execution), State.QUEUED, next_attempt_at=None)
        elif isinstance(action, DiscardTaskRuns):  # ended runs only; their logs stay
            _flush_new(new_runs)
            TaskRun.objects.filter(execution_id=execution.id, id__in=action.task_run_ids).delete()
        elif isinstance(action, SetExecutionState):
            _flush_new(new_runs)
            fields = {"outputs": _masked(action.outputs)} if action.outputs is not None else {}
            move_execution(execution, action.state, **fields)
            if action.message:
                errors.append((None, "", action.message))
        elif isinstance(action, SetExecutionOutputs):  # no state change: not through the door
            execution.outputs = _masked(action.outputs)
            Execution.objects.filter(id=execution.id).update(outputs=execution.outputs)
            if action.message:
                errors.append((None, "", action.message))
    _flush_new(new_runs)
    for run, request in subflows:
        start_subflow(execution, run, request)
    for run_id, task_id, message in errors:
        log_now(execution.id, "ERROR", message, run_id, task_id)


def _end_attempt(run_id: str, state: State, now) -> dict[str, Any]:
    """A run the planner ends (a flowable, or a queued run killed): its open attempt ends with it."""
    attempts = TaskRun.objects.filter(id=run_id).values_list("attempts", flat=True).first() or []
    if not attempts or "endDate" in attempts[-1]:
        return {}
    return {"attempts": [*attempts[:-1], {**attempts[-1], "state": state.value, "endDate": now.isoformat()}]}


def _release_directories(snapshot, runs: Mapping[str, Any], result: Plan) -> None:
    """WorkingDirectories that ended: their shared directory goes (from this worker, which ran the last child)."""
    for action in result.actions:
        if isinstance(action, SetTaskRunState) and action.state.is_terminal:
            task = snapshot.flow.task(runs[action.task_run_id].task_id)
            if workdirs.shares_directory(task.type) and action.task_run_id in snapshot.run_ids():
                workdirs.release(snapshot, snapshot.run(action.task_run_id), action.state)


def _row(runs: dict[str, Any], run_id: str, execution: Execution) -> TaskRun:
    """The TaskRun row to move: a created one, or a stand-in carrying what compare-and-set needs."""
    run = runs[run_id]
    if not isinstance(run, TaskRun):
        run = TaskRun(
            id=run.id, execution_id=execution.id, task_id=run.task_id, parent_id=run.parent_id, state=run.state.value
        )
        runs[run_id] = run
    return run


def _flush_new(new_runs: list[TaskRun]) -> None:
    """Insert the runs created so far (one query), each announced as a move from CREATED to its first state."""
    if new_runs:
        TaskRun.objects.bulk_create(new_runs)
        for run in new_runs:
            events.announce(
                events.TaskRunStateChanged(run.execution_id, run.id, run.task_id, run.state, State.CREATED.value)
            )
        new_runs.clear()


def kill_execution(execution_id: str) -> bool:
    """Ask an execution to stop: queued work is dropped, running tasks are told to stop; ends KILLED. One
    that waits for a slot of its flow's concurrency limit (QUEUED, or CREATED before the gate) never ran:
    it ends KILLED at once, without ever holding a slot."""
    with transaction.atomic():
        execution = with_checksum(Execution.objects.select_for_update(of=("self",))).filter(id=execution_id).first()
        if execution is None or State(execution.state).is_terminal or execution.state == State.KILLING:
            return False
        if execution.state == State.QUEUED or (
            execution.state == State.CREATED and load_snapshot(execution).flow.concurrency is not None
        ):
            move_execution(execution, State.KILLED, held=False)
            return True
        move_execution(execution, State.KILLING, held=False)
        events.announce(events.WakeUpSet(execution_id))
    return True


class NotPaused(Exception):
    pass


class NotRunning(Exception):
    pass


def pause_execution(execution_id: str) -> None:
    """Pause a running execution by hand (Kestra's pause): the task runs under way finish, nothing new
    starts and no timer fires until `resume_execution`; a kill still works."""
    with transaction.atomic():
        execution = with_checksum(Execution.objects.select_for_update(of=("self",))).filter(id=execution_id).first()
        if execution is None or execution.state not in (State.CREATED, State.RUNNING):
            raise NotRunning(f"execution {execution_id} is not running ({execution.state if execution else 'gone'})")
        if execution.state == State.CREATED and load_snapshot(execution).flow.concurrency is not None:
            # a paused execution holds a slot of its flow: one that has not passed the gate may not take one
            raise NotRunning(f"execution {execution_id} has not started: its flow limits how many run at once")
        move_execution(execution, State.PAUSED, held=True)


def resume_execution(execution_id: str, inputs: Mapping[str, Any] | None = None) -> None:
    """Resume a PAUSED execution: its paused runs go on, with the values of their `onResume` inputs
    (InputsError names a bad one) stored as their output `onResume`, and so does an execution paused by
    hand (`pause_execution`). Holds the execution's row lock."""
    from flows_app.spec.errors import ErrorCollector
    from flows_app.spec.inputs import parse_inputs

    with transaction.atomic():
        execution = with_checksum(Execution.objects.select_for_update(of=("self",))).filter(id=execution_id).first()
        if execution is None or execution.state != State.PAUSED:
            raise NotPaused(f"execution {execution_id} is not paused")
        flow = load_snapshot(execution).flow
        for run in TaskRun.objects.filter(execution_id=execution_id, state=State.PAUSED):
            declared = flow.task(run.task_id).properties.get("onResume") or []
            values = coerce_inputs(parse_inputs(declared, ("onResume",), ErrorCollector()), inputs or {})
            outputs = {**run.outputs, "onResume": values} if declared else run.outputs
            move_task_run(run, State.RUNNING, outputs=outputs, next_attempt_at=None)
        move_execution(execution, State.RUNNING, held=False)
        events.announce(events.WakeUpSet(execution_id))


def _masked(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """A flow's outputs as stored: no secret value in clear (they are rendered templates)."""
    return mask_value(dict(outputs), secret_values())
