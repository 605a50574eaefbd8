"""A flow's `concurrency` limit: the one gate every execution passes before its work starts.

An execution holds a slot of its flow while it is RUNNING, PAUSED or KILLING. Three paths start work: an
execution's first advance (whatever created it: a run, a trigger, a backfill, a replay, a subflow), the
advance of one that waited QUEUED, and the restart of one that ended; each asks `admit` under the
execution's row lock, and `admit` decides under the flow's row lock, so two decisions for one flow never
interleave, whichever processes take them. An execution that ends frees its slot: the oldest waiting ones
are woken (`on_execution_ended`, and the housekeeping tick should a wake-up be lost).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection

from flows_app import events
from flows_app.engine.states import State
from flows_app.models import Execution, Flow
from flows_app.spec.model import FlowSpec

HOLDING = (State.RUNNING, State.PAUSED, State.KILLING)  # the states that hold a slot
REFUSED = {"CANCEL": State.CANCELLED, "FAIL": State.FAILED}


@dataclass(frozen=True)
class Verdict:
    state: State  # RUNNING: it may run; QUEUED: it waits; CANCELLED or FAILED: refused for good
    running: int  # how many held a slot when it was decided

    @property
    def admitted(self) -> bool:
        return self.state == State.RUNNING

    def message(self, limit: int) -> str:
        if self.state == State.QUEUED:
            return f"Flow is queued due to concurrency limit exceeded, {self.running} running(s) (limit {limit})"
        return f"Flow is {self.state} due to concurrency limit exceeded, {self.running} running(s) (limit {limit})"


def admit(execution: Execution, spec: FlowSpec) -> Verdict | None:
    """Must hold the execution's row lock. Whether this CREATED, QUEUED or ended execution may run now;
    None when its flow has no limit. It may when a slot is free and no execution queued before it waits
    (one that waits QUEUED may when it is among the oldest that fit in the free slots)."""
    limit = spec.concurrency
    if limit is None:
        return None
    _lock_flow(execution.flow_id)
    running = Execution.objects.filter(flow_id=execution.flow_id, state__in=HOLDING).exclude(pk=execution.pk).count()
    free = limit.limit - running
    ahead = list(
        _queued(execution.flow_id)
        .exclude(pk=execution.pk)
        .filter(_before(execution))
        .values_list("pk", flat=True)[: max(free, 0)]
        if execution.state == State.QUEUED
        else _queued(execution.flow_id).values_list("pk", flat=True)[:1]
    )
    if free > 0 and (len(ahead) < free if execution.state == State.QUEUED else not ahead):
        return Verdict(State.RUNNING, running)
    return Verdict(REFUSED.get(limit.behavior, State.QUEUED), running)


def _lock_flow(flow_pk: int) -> None:
    # FOR NO KEY UPDATE on PostgreSQL: it orders the decisions without blocking the inserts of new executions
    # (whose foreign key takes a key-share lock on the flow). SQLite's write lock orders them already.
    no_key = connection.features.has_select_for_no_key_update
    list(Flow.objects.filter(pk=flow_pk).select_for_update(no_key=no_key).values_list("pk", flat=True))


def _queued(flow_pk: int):
    return Execution.objects.filter(flow_id=flow_pk, state=State.QUEUED).order_by("queued_at", "pk")


def _before(execution: Execution):
    from django.db.models import Q

    return Q(queued_at__lt=execution.queued_at) | Q(queued_at=execution.queued_at, pk__lt=execution.pk)


def wake_queued(flow_pk: int, spec: FlowSpec | None) -> int:
    """Wake the oldest QUEUED executions of the flow that the free slots could take; each then asks `admit`."""
    if spec is None or spec.concurrency is None:
        return 0
    running = Execution.objects.filter(flow_id=flow_pk, state__in=HOLDING).count()
    free = spec.concurrency.limit - running
    woken = list(_queued(flow_pk).values_list("pk", flat=True)[: max(free, 0)])
    for execution_id in woken:
        events.announce(events.WakeUpSet(execution_id))
    return len(woken)


def on_execution_ended(event: events.ExecutionEnded) -> None:
    """A slot may be free: wake who waits for it (nothing is read for a flow with nobody queued)."""
    if event.flow_pk is None or not _queued(event.flow_pk).exists():
        return
    wake_queued(event.flow_pk, _latest_spec(event.flow_pk))


def _latest_spec(flow_pk: int) -> FlowSpec | None:
    from .flows import spec_of

    flow = Flow.objects.filter(pk=flow_pk).first()
    return spec_of(flow.revisions.defer("source").get(revision=flow.revision)) if flow else None


def wake_all_queues() -> int:
    """The housekeeping tick's part: every flow with executions waiting is looked at again."""
    flows = Execution.objects.filter(state=State.QUEUED).values_list("flow_id", flat=True).distinct()
    return sum(wake_queued(flow_pk, _latest_spec(flow_pk)) for flow_pk in list(flows))
