"""Starting, advancing and killing executions: the only writers of executions and task runs."""
from __future__ import annotations

import errno
from pathlib import Path
from typing import Any, Callable, Mapping

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from flows_app import dispatch
from flows_app.engine.actions import (
    CreateTaskRun,
    Plan,
    RequeueTaskRun,
    RestartTaskRun,
    SetExecutionState,
    SetTaskRunState,
)
from flows_app.engine.inputs import InputsError, coerce_inputs
from flows_app.engine.planner import plan
from flows_app.engine.states import State, check_transition
from flows_app.models import Execution, Flow, TaskRun, new_id
from flows_app.spec.model import FlowSpec
from orchestrator.celery import queue_for
from plugins_app.base import active
from plugins_app.registry import get_plugin

from . import workdirs
from .flows import spec_of, with_checksum
from .logs import log_now
from .snapshots import load_snapshot
from .storage import execution_parts, remove, storage
from .subflows import start_subflow, subflow_ended
from .transitions import move_execution, move_task_run


class FlowDisabled(Exception):
    pass


def start_execution(flow: Flow, inputs: Mapping[str, Any] | None = None, labels: Mapping[str, str] | None = None,
                    trigger: Mapping[str, Any] | None = None, parent: Execution | None = None,
                    parent_task_run_id: str = "", revision: int | None = None, local_files: bool = False) -> Execution:
    """Check the inputs against the flow's latest revision (or `revision`; InputsError names each bad one)
    and create the execution; it is advanced once the transaction commits.

    FILE inputs go to internal storage; the input's value becomes the file's URI. A path is read only
    from the uploads folder, or from anywhere with `local_files` (the local `tern flow test`)."""
    revision = flow.revisions.get(revision=revision or flow.revision)
    spec = spec_of(revision)
    if spec.disabled:
        raise FlowDisabled(f"flow {flow} is disabled")
    execution_id = new_id()
    folder = execution_parts(spec.namespace, spec.id, execution_id) + ["inputs"]
    try:
        values = coerce_inputs(spec.inputs, inputs or {}, store_file=_file_store(folder, local_files))
    except InputsError:
        remove(folder)
        raise
    with transaction.atomic():
        execution = Execution.objects.create(
            id=execution_id, flow=flow, flow_revision=revision,
            inputs=values, labels={**spec.labels, **(labels or {})}, trigger=dict(trigger) if trigger else None,
            parent=parent, parent_task_run_id=parent_task_run_id,
        )
        transaction.on_commit(lambda: dispatch.get().advance(execution.id))
    return execution


def _file_store(folder: list[str], local_files: bool) -> Callable[[str, Any], str]:
    """Put a FILE input (bytes, or a file's path) into internal storage; returns its URI."""
    uploads = (Path(settings.TERN["DATA_DIR"]) / "uploads").resolve()

    def store(input_id: str, value: Any) -> str:
        if isinstance(value, (bytes, bytearray)):
            return storage().put([*folder, input_id], input_id, bytes(value))
        path = Path(value).resolve()
        if not local_files and not path.is_relative_to(uploads):
            raise PermissionError(errno.EACCES, "only uploaded files are read")
        return storage().put([*folder, input_id], path.name, path)

    return store


def advance_execution(execution_id: str, first: Callable[[], None] | None = None) -> Plan | None:
    """Holds the execution's row lock while it plans and applies the next steps; sends work after commit.

    `first` runs under the lock before planning, in the same transaction: a worker records the end of
    its task run there, so recording and the next decision cost one commit, not two.
    """
    with transaction.atomic(savepoint=False):
        execution = with_checksum(Execution.objects.select_for_update(of=("self",))).filter(id=execution_id).first()
        if first is not None:
            first()
        if execution is None or State(execution.state).is_terminal:
            return None
        snapshot = load_snapshot(execution)
        runs: dict[str, Any] = {r.id: r for r in snapshot.runs}
        result = plan(snapshot)
        _apply(execution, runs, result)
        _release_directories(snapshot, runs, result)
        if execution.wake_at != result.wake_at and not State(execution.state).is_terminal:
            Execution.objects.filter(id=execution.id).update(wake_at=result.wake_at)
        batches, wake_at = batches_of(snapshot.flow, runs, result.to_dispatch), result.wake_at
        if batches:
            transaction.on_commit(lambda: dispatch.get().run_task_runs(execution_id, batches))
        if wake_at is not None:
            transaction.on_commit(lambda: dispatch.get().advance(execution_id, at=wake_at))
        if State(execution.state).is_terminal:
            transaction.on_commit(lambda: dispatch.get().execution_ended(execution_id))
    return result


