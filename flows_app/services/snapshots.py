"""Reads an execution and its task runs from the database into the planner's snapshot."""
from __future__ import annotations

from django.db.models import Func, IntegerField
from django.utils import timezone

from flows_app.engine.snapshot import ExecutionSnapshot, RunState
from flows_app.engine.states import State
from flows_app.models import Execution, FlowRevision, TaskRun

from .flows import spec_of_revision

RUN_FIELDS = ("id", "task_id", "parent_id", "state", "value", "attempt_count", "outputs", "order", "started_at",
              "next_attempt_at")


class JSONArrayLength(Func):
    """The length of a JSON array column, counted by the database (no need to read the array)."""

    function = "json_array_length"
    output_field = IntegerField()

    def as_postgresql(self, compiler, connection, **extra):
        return super().as_sql(compiler, connection, function="jsonb_array_length", **extra)


def load_runs(execution_id: str) -> tuple[RunState, ...]:
    """Plain tuples, not model instances, and only the columns the planner reads: an execution is read
    on every step, so this is hot."""
    return _run_states(TaskRun.objects.filter(execution_id=execution_id).order_by("order"))


def load_chain(run: TaskRun) -> tuple[RunState, ...]:
    """A run and its parents, outermost first: all that a task's templates see of the execution's runs
    when they read no other run's outputs (a query per level, instead of every run of a long loop)."""
    chain = [RunState(id=run.id, task_id=run.task_id, parent_id=run.parent_id, state=State(run.state),
                      value=run.value, attempts=len(run.attempts), outputs=run.outputs or {}, order=run.order,
                      started_at=run.started_at, next_attempt_at=run.next_attempt_at)]
    while chain[-1].parent_id is not None:
        chain.extend(_run_states(TaskRun.objects.filter(id=chain[-1].parent_id)))
    return tuple(reversed(chain))


def _run_states(query) -> tuple[RunState, ...]:
    rows = query.annotate(attempt_count=JSONArrayLength("attempts")).values_list(*RUN_FIELDS)
    return tuple(
        RunState(id=i, task_id=t, parent_id=p, state=State(s), value=v, attempts=a, outputs=o or {},
                 order=n, started_at=sa, next_attempt_at=na)
        for i, t, p, s, v, a, o, n, sa, na in rows
    )


def revision_checksum(execution: Execution) -> str:
    checksum = getattr(execution, "revision_checksum", None)  # read with the execution (with_checksum)
    if checksum is None:
        checksum = FlowRevision.objects.values_list("checksum", flat=True).get(pk=execution.flow_revision_id)
    return checksum


def load_snapshot(execution: Execution, runs: tuple[RunState, ...] | None = None) -> ExecutionSnapshot:
    return ExecutionSnapshot(
        id=execution.id, flow=spec_of_revision(execution.flow_revision_id, revision_checksum(execution)),
        state=State(execution.state),
        runs=load_runs(execution.id) if runs is None else runs, now=timezone.now(), inputs=execution.inputs or {},
        labels=execution.labels or {}, start_date=execution.started_at or execution.created_at,
        trigger=execution.trigger, outputs=execution.outputs or {},
    )
