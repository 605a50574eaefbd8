"""A running backfill starts its ticks' executions in order, never more than a few of its flow's executions
in flight at once (TERN_BACKFILL_MAX_IN_FLIGHT, queued ones included), so it never swamps the workers nor
starves the flows that run now, and honours the flow's concurrency limit.

It goes on when one of its executions ends (`on_execution_ended`, in the worker that ended it) and at each
housekeeping tick (`advance_all`). Each tick's execution has a unique key per backfill and date, so a step
taken twice starts nothing twice.
"""

from __future__ import annotations

import logging
from datetime import UTC

from django.conf import settings
from django.db import transaction

from flows_app.engine.cron import tick_text, ticks_after, zone_of
from flows_app.engine.states import TERMINAL
from flows_app.events import ExecutionEnded
from flows_app.models import Backfill, Execution
from flows_app.services.flows import spec_of
from flows_app.spec.triggers import SCHEDULE

from .backfills import dates_with_executions
from .schedules import start_tick

logger = logging.getLogger("tern.triggers")
BATCH = 100  # ticks looked at per step, at most
MAX_STEPS = 20  # steps per advance: ticks skipped (`only_missing`) pass quickly, within one transaction's bound


def advance(backfill_id: int) -> int:
    """Start what the backfill may start now; returns how many executions it started."""
    with transaction.atomic():
        backfill = Backfill.objects.select_for_update().select_related("trigger_state__flow").filter(pk=backfill_id)
        backfill = backfill.first()
        if backfill is None or backfill.state != Backfill.RUNNING:
            return 0
        state = backfill.trigger_state
        flow = state.flow
        spec = spec_of(flow.revisions.defer("source").get(revision=flow.revision))
        trigger = next((t for t in spec.triggers if t.id == state.trigger_id and t.type == SCHEDULE[0]), None)
        if trigger is None or trigger.spec is None or flow.deleted or spec.disabled:
            backfill.state = Backfill.CANCELLED  # its schedule is gone or its flow stopped: nothing to run
            backfill.save(update_fields=["state", "updated_at"])
            logger.warning("%s cancelled: its schedule or flow is gone or disabled", backfill)
            return 0
        in_flight = Execution.objects.filter(flow_id=flow.pk).exclude(state__in=list(TERMINAL)).count()
        budget = min(settings.TERN["BACKFILL_MAX_IN_FLIGHT"] - in_flight, BATCH)
        started, steps = 0, 0
        while budget - started > 0 and backfill.state == Backfill.RUNNING and steps < MAX_STEPS:
            started += _step(backfill, trigger.spec, budget - started)
            steps += 1
        backfill.save(update_fields=["current_date", "state", "done", "started", "updated_at"])
    return started


def _step(backfill: Backfill, schedule, budget: int) -> int:
    """Must hold the backfill's row lock. Walk at most BATCH of its ticks from `current_date`: start up to
    `budget`, skip those with an execution already when it is `only_missing`; it is DONE past its end."""
    zone = zone_of(schedule.timezone)
    ticks = []
    if backfill.current_date is not None:
        for tick in ticks_after(schedule.cron, zone, backfill.current_date, inclusive=True):
            if tick > backfill.end or len(ticks) >= BATCH:
                break
            ticks.append(tick)
    existing = (
        dates_with_executions(backfill.trigger_state, [tick_text(t) for t in ticks]) if backfill.only_missing else set()
    )
    started, previous, remaining = 0, None, list(ticks)
    while remaining and started < budget:
        tick = remaining.pop(0)
        if tick_text(tick) not in existing:
            key = f"backfill:{backfill.pk}:{tick.astimezone(UTC).isoformat()}"
            if start_tick(backfill.trigger_state, schedule, tick, key=key, previous=previous, backfill=backfill):
                started += 1
        backfill.done += 1
        previous = tick
    if remaining:
        backfill.current_date = remaining[0]
    else:
        following = next(ticks_after(schedule.cron, zone, ticks[-1]), None) if ticks else None
        backfill.current_date = following if following is not None and following <= backfill.end else None
    if backfill.current_date is None:
        backfill.state = Backfill.DONE
    backfill.started += started
    return started


def on_execution_ended(event: ExecutionEnded) -> None:
    """One of a backfill's executions ended: a place is free for its next tick."""
    backfill_id = (event.trigger or {}).get("backfill")
    if isinstance(backfill_id, int):
        advance(backfill_id)


def advance_all() -> int:
    """The housekeeping tick's part: every running backfill takes its next step (a new one its first)."""
    running = Backfill.objects.filter(state=Backfill.RUNNING).values_list("pk", flat=True)
    return sum(advance(pk) for pk in list(running))
