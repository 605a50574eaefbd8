"""Backfills of a Schedule: its ticks from a start to an end, each run once, oldest first (Kestra's backfill).

A backfill is a row: what to run (start, end, inputs, labels, whether ticks with an execution are skipped)
and how far it is (`current_date`, done / total). This module creates, previews, pauses, resumes and
cancels them; `backfill_runs` starts their executions a few at a time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from flows_app.engine.cron import count_between, next_tick, previous_tick, tick_text, ticks_between, zone_of
from flows_app.models import Backfill, Execution, TriggerState
from flows_app.spec.triggers import SCHEDULE, ScheduleSpec

ACTIVE = (Backfill.RUNNING, Backfill.PAUSED)


class BackfillError(ValueError):
    """A backfill that cannot be: the message says why (and `field`, which part of the request)."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Preview:
    executions: int  # how many it would start
    first: str | None  # the first and last tick it would start, in the schedule's zone
    last: str | None
    ticks: int  # the ticks in the range, skipped ones included


def preview(schedule: ScheduleSpec, state: TriggerState, start: datetime, end: datetime, only_missing: bool) -> Preview:
    """What a backfill of these dates would start, before it starts."""
    zone = zone_of(schedule.timezone)
    total = count_between(schedule.cron, zone, start, end)
    if not only_missing:
        first = next_tick(schedule.cron, zone, start, inclusive=True)
        last = previous_tick(schedule.cron, zone, end + timedelta(microseconds=1))
        return Preview(total, tick_text(first) if total else None, tick_text(last) if total else None, total)
    existing = dates_with_executions(state)
    missing = [tick_text(t) for t in ticks_between(schedule.cron, zone, start, end)]
    missing = [t for t in missing if t not in existing]
    return Preview(len(missing), missing[0] if missing else None, missing[-1] if missing else None, total)


def start_backfill(
    state: TriggerState,
    schedule: ScheduleSpec,
    start: datetime,
    end: datetime | None = None,
    *,
    inputs: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    only_missing: bool = False,
    paused: bool = False,
    origin: str = "",
) -> Backfill:
    """A new backfill of the trigger (one at a time per trigger: BackfillError otherwise); without `end`, up to
    now. Its executions start with the next housekeeping tick."""
    end = end or timezone.now()
    reserved = sorted(key for key in labels or {} if key.startswith("system."))  # Kestra's system labels
    if reserved:
        raise BackfillError(
            f"labels {', '.join(reserved)}: the `system.` prefix is reserved (Tern sets those)", "labels"
        )
    if end < start:
        raise BackfillError(f"the end, {end.isoformat()}, is before the start, {start.isoformat()}", "end")
    if state.type != SCHEDULE[0]:
        raise BackfillError(f"trigger {state} is not a Schedule: only a schedule has ticks to backfill", "triggerId")
    if Backfill.objects.filter(trigger_state=state, state__in=ACTIVE).exists():
        raise BackfillError(f"trigger {state} has a backfill under way: pause, wait for or cancel it first")
    zone = zone_of(schedule.timezone)
    return Backfill.objects.create(
        trigger_state=state,
        start=start,
        end=end,
        current_date=next_tick(schedule.cron, zone, start, inclusive=True),
        state=Backfill.PAUSED if paused else Backfill.RUNNING,
        total=count_between(schedule.cron, zone, start, end),
        only_missing=only_missing,
        inputs=dict(inputs or {}),
        labels=dict(labels or {}),
        origin=origin,
    )


def backfill_from_flow(state: TriggerState, schedule: ScheduleSpec) -> Backfill | None:
    """The flow's own `backfill: {start, end}`: started once when the flow is saved with it (saving it again, or
    another revision with the same backfill, starts nothing new). Runs in the flow's save transaction."""
    asked = schedule.backfill
    if asked is None:
        return None
    text = json.dumps(
        [asked.start.isoformat(), asked.end.isoformat() if asked.end else None, asked.inputs, asked.labels]
    )
    origin = "flow:" + hashlib.sha256(text.encode()).hexdigest()[:32]
    if Backfill.objects.filter(trigger_state=state, origin=origin).exists():
        return None
    if Backfill.objects.filter(trigger_state=state, state__in=ACTIVE).exists():
        return None  # one at a time: an operator's backfill is under way
    return start_backfill(
        state, schedule, asked.start, asked.end, inputs=dict(asked.inputs), labels=dict(asked.labels), origin=origin
    )


def set_paused(backfill: Backfill, paused: bool) -> Backfill:
    """Pause a running backfill (what it started goes on) or resume a paused one; BackfillError if it ended."""
    with transaction.atomic():
        backfill = Backfill.objects.select_for_update().get(pk=backfill.pk)
        if backfill.state not in ACTIVE:
            raise BackfillError(f"the backfill is {backfill.state}: only a running or paused one is paused or resumed")
        backfill.state = Backfill.PAUSED if paused else Backfill.RUNNING
        backfill.save(update_fields=["state", "updated_at"])
    return backfill


def cancel(backfill: Backfill) -> Backfill:
    """Stop a backfill for good: no more of its ticks start (what it started goes on)."""
    with transaction.atomic():
        backfill = Backfill.objects.select_for_update().get(pk=backfill.pk)
        if backfill.state in ACTIVE:
            backfill.state = Backfill.CANCELLED
            backfill.save(update_fields=["state", "updated_at"])
    return backfill


def active_backfill(state: TriggerState) -> Backfill | None:
    return Backfill.objects.filter(trigger_state=state, state__in=ACTIVE).first()


def dates_with_executions(state: TriggerState, dates: list[str] | None = None) -> set[str]:
    """The tick dates (as `trigger.date` says them) of the trigger that have an execution: by the schedule or a
    backfill. Among `dates` only, when given."""
    found = Execution.objects.filter(flow_id=state.flow_id, trigger__id=state.trigger_id)
    if dates is not None:
        found = found.filter(trigger__date__in=dates)
    return {date for date in found.values_list("trigger__date", flat=True) if isinstance(date, str)}
