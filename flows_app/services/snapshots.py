"""Reads an execution and its task runs from the database into the planner's snapshot."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from flows_app.engine.outcome import recovery_task_ids
from flows_app.engine.snapshot import ExecutionSnapshot, RunState
from flows_app.engine.states import TERMINAL, State
from flows_app.models import Execution, FlowRevision, TaskRun
from flows_app.spec.model import FlowSpec
from plugins_app.registry import get_plugin

from .flows import spec_of_revision


def load_runs(execution_id: str, flow: FlowSpec | None = None, generation: int = 0) -> tuple[RunState, ...]:
    """Plain tuples, not model instances, and only the columns the planner reads: an execution is read
    on every step, so this is hot. With its `flow`, ended runs already read (in this `generation` of the
    execution, see `generation_of`) are not read again."""
    if flow is None:
        return _select_runs("execution_id = %s", [execution_id])
    return _ended_runs.load(execution_id, flow, generation)


def generation_of(execution: Execution) -> int:
    """Changes whenever ended runs may have been deleted or reopened by an operator: each state change of
    the execution adds to its histories, and a restart (services/restarts.py) is one."""
    return len(execution.histories or ())


MAX_REREAD = 500  # ids asked for by name in one query (SQLite builds may allow only 999 parameters)


class EndedRuns:
    """Each process keeps the ended runs it has read, per execution (the last few executions).

    An ended run does not change: a restart makes it unfinished again, and unfinished runs are always
    read. So a read asks only for the runs unfinished now, those unfinished at the last read (they may
    have ended since), and those created since (a higher `order`). A long loop's step then reads its few
    running iterations, not the thousands done. Subflow and ForEachItem runs are always read: their
    children's ends are written into their outputs, also after they ended (`wait: false`). So are the runs
    a retry may clear (a flowable's `errors` run between attempts of a child that inherits its retry): a
    cleared run is deleted, and a copy kept here, in this process or another, would outlive it.
    """

    def __init__(self, executions: int = 32):
        self.executions = executions
        self.lock = threading.Lock()
        # execution id -> (ended runs by id, highest order read, ids to read again next time, generation)
        self.entries: OrderedDict[str, tuple[dict[str, RunState], int, tuple[str, ...], int]] = OrderedDict()

    def load(self, execution_id: str, flow: FlowSpec, generation: int = 0) -> tuple[RunState, ...]:
        with self.lock:
            entry = self.entries.get(execution_id)
        if entry is None or len(entry[2]) > MAX_REREAD or entry[3] != generation:
            # Nothing kept, many unfinished runs (one plain read is simpler), or an operator's restart since.
            ended, fresh = {}, _select_runs("execution_id = %s", [execution_id])
        else:
            ended, highest, again, _ = entry
            ended_states = ", ".join(["%s"] * len(TERMINAL))
            where = f"execution_id = %s AND (state NOT IN ({ended_states}) OR {ORDER} > %s"
            params = [execution_id, *sorted(s.value for s in TERMINAL), highest]
            if again:
                where += f" OR id IN ({', '.join(['%s'] * len(again))})"
                params.extend(again)
            fresh = _select_runs(where + ")", params)
        read = {r.id: r for r in fresh}
        runs = {**ended, **read}
        cleared_by_retries = recovery_task_ids(flow)
        keep = {
            i: r
            for i, r in read.items()
            if r.state.is_terminal and not _written_after_end(flow, r) and r.task_id not in cleared_by_retries
        }
        still_ended = {i: r for i, r in ended.items() if i not in read}  # a restarted run was read again
        new_entry = (
            {**still_ended, **keep},
            max((r.order for r in runs.values()), default=-1),
            tuple(i for i in read if i not in keep),
            generation,
        )
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
    chain = [
        RunState(
            id=run.id,
            task_id=run.task_id,
            parent_id=run.parent_id,
            state=State(run.state),
            value=run.value,
            attempts=len(run.attempts),
            outputs=run.outputs or {},
            order=run.order,
            started_at=run.started_at,
            next_attempt_at=run.next_attempt_at,
        )
    ]
    while chain[-1].parent_id is not None:
        chain.extend(_select_runs("id = %s", [chain[-1].parent_id]))
    return tuple(reversed(chain))


ORDER = '"order"'  # a reserved word, quoted as SQLite and PostgreSQL both read it


def _select_runs(where: str, params: list[Any]) -> tuple[RunState, ...]:
    """Runs as plain RunStates, read with plain SQL (`where` holds only placeholders and our own column
    names): Django's query compiler cost more than the query itself, twice per task (profiled)."""
    length = "jsonb_array_length" if connection.vendor == "postgresql" else "json_array_length"
    sql = (
        f"SELECT id, task_id, parent_id, state, value, {length}(attempts), outputs, {ORDER}, started_at, "
        f"next_attempt_at FROM {TaskRun._meta.db_table} WHERE {where} ORDER BY {ORDER}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return tuple(
        RunState(
            id=i,
            task_id=t,
            parent_id=p,
            state=State(s),
            value=v,
            attempts=a or 0,
            outputs=_json(o),
            order=n,
            started_at=_moment(sa),
            next_attempt_at=_moment(na),
        )
        for i, t, p, s, v, a, o, n, sa, na in rows
    )


def _json(value: Any) -> Any:
    """A JSON column as the driver gives it: text (SQLite, Django's psycopg setup) or already decoded."""
    if isinstance(value, (str, bytes)):
        value = json.loads(value)
    return value or {}


def _moment(value: Any) -> datetime | None:
    """A timestamp as the driver gives it (aware, naive UTC or ISO text) -> an aware datetime."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


def revision_checksum(execution: Execution) -> str:
    checksum = getattr(execution, "revision_checksum", None)  # read with the execution (with_checksum)
    if checksum is None:
        checksum = FlowRevision.objects.values_list("checksum", flat=True).get(pk=execution.flow_revision_id)
    return checksum


def load_snapshot(execution: Execution, runs: tuple[RunState, ...] | None = None) -> ExecutionSnapshot:
    flow = spec_of_revision(execution.flow_revision_id, revision_checksum(execution))
    return ExecutionSnapshot(
        id=execution.id,
        flow=flow,
        state=State(execution.state),
        runs=load_runs(execution.id, flow, generation_of(execution)) if runs is None else runs,
        now=timezone.now(),
        inputs=execution.inputs or {},
        labels=execution.labels or {},
        start_date=execution.started_at or execution.created_at,
        trigger=execution.trigger,
        outputs=execution.outputs or {},
        held=execution.held,
    )