def batches_of(flow: FlowSpec, runs: Mapping[str, Any], ids: list[str]) -> list[dispatch.Batch]:
    """Group the runs to start by parent and queue; a fan-in parent whose children all start now joins them."""
    groups: dict[tuple[str | None, str], list[str]] = {}
    for run_id in ids:
        run = runs[run_id]
        groups.setdefault((run.parent_id, _queue_of(flow, runs, run)), []).append(run_id)
    batches = []
    for (parent_id, queue), members in groups.items():
        batches.append(dispatch.Batch(tuple(members), queue, join=_joins(flow, runs, parent_id, members)))
    return batches


def _queue_of(flow: FlowSpec, runs: Mapping[str, Any], run: Any) -> str:
    """The workerGroup's queue; a WorkingDirectory's child goes to the worker holding the directory."""
    parent = runs.get(run.parent_id) if run.parent_id else None
    if parent is not None and workdirs.shares_directory(flow.task(parent.task_id).type):
        pinned = workdirs.pinned_queue(parent.id)
        if pinned:
            return pinned
    return queue_for(flow.task(run.task_id).worker_group)


def _joins(flow: FlowSpec, runs: Mapping[str, Any], parent_id: str | None, members: list[str]) -> bool:
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
                id=action.id, execution_id=execution.id, task_id=action.task_id, parent_id=action.parent_id,
                value=action.value, state=action.state.value, order=order, outputs=dict(action.outputs),
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
            move_task_run(restarted, State.RUNNING, outputs=dict(action.outputs), attempts=attempts,
                          next_attempt_at=None)
            runs[restarted.id] = restarted
            if action.subflow is not None:
                subflows.append((restarted, action.subflow))
        elif isinstance(action, RequeueTaskRun):
            _flush_new(new_runs)
            move_task_run(_row(runs, action.task_run_id, execution), State.QUEUED, next_attempt_at=None)
        elif isinstance(action, SetExecutionState):
            _flush_new(new_runs)
            fields = {"outputs": dict(action.outputs)} if action.outputs is not None else {}
            move_execution(execution, action.state, **fields)
            if action.state.is_terminal and execution.parent_id:
                transaction.on_commit(lambda: subflow_ended(execution.id))
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
        run = TaskRun(id=run.id, execution_id=execution.id, task_id=run.task_id, parent_id=run.parent_id,
                      state=run.state.value)
        runs[run_id] = run
    return run


def _flush_new(new_runs: list[TaskRun]) -> None:
    if new_runs:
        TaskRun.objects.bulk_create(new_runs)
        new_runs.clear()


def kill_execution(execution_id: str) -> bool:
    """Ask an execution to stop: queued work is dropped, running tasks are told to stop; ends KILLED."""
    with transaction.atomic():
        execution = Execution.objects.select_for_update().filter(id=execution_id).first()
        if execution is None or State(execution.state).is_terminal or execution.state == State.KILLING:
            return False
        move_execution(execution, State.KILLING)
        transaction.on_commit(lambda: dispatch.get().advance(execution_id))
    return True


class NotPaused(Exception):
    pass


def resume_execution(execution_id: str, inputs: Mapping[str, Any] | None = None) -> None:
    """Resume a PAUSED execution: its paused runs go on, with the values of their `onResume` inputs
    (InputsError names a bad one) stored as their output `onResume`. Holds the execution's row lock."""
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
        move_execution(execution, State.RUNNING)
        transaction.on_commit(lambda: dispatch.get().advance(execution_id))
