"""A Schedule trigger's ticks become executions: each at most once, in order, with `trigger.date`,
`trigger.next` and `trigger.previous`.

Celery Beat sends `tern.schedule` when a tick is due (see `beat`); the housekeeping tick calls
`fire_overdue` for ticks whose message was lost. Both end in `fire`, which holds the trigger's row lock
while it walks its ticks from `next_date` to now, and starts each with a unique key per (flow, trigger,
date): two schedulers, a restart or a duplicated message never start one twice.

Ticks missed while no scheduler ran are recovered by the trigger's `recoverMissedSchedules` (Kestra's):
`ALL` (the default) runs them all, `LAST` the last one, `NONE` none. The policy is applied when the
scheduler starts (`recover_all_missed`) and when a disabled trigger fires again (`recover_missed`).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from flows_app.engine.conditions import ConditionError, schedule_conditions_hold
from flows_app.engine.cron import next_tick, previous_tick, tick_text, ticks_after, zone_of
from flows_app.engine.templating import TemplateError, render_value
from flows_app.models import Backfill, Execution, TriggerState
from flows_app.services.flows import spec_of
from flows_app.services.starting import start_execution
from flows_app.spec.triggers import SCHEDULE, ScheduleSpec

from .recovery import recover_missed

logger = logging.getLogger("tern.triggers")

SKEW = timedelta(seconds=1)  # a worker's clock may be this far behind the scheduler's that sent the tick
PER_CALL = 100  # ticks started by one call: a long catch-up goes on at the next call, not in one transaction


def fire(state_id: int, now: datetime | None = None) -> int:
    """Start the executions of the trigger's due ticks (at most PER_CALL); returns how many started. A tick
    never starts before its date: one due within SKEW (this clock behind the scheduler's) is waited for."""
    now = now or timezone.now()
    upcoming = TriggerState.objects.filter(pk=state_id).values_list("next_date", flat=True).first()
    if upcoming is not None and now < upcoming <= now + SKEW:
        time.sleep((upcoming - now).total_seconds())
        now = upcoming
    with transaction.atomic():
        state = TriggerState.objects.select_for_update().select_related("flow").filter(pk=state_id).first()
        if state is None or not state.enabled or state.next_date is None or state.next_date > now:
            return 0
        flow = state.flow
        spec = spec_of(flow.revisions.defer("source").get(revision=flow.revision))
        trigger = next((t for t in spec.triggers if t.id == state.trigger_id and t.type == SCHEDULE[0]), None)
        if trigger is None or trigger.spec is None:
            return 0
        return _start_due(state, trigger.spec, now)


def _start_due(state: TriggerState, schedule: ScheduleSpec, now: datetime) -> int:
    """Must hold the state's row lock. Walks the ticks from `next_date` while they are due."""
    zone = zone_of(schedule.timezone)
    started = 0
    ticks = ticks_after(schedule.cron, zone, state.next_date, inclusive=True)
    for tick in ticks:
        if tick > now or started >= PER_CALL:
            state.next_date = tick
            break
        late = schedule.late_maximum_delay
        if late is not None and tick + late < now:
            logger.info("%s: tick %s skipped, later than lateMaximumDelay %s", state, tick.isoformat(), late)
            continue
        if _start_tick(state, schedule, tick):
            started += 1
    else:  # a cron with no tick left
        state.next_date = None
    state.save(update_fields=["next_date", "last_date", "last_execution_id", "last_error", "error_count", "updated_at"])
    return started


def _start_tick(state: TriggerState, schedule: ScheduleSpec, tick: datetime) -> bool:
    key = f"tick:{state.flow_id}:{state.trigger_id}:{tick.astimezone(UTC).isoformat()}"
    return start_tick(state, schedule, tick, key=key) is not None


def start_tick(
    state: TriggerState,
    schedule: ScheduleSpec,
    tick: datetime,
    *,
    key: str,
    previous: datetime | None = None,
    backfill: Backfill | None = None,
) -> Execution | None:
    """One tick's execution, unless its conditions say no or `key` started one already (None then). Its inputs
    are the schedule's (then the backfill's), rendered with `trigger`; its labels the schedule's and the
    backfill's. A tick whose execution cannot start (inputs the flow refuses) is recorded as the trigger's
    error, and passed. `previous`: the tick before, when the caller knows it (a backfill walks them in order)."""
    zone = zone_of(schedule.timezone)
    variables = {
        "date": tick_text(tick),
        "next": tick_text(next_tick(schedule.cron, zone, tick)),
        "previous": tick_text(previous or previous_tick(schedule.cron, zone, tick)),
    }
    where = f"tick {variables['date']}"
    try:
        if schedule.conditions and not _conditions_hold(schedule, variables):
            return None
        inputs = {**schedule.inputs, **(backfill.inputs if backfill else {})}
        inputs = render_value(inputs, {"trigger": variables}) if inputs else {}
    except (ConditionError, TemplateError) as exc:
        _record_error(state, f"{where}: {exc}")
        return None
    trigger = {"id": state.trigger_id, "type": SCHEDULE[0], **variables}
    if backfill is not None:
        trigger["backfill"] = backfill.pk
    try:
        execution = start_execution(
            state.flow,
            inputs,
            labels={**schedule.labels, **(backfill.labels if backfill else {})},
            trigger=trigger,
            start_key=key,
        )
    except IntegrityError:  # started already: by another scheduler, or before a crash
        return None
    except (ValueError, PermissionError) as exc:  # InputsError, FlowDisabled, ReservedLabels: the flow's say
        _record_error(state, f"{where}: {exc}")
        return None
    if backfill is None:
        state.last_date, state.last_execution_id = tick, execution.id
        state.last_error, state.error_count = "", 0
    return execution


def _conditions_hold(schedule: ScheduleSpec, variables: dict[str, str | None]) -> bool:
    from flows_app.engine.templating import render
    from flows_app.engine.vocabulary import truthy

    context = {"trigger": variables}
    return schedule_conditions_hold(
        schedule.conditions,
        render=lambda text: render(text, context),
        evaluate_expression=lambda text: truthy(render(text, context)),
    )


def _record_error(state: TriggerState, message: str) -> None:
    logger.warning("%s: %s", state, message)
    state.last_error, state.error_count = message[:2000], state.error_count + 1


# ---- missed ticks ------------------------------------------------------------------------------


def recover_all_missed(now: datetime | None = None) -> int:
    """When a scheduler starts: the ticks missed by more than the grace (while no scheduler ran) go by their
    policy. Ticks within the grace are only late, and fire: another scheduler may be about to send them."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.TERN["SCHEDULE_GRACE_SECONDS"])
    recovered = 0
    for state_id in _overdue(cutoff):
        with transaction.atomic():
            state = TriggerState.objects.select_for_update().select_related("flow").get(pk=state_id)
            flow = state.flow
            spec = spec_of(flow.revisions.defer("source").get(revision=flow.revision))
            trigger = next((t for t in spec.triggers if t.id == state.trigger_id), None)
            before = state.next_date
            recover_missed(state, trigger.spec if trigger else None, cutoff)
            if state.next_date != before:
                state.save(update_fields=["next_date", "updated_at"])
                recovered += 1
    return recovered


def fire_overdue(now: datetime | None = None) -> int:
    """The housekeeping tick's part: triggers whose tick is overdue (its message lost, or a catch-up under
    way) are fired here."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.TERN["TICK_SECONDS"])
    return sum(fire(state_id, now) for state_id in _overdue(cutoff))


def _overdue(before: datetime) -> list[int]:
    return list(
        TriggerState.objects.filter(type=SCHEDULE[0], enabled=True, next_date__lte=before).values_list("pk", flat=True)
    )
