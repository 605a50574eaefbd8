"""Reads an execution and its task runs from the database into the planner's snapshot."""
from __future__ import annotations

import threading
from collections import OrderedDict

from django.db.models import Func, IntegerField, Q
from django.utils import timezone

from flows_app.engine.snapshot import ExecutionSnapshot, RunState
from flows_app.engine.states import TERMINAL, State
from flows_app.models import Execution, FlowRevision, TaskRun
from flows_app.spec.model import FlowSpec
from plugins_app.registry import get_plugin

from .flows import spec_of_revision

RUN_FIELDS = ("id", "task_id", "parent_id", "state", "value", "attempt_count", "outputs", "order", "started_at",
              "next_attempt_at")


class JSONArrayLength(Func):
    """The length of a JSON array column, counted by the database (no need to read the array)."""

    function = "json_array_length"
    output_field = IntegerField()

    def as_postgresql(self, compiler, connection, **extra):
        return super().as_sql(compiler, connection, function="jsonb_array_length", **extra)


def load_runs(execution_id: str, flow: FlowSpec | None = None) -> tuple[RunState, ...]:
    """Plain tuples, not model instances, and only the columns the planner reads: an execution is read
    on every step, so this is hot. With its `flow`, ended runs already read are not read again."""
    if flow is None:
        return _run_states(TaskRun.objects.filter(execution_id=execution_id).order_by("order"))
    return _ended_runs.load(execution_id, flow)


class EndedRuns:
    """Each process keeps the ended runs it has read, per execution (the last few executions).

    An ended run does not change: a restart makes it unfinished again, and unfinished runs are always
    read. So a read asks only for the runs unfinished now, those unfinished at the last read (they may
    have ended since), and those created since (a higher `order`). A long loop's step then reads its few
    running iterations, not the thousands done. Subflow and ForEachItem runs are always read: their
    children's ends are written into their outputs, also after they ended (`wait: false`).
    """

    def __init__(self, executions: int = 32):
        self.executions = executions
        self.lock = threading.Lock()
        # execution id -> (ended runs by id, highest order read, ids to read again next time)
        self.entries: OrderedDict[str, tuple[dict[str, RunState], int, tuple[str, ...]]] = OrderedDict()

    def load(self, execution_id: str, flow: FlowSpec) -> tuple[RunState, ...]:
        with self.lock:
            entry = self.entries.get(execution_id)
        query = TaskRun.objects.filter(execution_id=execution_id)
        if entry is None:
            ended, fresh = {}, _run_states(query)
        else:
            ended, highest, again = entry
            fresh = _run_states(query.filter(~Q(state__in=TERMINAL) | Q(order__gt=highest) | Q(id__in=again)))
        read = {r.id: r for r in fresh}
        runs = {**ended, **read}
        keep = {i: r for i, r in read.items() if r.state.is_terminal and not _written_after_end(flow, r)}
        still_ended = {i: r for i, r in ended.items() if i not in read}  # a restarted run was read again
        new_entry = ({**still_ended, **keep}, max((r.order for r in runs.values()), default=-1),
                     tuple(i for i in read if i not in keep))
        with self.lock:
            self.entries[execution_id] = new_entry
            self.entries.move_to_end(execution_id)
            while len(self.entries) > self.executions:
                self.entries.popitem(last=False)
        return tuple(sorted(runs.values(), key=lambda r: r.order))


def _written_after_end(flow: FlowSpec, run: RunState) -> bool:
    try:
        return bool(getattr(get_plugin(flow.task(run.task_id).type), "outputs_change_after_end", False))
    except KeyError:
        return True


_ended_runs = EndedRuns()


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
    flow = spec_of_revision(execution.flow_revision_id, revision_checksum(execution))
    return ExecutionSnapshot(
        id=execution.id, flow=flow,
        state=State(execution.state),
        runs=load_runs(execution.id, flow) if runs is None else runs, now=timezone.now(), inputs=execution.inputs or {},
        labels=execution.labels or {}, start_date=execution.started_at or execution.created_at,
        trigger=execution.trigger, outputs=execution.outputs or {},
    )
