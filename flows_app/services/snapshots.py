"""Reads an execution and its task runs from the database into the planner's snapshot."""
from __future__ import annotations

from django.utils import timezone

from flows_app.engine.snapshot import ExecutionSnapshot, RunState
from flows_app.engine.states import State
from flows_app.models import Execution, TaskRun

from .flows import spec_of


def run_state(run: TaskRun) -> RunState:
    return RunState(
        id=run.id, task_id=run.task_id, parent_id=run.parent_id, state=State(run.state), value=run.value,
        attempts=len(run.attempts), outputs=run.outputs or {}, order=run.order, started_at=run.started_at,
        ended_at=run.ended_at, next_attempt_at=run.next_attempt_at,
    )


def load_snapshot(execution: Execution, runs: list[TaskRun] | None = None) -> ExecutionSnapshot:
    if runs is None:
        runs = list(execution.task_runs.order_by("order"))
    return ExecutionSnapshot(
        id=execution.id, flow=spec_of(execution.flow_revision), state=State(execution.state),
        runs=tuple(run_state(r) for r in runs), now=timezone.now(), inputs=execution.inputs or {},
        labels=execution.labels or {}, start_date=execution.started_at or execution.created_at,
        trigger=execution.trigger, outputs=execution.outputs or {},
    )
