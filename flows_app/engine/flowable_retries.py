"""Retries inside flowables, Kestra's way: a flowable is not retried; a failed runnable (or Subflow) inside it
is, in place, by the nearest `retry` around it. When that retry is not the task's own, its flowable's
recovery branches (`errors`, `finally`) run between the attempts, and are cleared before the next one."""

from __future__ import annotations

from datetime import datetime

from flows_app.spec.model import TaskSpec

from .outcome import inherits_retry, recovery_tasks
from .snapshot import ExecutionSnapshot, RunState
from .states import State


def as_rules_see_them(snapshot: ExecutionSnapshot, task: TaskSpec, children: list[RunState]) -> list[RunState]:
    """A child waiting for a retry it inherits counts as failed for its flowable's rules, so that the
    flowable's `errors` run (Kestra's `hasFailedNoRetry` knows a task's own retry only); a child waiting
    for its own retry is simply not done yet."""
    if not recovery_tasks(snapshot.flow, task):
        return children
    flow = snapshot.flow
    return [
        c.evolve(state=State.FAILED) if c.state == State.RETRYING and inherits_retry(flow, flow.task(c.task_id)) else c
        for c in children
    ]


def child_retrying(snapshot: ExecutionSnapshot, run: RunState) -> bool:
    """A flowable does not end while one of its children waits for a retry."""
    return any(child.state == State.RETRYING for child in snapshot.children(run.id))


def _recovery_of(snapshot: ExecutionSnapshot, run: RunState) -> list[RunState]:
    """The runs of the recovery branches of the flowable around `run`, when `run` inherits its retry (and
    is not in one of them itself)."""
    if run.parent_id is None:
        return []
    flow, parent = snapshot.flow, snapshot.run(run.parent_id)
    ids = recovery_tasks(flow, flow.task(parent.task_id))
    if not ids or run.task_id in ids or not inherits_retry(flow, flow.task(run.task_id)):
        return []
    return [r for r in snapshot.children(parent.id) if r.task_id in ids]


def waits_for_recovery(snapshot: ExecutionSnapshot, run: RunState) -> bool:
    """A due retry waits while the recovery its failure started still runs (a paused one excepted: an
    approval there must not hold the retry forever)."""
    return any(not r.state.is_terminal and r.state != State.PAUSED for r in _recovery_of(snapshot, run))


def ended_recovery(snapshot: ExecutionSnapshot, run: RunState, cleared: set[str]) -> tuple[str, ...]:
    """The ended recovery runs to clear before `run`'s next attempt, with everything below them."""
    found: list[str] = []
    todo = [r for r in _recovery_of(snapshot, run) if r.state.is_terminal and r.id not in cleared]
    while todo:
        current = todo.pop()
        found.append(current.id)
        todo.extend(snapshot.children(current.id))
    return tuple(found)


def next_wake(snapshot: ExecutionSnapshot) -> datetime | None:
    """When to advance the execution with no message: the earliest retry or pause timer. A due retry that
    waits for a recovery is left out: the recovery's end advances the execution."""
    waits = [
        r.next_attempt_at
        for r in snapshot.runs
        if r.state in (State.RETRYING, State.PAUSED)
        and r.next_attempt_at
        and not (r.state == State.RETRYING and r.next_attempt_at <= snapshot.now and waits_for_recovery(snapshot, r))
    ]
    return min(waits) if waits else None
