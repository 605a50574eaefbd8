"""Applying the planner's actions to a snapshot, in memory: how the next round of the planner sees them."""

from __future__ import annotations

from collections.abc import Sequence

from .actions import (
    Action,
    CreateTaskRun,
    DiscardTaskRuns,
    RequeueTaskRun,
    RestartTaskRun,
    SetExecutionState,
    SetTaskRunState,
)
from .snapshot import ExecutionSnapshot, RunState
from .states import State


def apply(snapshot: ExecutionSnapshot, actions: Sequence[Action]) -> ExecutionSnapshot:
    runs = {r.id: r for r in snapshot.runs}
    state, order = snapshot.state, max((r.order for r in snapshot.runs), default=-1) + 1  # gaps: cleared runs
    for action in actions:
        if isinstance(action, CreateTaskRun):
            runs[action.id] = RunState(
                action.id,
                action.task_id,
                action.parent_id,
                action.state,
                action.value,
                attempts=1 if action.state in (State.RUNNING, State.PAUSED) else 0,
                outputs=action.outputs,
                order=order,
                started_at=snapshot.now,
                next_attempt_at=action.wake_at,
            )
            order += 1
        elif isinstance(action, SetTaskRunState):
            runs[action.task_run_id] = runs[action.task_run_id].evolve(
                state=action.state, next_attempt_at=action.next_attempt_at
            )
        elif isinstance(action, RestartTaskRun):
            run = runs[action.task_run_id]
            runs[action.task_run_id] = run.evolve(
                state=State.RUNNING, attempts=run.attempts + 1, outputs=action.outputs, next_attempt_at=None
            )
        elif isinstance(action, RequeueTaskRun):
            runs[action.task_run_id] = runs[action.task_run_id].evolve(state=State.QUEUED, next_attempt_at=None)
        elif isinstance(action, DiscardTaskRuns):
            for run_id in action.task_run_ids:
                runs.pop(run_id, None)
        elif isinstance(action, SetExecutionState):
            state = action.state
    return snapshot.with_runs(tuple(sorted(runs.values(), key=lambda r: r.order)), state)
