"""An operator's second chances: restart an ended execution from its failed task runs, give a task run
another end state by hand, replay an execution from a chosen task run into a new one.

Each reopens part of what ended, then lets the planner go on as if that part had not run yet:
1. the anchors (the runs to go again from) are found;
2. the flowables around them, and the execution, run again (RUNNING);
3. what their failure set off is cleared: the `errors` and `finally` runs of those flowables and of the flow,
   and its `afterExecution` runs (their logs stay);
4. a failed runnable (or Subflow) anchor waits for a new attempt, its attempts kept; a flowable with
   children is cleared whole and started afresh by its parent (a WorkingDirectory opens a new directory);
5. the execution is advanced.
Holds the execution's row lock throughout.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from flows_app import events
from flows_app.engine.children import flowable_of, is_flowable
from flows_app.engine.outcome import RECOVERY_BRANCHES
from flows_app.engine.snapshot import ExecutionSnapshot, RunState
from flows_app.engine.states import TERMINAL, State
from flows_app.models import Execution, TaskRun, new_id

from . import concurrency
from .flows import with_checksum
from .snapshots import load_snapshot
from .transitions import reopen_execution, reopen_task_run

RESTARTABLE = (State.FAILED, State.KILLED)
SETTABLE = (State.SUCCESS, State.WARNING, State.FAILED)


class CannotReopen(Exception):
    """The execution or task run is not in a state this can be done from; the message says why."""


def _locked(execution_id: str) -> Execution:
    execution = (
        with_checksum(Execution.objects.select_for_update(of=("self",)).select_related("flow"))
        .filter(id=execution_id)
        .first()
    )
    if execution is None:
        raise CannotReopen(f"execution {execution_id} not found")
    return execution


def restart_execution(execution_id: str) -> Execution:
    """Run a FAILED or KILLED execution again from its failed task runs (Kestra's restart: the same
    execution, a new attempt of each failed task)."""
    with transaction.atomic():
        execution = _locked(execution_id)
        if execution.state not in RESTARTABLE:
            raise CannotReopen(f"execution {execution_id} is {execution.state}: only a FAILED or KILLED one restarts")
        snapshot = load_snapshot(execution)
        anchors = _failed_anchors(snapshot)
        if not anchors:
            raise CannotReopen(f"execution {execution_id} has no failed task run to restart from")
        _reopen(execution, snapshot, anchors, _gate(execution, snapshot))
        for anchor in anchors:
            _go_again(snapshot, anchor, execution)
        _advance(execution)
    return execution


def set_task_run_state(execution_id: str, task_run_id: str, state: State) -> Execution:
    """Give an ended task run of an ended execution another end state (SUCCESS, WARNING, FAILED); the
    execution goes on from there (Kestra's "change state")."""
    if state not in SETTABLE:
        raise CannotReopen(f"a task run's state can be set to {', '.join(s.value for s in SETTABLE)}, not {state}")
    with transaction.atomic():
        execution = _locked(execution_id)
        if not State(execution.state).is_terminal:
            raise CannotReopen(f"execution {execution_id} is {execution.state}: set a task run's state once it ended")
        snapshot = load_snapshot(execution)
        if task_run_id not in snapshot.run_ids():
            raise CannotReopen(f"execution {execution_id} has no task run {task_run_id}")
        anchor = snapshot.run(task_run_id)
        if anchor.state not in TERMINAL - {State.SKIPPED} or anchor.state == state:
            raise CannotReopen(f"task run {task_run_id} is {anchor.state}: cannot set it to {state}")
        _reopen(execution, snapshot, [anchor], _gate(execution, snapshot))
        row = TaskRun.objects.get(id=anchor.id)
        now = timezone.now().isoformat()
        attempts = [*row.attempts, {"state": state.value, "startDate": now, "endDate": now, "manual": True}]
        reopen_task_run(row, state, attempts=attempts)
        _advance(execution)
    return execution


def replay_execution(execution_id: str, task_run_id: str | None = None) -> Execution:
    """A new execution of the same flow revision, inputs and labels: from the start, or from `task_run_id`,
    the runs that ended before it copied (with their outputs) and the rest run anew."""
    with transaction.atomic():
        source = _locked(execution_id)
        if not State(source.state).is_terminal:
            raise CannotReopen(f"execution {execution_id} is {source.state}: replay it once it ended")
        snapshot = load_snapshot(source)
        copied: list[RunState] = []
        if task_run_id is not None:
            if task_run_id not in snapshot.run_ids():
                raise CannotReopen(f"execution {execution_id} has no task run {task_run_id}")
            anchor = _outermost_directory(snapshot, snapshot.run(task_run_id))
            copied = _before(snapshot, anchor)
        replay = _copy_execution(source, snapshot, copied)
        events.announce(events.ExecutionCreated(replay.id, source.flow.namespace, source.flow.flow_id, None))
    return replay


# ---- the steps ------------------------------------------------------------------------------------


def _failed_anchors(snapshot: ExecutionSnapshot) -> list[RunState]:
    """The failed runs with no failed run below them, outside the recovery branches their failure started
    (a failed `errors` handler is cleared, not restarted)."""
    failed = [r for r in snapshot.runs if r.state in RESTARTABLE]
    anchors = [r for r in failed if not any(c.state in RESTARTABLE for c in snapshot.children(r.id))]
    anchors = [r for r in anchors if not _in_recovery(snapshot, r)]
    return [_outermost_directory(snapshot, r) for r in _distinct(anchors)]


def _distinct(runs: Iterable[RunState]) -> list[RunState]:
    seen: dict[str, RunState] = {}
    for run in runs:
        seen.setdefault(run.id, run)
    return list(seen.values())


def _in_recovery(snapshot: ExecutionSnapshot, run: RunState) -> bool:
    for current in [run, *_ancestors(snapshot, run)]:
        if current.task_id in _recovery_ids(snapshot, current.parent_id):
            return True
    return False


def _recovery_ids(snapshot: ExecutionSnapshot, parent_id: str | None) -> set[str]:
    """The task ids of the recovery branches of a flowable run (None: of the flow itself)."""
    flow = snapshot.flow
    if parent_id is None:
        return {t.id for t in (*flow.errors, *flow.finally_tasks, *flow.after_execution)}
    task = flow.task(snapshot.run(parent_id).task_id)
    return {child.id for name in RECOVERY_BRANCHES for child in task.branches.get(name, ())}


def _ancestors(snapshot: ExecutionSnapshot, run: RunState) -> list[RunState]:
    found = []
    while run.parent_id is not None:
        run = snapshot.run(run.parent_id)
        found.append(run)
    return found


def _outermost_directory(snapshot: ExecutionSnapshot, run: RunState) -> RunState:
    """Inside a WorkingDirectory, the whole directory goes again: its files are gone with its worker's."""
    for ancestor in reversed(_ancestors(snapshot, run)):
        if getattr(flowable_of(snapshot.flow.task(ancestor.task_id)), "shares_directory", False):
            return ancestor
    return run


def _gate(execution: Execution, snapshot: ExecutionSnapshot) -> State:
    """Step 1b: a restart passes the flow's concurrency gate like a start: beyond the limit it waits QUEUED
    (behavior QUEUE) or is refused (CANCEL, FAIL), so restarting cannot run more than the limit."""
    verdict = concurrency.admit(execution, snapshot.flow)
    if verdict is None or verdict.admitted:
        return State.RUNNING
    if verdict.state == State.QUEUED:
        return State.QUEUED
    spec = snapshot.flow.concurrency
    assert spec is not None
    raise CannotReopen(
        f"execution {execution.id} cannot run again now: {verdict.running} execution(s) of its flow run, its "
        f"concurrency limit is {spec.limit} and its behavior {spec.behavior}"
    )


def _reopen(execution: Execution, snapshot: ExecutionSnapshot, anchors: list[RunState], target: State) -> None:
    """Steps 2 and 3: the flowables around the anchors and the execution run again (the execution RUNNING, or
    QUEUED for a slot); what their failure set off is deleted (its task runs; their logs stay)."""
    scopes: dict[str | None, RunState | None] = {None: None}
    for anchor in anchors:
        for ancestor in _ancestors(snapshot, anchor):
            scopes[ancestor.id] = ancestor
    keep = {a.id for a in anchors} | {s.id for s in scopes.values() if s is not None}
    cleared = [
        r.id
        for scope_id in scopes
        for r in snapshot.children(scope_id)
        if r.task_id in _recovery_ids(snapshot, scope_id) and r.id not in keep
    ]
    TaskRun.objects.filter(execution_id=execution.id, id__in=cleared).delete()  # their children cascade
    for scope in scopes.values():
        if scope is not None and scope.state.is_terminal:
            reopen_task_run(TaskRun.objects.get(id=scope.id), State.RUNNING)
    if State(execution.state).is_terminal:
        reopen_execution(execution, target)


def _go_again(snapshot: ExecutionSnapshot, anchor: RunState, execution: Execution) -> None:
    """Step 4."""
    task = snapshot.flow.task(anchor.task_id)
    if is_flowable(snapshot, anchor) and flowable_of(task).child_fields:
        TaskRun.objects.filter(execution_id=execution.id, id=anchor.id).delete()  # its parent creates it anew
        return
    reopen_task_run(TaskRun.objects.get(id=anchor.id), State.RETRYING, next_attempt_at=timezone.now())


def _advance(execution: Execution) -> None:
    """Step 5: a new generation of the execution for every process's cache of ended runs (its histories
    grew), and a wake-up now."""
    events.announce(events.WakeUpSet(execution.id))


def _before(snapshot: ExecutionSnapshot, anchor: RunState) -> list[RunState]:
    """What a replay from `anchor` keeps: the runs created before it, but not the recovery its failure set
    off, nor anything under it; the flowables around it run again."""
    ancestors = {a.id for a in _ancestors(snapshot, anchor)}
    kept = []
    for run in snapshot.runs:
        if run.id in ancestors:
            kept.append(run.evolve(state=State.RUNNING))
        elif run.order < anchor.order and not _under(snapshot, run, anchor) and not _in_recovery(snapshot, run):
            kept.append(run)
    return kept


def _under(snapshot: ExecutionSnapshot, run: RunState, anchor: RunState) -> bool:
    return any(a.id == anchor.id for a in _ancestors(snapshot, run))


def _copy_execution(source: Execution, snapshot: ExecutionSnapshot, runs: list[RunState]) -> Execution:
    now = timezone.now()
    replay = Execution.objects.create(
        id=new_id(),
        flow=source.flow,
        flow_revision_id=source.flow_revision_id,
        inputs=source.inputs,
        labels={**(source.labels or {})},
        trigger=source.trigger,
        histories=[{"state": State.CREATED.value, "date": now.isoformat()}],
    )
    replay.labels["system.correlationId"] = replay.id  # a replay is a root of its own
    Execution.objects.filter(id=replay.id).update(labels=replay.labels)
    ids = {run.id: new_id() for run in runs}
    rows = TaskRun.objects.in_bulk([run.id for run in runs])
    TaskRun.objects.bulk_create(
        [_copied(rows[run.id], run, ids, replay) for run in sorted(runs, key=lambda r: r.order)]
    )
    return replay


def _copied(row: TaskRun, run: RunState, ids: dict[str, str], replay: Execution) -> TaskRun:
    fields: dict[str, Any] = {
        "id": ids[row.id],
        "execution": replay,
        "task_id": row.task_id,
        "parent_id": ids.get(row.parent_id) if row.parent_id else None,
        "value": row.value,
        "state": run.state.value,
        "order": row.order,
        "attempts": row.attempts,
        "outputs": row.outputs,
        "started_at": row.started_at,
        "ended_at": row.ended_at if run.state.is_terminal else None,
    }
    return TaskRun(**fields)
