"""Kestra's `recoverMissedSchedules` for ticks missed while no scheduler ran or the trigger was disabled:
`ALL` (the default) runs them all, `LAST` the last one, `NONE` none."""

from __future__ import annotations

from datetime import datetime, timedelta

from flows_app.engine.cron import next_tick, previous_tick, zone_of
from flows_app.models import TriggerState
from flows_app.spec.triggers import ScheduleSpec


def recover_missed(state: TriggerState, schedule: object, now: datetime) -> None:
    """Apply the trigger's policy to the ticks it missed up to `now` (it saves nothing itself)."""
    if not isinstance(schedule, ScheduleSpec) or state.next_date is None or state.next_date > now:
        return
    zone = zone_of(schedule.timezone)
    if schedule.recover == "NONE":
        state.next_date = next_tick(schedule.cron, zone, now)
    elif schedule.recover == "LAST":
        last = previous_tick(schedule.cron, zone, now + timedelta(microseconds=1))
        if last is not None and last > state.next_date:
            state.next_date = last
