"""A flow's triggers kept in step with its latest revision: one TriggerState per trigger, and for each
Schedule one django-celery-beat PeriodicTask, so Celery Beat drives it and an operator sees it in the admin.

`sync_flow_triggers` runs inside the transaction that saves, disables or deletes the flow: the rows and the
flow change together or not at all.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from django.utils import timezone

from flows_app.engine.cron import next_tick, zone_of
from flows_app.models import Flow, TriggerState
from flows_app.spec.event_triggers import EVENT_TYPES
from flows_app.spec.model import FlowSpec, TriggerSpec
from flows_app.spec.triggers import SCHEDULE

from .backfills import backfill_from_flow
from .recovery import recover_missed

SCHEDULE_TASK = "tern.schedule"
NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def sync_flow_triggers(flow: Flow, spec: FlowSpec | None, now: datetime | None = None) -> None:
    """Make the flow's trigger states and Beat rows match `spec` (None: the flow is deleted, so it has none).
    Must run inside the transaction that changes the flow.

    1. a trigger no longer in the flow (or whose type changed) loses its state and its Beat row;
    2. a new Schedule, or one whose cron or time zone changed, ticks from now on (a backfill runs the past);
    3. a trigger that fires again after it was disabled recovers its missed ticks by its policy;
    4. a Schedule's own `backfill` starts, once."""
    now = now or timezone.now()
    wanted = {t.id: t for t in (spec.triggers if spec is not None else ())}
    states = {s.trigger_id: s for s in TriggerState.objects.select_for_update().filter(flow=flow)}
    for trigger_id, state in states.items():
        if trigger_id not in wanted or wanted[trigger_id].type != state.type:
            _delete(state)
    for trigger in wanted.values():
        state = states.get(trigger.id)
        if state is not None and state.type != trigger.type:
            state = None
        fingerprint = _fingerprint(trigger)
        enabled = fires(flow, spec, trigger, state)
        if state is None:
            state = TriggerState(flow=flow, trigger_id=trigger.id, type=trigger.type)
        was_enabled = state.pk is not None and state.enabled
        if state.pk is None or state.fingerprint != fingerprint:
            state.next_date = _first_tick(trigger, now)
        elif enabled and not was_enabled:
            recover_missed(state, trigger.spec, now)
        state.fingerprint, state.enabled = fingerprint, enabled
        state.save()
        _keep_beat_row(state, trigger, flow)
        if trigger.type == SCHEDULE[0] and trigger.spec is not None:
            backfill_from_flow(state, trigger.spec)


def fires(flow: Flow, spec: FlowSpec | None, trigger: TriggerSpec, state: TriggerState | None) -> bool:
    """An operator's choice wins; otherwise the trigger fires unless it or its flow is disabled (or gone)."""
    if flow.deleted or spec is None:
        return False
    if state is not None and state.disabled is not None:
        return not state.disabled
    return not (trigger.disabled or spec.disabled)


def _first_tick(trigger: TriggerSpec, now: datetime) -> datetime | None:
    if trigger.type != SCHEDULE[0] or trigger.spec is None:
        return None
    return next_tick(trigger.spec.cron, zone_of(trigger.spec.timezone), now)


def _fingerprint(trigger: TriggerSpec) -> str:
    """What a running trigger depends on: when it changes, its dates start anew (a Schedule) or `tern
    triggers` reconnects it with its new properties (a polling or realtime trigger)."""
    if trigger.type in EVENT_TYPES:
        text = json.dumps([trigger.type, trigger.properties], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()
    if trigger.type != SCHEDULE[0] or trigger.spec is None:
        return ""
    schedule = trigger.spec
    text = json.dumps([schedule.cron.expression, schedule.cron.with_seconds, schedule.timezone])
    return hashlib.sha256(text.encode()).hexdigest()


def _delete(state: TriggerState) -> None:
    if state.periodic_task_id is not None:
        state.periodic_task.delete()
    state.delete()


def _keep_beat_row(state: TriggerState, trigger: TriggerSpec, flow: Flow) -> None:
    """A Schedule's PeriodicTask: enabled as the trigger fires. Its crontab is what the admin shows; the ticks
    themselves Tern computes from the cron, which `kwargs` carries whole (seconds, `L`, `#`, time zones)."""
    from django_celery_beat.models import PeriodicTask

    if trigger.type != SCHEDULE[0] or trigger.spec is None:
        return
    schedule = trigger.spec
    name = f"tern schedule {flow.namespace}.{flow.flow_id}.{trigger.id}"
    if len(name) > 190:
        name = f"{name[:170]}… #{state.pk}"
    fields = {
        "name": name,
        "task": SCHEDULE_TASK,
        "crontab": _crontab(schedule),
        "interval": None,
        "args": json.dumps([state.pk]),
        "kwargs": json.dumps(
            {"cron": schedule.cron.expression, "withSeconds": schedule.cron.with_seconds, "timezone": schedule.timezone}
        ),
        "enabled": state.enabled,
        "description": f"Tern Schedule trigger: cron '{schedule.cron.expression}'"
        f"{' (with seconds)' if schedule.cron.with_seconds else ''} in {schedule.timezone}. "
        "Tern computes the ticks from the cron itself: edit the flow, not this row.",
    }
    task = state.periodic_task
    if task is None:
        task = PeriodicTask.objects.filter(name=name).first() or PeriodicTask(name=name)
    changed = task.pk is None or any(getattr(task, key) != value for key, value in fields.items())
    if changed:
        for key, value in fields.items():
            setattr(task, key, value)
        task.save()  # its signal marks the schedule changed, so a running Beat reloads it
    if state.periodic_task_id != task.pk:
        state.periodic_task = task
        state.save(update_fields=["periodic_task", "updated_at"])


def _crontab(schedule) -> object:
    """The cron's minute-level fields as a CrontabSchedule in the trigger's zone, when Celery can read them;
    otherwise every field `*` (the description says the real cron)."""
    from celery.schedules import crontab
    from django_celery_beat.models import CrontabSchedule

    expression = NICKNAMES.get(schedule.cron.expression.strip(), schedule.cron.expression)
    fields = expression.split()[-5:]  # with seconds, the first of six is left out
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        crontab(minute, hour, day_of_week, day_of_month, month_of_year)
        fits = all(len(f) <= size for f, size in zip(fields, (240, 96, 124, 64, 64), strict=True))
    except (ValueError, TypeError, KeyError, IndexError):
        fits = False
    if not fits:
        minute = hour = day_of_month = month_of_year = day_of_week = "*"
    found, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
        timezone=schedule.timezone,
    )
    return found
