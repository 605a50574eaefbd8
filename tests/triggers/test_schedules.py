"""Schedule triggers: their state and Beat row kept in step with the flow, and each tick started once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import transaction
from django_celery_beat.models import PeriodicTask

from flows_app.models import Execution, Flow, TriggerState
from flows_app.services.flows import delete_flow, save_flow, set_disabled
from flows_app.triggers import control, schedules
from flows_app.triggers.schedules import fire, recover_all_missed

pytestmark = pytest.mark.django_db

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday


def flow_source(trigger: str, flow_id: str = "ticking", inputs: str = "") -> str:
    return f"""id: {flow_id}
namespace: tests.triggers
{inputs}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.date }}}}"
triggers:
{trigger}
"""


EVERY_15 = """  - id: quarter
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "*/15 * * * *"
"""


def state_of(flow_id: str = "ticking", trigger_id: str = "quarter") -> TriggerState:
    return TriggerState.objects.get(flow__flow_id=flow_id, trigger_id=trigger_id)


def ticks_started(flow_id: str = "ticking") -> list[str]:
    return [e.trigger["date"] for e in Execution.objects.filter(flow__flow_id=flow_id).order_by("created_at")]


@time_machine.travel(NOON + timedelta(minutes=5), tick=False)
def test_saving_a_flow_makes_its_schedule_a_beat_row_and_a_state_that_ticks_from_now():
    save_flow(flow_source(EVERY_15))
    state = state_of()
    assert state.enabled and state.next_date == NOON + timedelta(minutes=15)
    task = state.periodic_task
    assert task.task == "tern.schedule" and task.enabled and json.loads(task.args) == [state.pk]
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("*/15", "*", "UTC")
    assert json.loads(task.kwargs) == {"cron": "*/15 * * * *", "withSeconds": False, "timezone": "UTC"}


def test_a_flow_that_fails_to_save_leaves_no_schedule_behind():
    with pytest.raises(RuntimeError), transaction.atomic():
        save_flow(flow_source(EVERY_15))
        raise RuntimeError("the request fails after the save")
    assert not Flow.objects.exists() and not TriggerState.objects.exists() and not PeriodicTask.objects.exists()


@time_machine.travel(NOON + timedelta(minutes=5), tick=False)
def test_disabling_deleting_and_restoring_the_flow_keeps_the_beat_row_in_step():
    saved = save_flow(flow_source(EVERY_15))
    set_disabled(saved.flow, True)
    assert not state_of().enabled and not state_of().periodic_task.enabled
    set_disabled(Flow.objects.get(), False)
    assert state_of().enabled and state_of().periodic_task.enabled
    delete_flow(Flow.objects.get())
    assert not TriggerState.objects.exists() and not PeriodicTask.objects.filter(task="tern.schedule").exists()
    save_flow(flow_source(EVERY_15))  # the same source again: the flow is back, and so is its schedule
    assert state_of().enabled and state_of().periodic_task.enabled


@time_machine.travel(NOON + timedelta(minutes=5), tick=False)
def test_a_trigger_disabled_in_the_flow_or_removed_from_it_stops():
    save_flow(flow_source(EVERY_15))
    save_flow(flow_source(EVERY_15 + "    disabled: true\n"))
    assert not state_of().enabled and not state_of().periodic_task.enabled
    save_flow(flow_source(EVERY_15.replace("quarter", "other")))
    assert [s.trigger_id for s in TriggerState.objects.all()] == ["other"]
    assert list(PeriodicTask.objects.filter(task="tern.schedule").values_list("name", flat=True)) == [
        "tern schedule tests.triggers.ticking.other"
    ]


def test_a_changed_cron_ticks_anew_from_now_and_an_unchanged_one_keeps_its_place():
    with time_machine.travel(NOON + timedelta(minutes=5), tick=False):
        save_flow(flow_source(EVERY_15))
    with time_machine.travel(NOON + timedelta(minutes=40), tick=False):
        save_flow(flow_source(EVERY_15).replace("{{ trigger.date }}", "{{ trigger.next }}"))  # a new revision
        assert state_of().next_date == NOON + timedelta(minutes=15)  # unchanged: its due ticks still run
        save_flow(flow_source(EVERY_15.replace("*/15", "*/20")))
        assert state_of().next_date == NOON + timedelta(minutes=60)
        assert state_of().periodic_task.crontab.minute == "*/20"


def test_each_tick_starts_one_execution_with_its_dates_however_often_it_is_fired():
    with time_machine.travel(NOON - timedelta(minutes=1), tick=False):
        save_flow(flow_source(EVERY_15))
    with time_machine.travel(NOON, tick=False):
        assert fire(state_of().pk) == 1
        assert fire(state_of().pk) == 0  # a duplicated message, a second scheduler
    (execution,) = Execution.objects.all()
    assert execution.trigger == {
        "id": "quarter",
        "type": "io.kestra.plugin.core.trigger.Schedule",
        "date": "2026-03-02T12:00:00Z",
        "next": "2026-03-02T12:15:00Z",
        "previous": "2026-03-02T11:45:00Z",
    }
    assert state_of().next_date == NOON + timedelta(minutes=15)
    assert state_of().last_execution_id == execution.id and state_of().last_date == NOON


def test_a_tick_already_started_is_not_started_again_even_when_the_state_forgets_it():
    with time_machine.travel(NOON - timedelta(minutes=1), tick=False):
        save_flow(flow_source(EVERY_15))
    with time_machine.travel(NOON, tick=False):
        fire(state_of().pk)
        TriggerState.objects.update(next_date=NOON)  # a stale copy of the state: another scheduler's view
        assert fire(state_of().pk) == 0
    assert Execution.objects.count() == 1 and state_of().next_date == NOON + timedelta(minutes=15)


def test_late_ticks_all_start_in_order_and_a_long_catch_up_goes_by_bounded_steps(monkeypatch):
    monkeypatch.setattr(schedules, "PER_CALL", 2)
    with time_machine.travel(NOON - timedelta(minutes=1), tick=False):
        save_flow(flow_source(EVERY_15))
    with time_machine.travel(NOON + timedelta(minutes=46), tick=False):
        assert fire(state_of().pk) == 2
        assert fire(state_of().pk) == 2
        assert fire(state_of().pk) == 0
    assert ticks_started() == [
        "2026-03-02T12:00:00Z",
        "2026-03-02T12:15:00Z",
        "2026-03-02T12:30:00Z",
        "2026-03-02T12:45:00Z",
    ]


def test_a_tick_later_than_late_maximum_delay_is_skipped():
    trigger = EVERY_15 + "    lateMaximumDelay: PT5M\n"
    with time_machine.travel(NOON - timedelta(minutes=1), tick=False):
        save_flow(flow_source(trigger))
    with time_machine.travel(NOON + timedelta(minutes=17), tick=False):
        assert fire(state_of().pk) == 1
    assert ticks_started() == ["2026-03-02T12:15:00Z"]


@pytest.mark.parametrize(
    ("policy", "started"),
    [
        ("ALL", ["2026-03-02T12:00:00Z", "2026-03-02T12:15:00Z", "2026-03-02T12:30:00Z"]),
        ("LAST", ["2026-03-02T12:30:00Z"]),
        ("NONE", []),
    ],
)
def test_ticks_missed_while_no_scheduler_ran_go_by_the_recovery_policy(settings, policy, started):
    settings.TERN = {**settings.TERN, "SCHEDULE_GRACE_SECONDS": 10}
    with time_machine.travel(NOON - timedelta(minutes=1), tick=False):
        save_flow(flow_source(EVERY_15 + f"    recoverMissedSchedules: {policy}\n"))
    with time_machine.travel(NOON + timedelta(minutes=40), tick=False):
        recover_all_missed()
        fire(state_of().pk)
    assert ticks_started() == started
    assert state_of().next_date == NOON + timedelta(minutes=45)


def test_a_tick_within_the_grace_is_late_not_missed_when_a_scheduler_starts(settings):
    settings.TERN = {**settings.TERN, "SCHEDULE_GRACE_SECONDS": 10}
    with time_machine.travel(NOON - timedelta(minutes=1), tick=False):
        save_flow(flow_source(EVERY_15 + "    recoverMissedSchedules: NONE\n"))
    with time_machine.travel(NOON + timedelta(seconds=5), tick=False):
        recover_all_missed()  # another scheduler may be sending this tick right now
        fire(state_of().pk)
    assert ticks_started() == ["2026-03-02T12:00:00Z"]


@pytest.mark.parametrize(("policy", "count"), [("ALL", 3), ("LAST", 1), ("NONE", 0)])
def test_an_operator_who_enables_a_trigger_again_gets_its_missed_ticks_by_the_policy(policy, count):
    with time_machine.travel(NOON - timedelta(minutes=1), tick=False):
        save_flow(flow_source(EVERY_15 + f"    recoverMissedSchedules: {policy}\n"))
        control.set_disabled(state_of(), True)
    assert not state_of().periodic_task.enabled
    with time_machine.travel(NOON + timedelta(minutes=40), tick=False):
        assert fire(state_of().pk) == 0  # disabled: a message still in flight starts nothing
        control.set_disabled(state_of(), False)
        fire(state_of().pk)
    assert len(ticks_started()) == count and state_of().periodic_task.enabled


def test_a_flow_disabled_then_enabled_follows_the_policy_too():
    with time_machine.travel(NOON - timedelta(minutes=1), tick=False):
        saved = save_flow(flow_source(EVERY_15 + "    recoverMissedSchedules: NONE\n"))
        set_disabled(saved.flow, True)
    with time_machine.travel(NOON + timedelta(minutes=40), tick=False):
        set_disabled(Flow.objects.get(), False)
        fire(state_of().pk)
    assert ticks_started() == [] and state_of().next_date == NOON + timedelta(minutes=45)


def test_conditions_keep_only_the_ticks_they_allow():
    trigger = """  - id: quarter
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 11 * * *"
    conditions:
      - type: io.kestra.plugin.core.condition.DayWeek
        dayOfWeek: WEDNESDAY
"""
    with time_machine.travel(NOON - timedelta(days=1), tick=False):
        save_flow(flow_source(trigger))
    with time_machine.travel(NOON + timedelta(days=6), tick=False):
        fire(state_of().pk)
    assert ticks_started() == ["2026-03-04T11:00:00Z"]


def test_the_schedule_gives_its_inputs_and_labels_and_a_refused_tick_is_the_triggers_error():
    trigger = EVERY_15 + "    inputs:\n      size: '{size}'\n    labels:\n      team: data\n"
    inputs = "inputs:\n  - id: size\n    type: INT\n"
    with time_machine.travel(NOON - timedelta(minutes=1), tick=False):
        save_flow(flow_source(trigger.format(size="big"), inputs=inputs))
    with time_machine.travel(NOON, tick=False):
        assert fire(state_of().pk) == 0
    state = state_of()
    assert "size" in state.last_error and state.error_count == 1 and state.next_date == NOON + timedelta(minutes=15)
    with time_machine.travel(NOON + timedelta(minutes=15), tick=False):
        save_flow(flow_source(trigger.format(size="3"), inputs=inputs))
        assert fire(state_of().pk) == 1
    (execution,) = Execution.objects.all()
    assert execution.inputs == {"size": 3} and execution.labels["team"] == "data"
    assert state_of().last_error == "" and state_of().error_count == 0


def test_a_schedule_in_a_time_zone_gives_its_dates_in_that_zone():
    trigger = EVERY_15.replace('"*/15 * * * *"', '"30 2 * * *"') + "    timezone: Europe/Paris\n"
    with time_machine.travel(datetime(2026, 3, 28, 12, 0, tzinfo=UTC), tick=False):
        save_flow(flow_source(trigger))
    with time_machine.travel(datetime(2026, 3, 30, 12, 0, tzinfo=UTC), tick=False):
        fire(state_of().pk)
    # 29 March 2026 is spring-forward day in Paris: 02:30 does not exist, so it runs at 03:00 CEST
    assert ticks_started() == ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]


def test_the_housekeeping_tick_fires_a_schedule_whose_message_was_lost():
    with time_machine.travel(NOON - timedelta(minutes=1), tick=False):
        save_flow(flow_source(EVERY_15))
    with time_machine.travel(NOON + timedelta(seconds=2), tick=False):
        assert schedules.fire_overdue() == 0  # not overdue yet: Beat's message is on its way
    with time_machine.travel(NOON + timedelta(seconds=30), tick=False):
        assert schedules.fire_overdue() == 1
    assert ticks_started() == ["2026-03-02T12:00:00Z"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("ended", "stopped"), [("FAILED", True), ("SUCCESS", False)])
def test_stop_after_disables_the_trigger_when_its_execution_ends_so(ended, stopped):
    from flows_app import dispatch
    from flows_app.engine.states import State
    from flows_app.services.transitions import move_execution
    from tests.services.test_flows_and_state import Recorder

    with dispatch.using(Recorder()):
        with time_machine.travel(NOON - timedelta(minutes=1), tick=False):
            save_flow(flow_source(EVERY_15 + "    stopAfter: [FAILED]\n"))
        with time_machine.travel(NOON, tick=False):
            fire(state_of().pk)
        execution = Execution.objects.get()
        move_execution(execution, State.RUNNING)
        move_execution(Execution.objects.get(), State(ended))
    state = state_of()
    assert (state.disabled, state.enabled, state.periodic_task.enabled) == (
        (True, False, False) if stopped else (None, True, True)
    )


def test_a_flow_saved_before_trigger_states_existed_gets_its_schedule_when_the_scheduler_starts():
    with time_machine.travel(NOON - timedelta(minutes=1), tick=False):
        save_flow(flow_source(EVERY_15))
        TriggerState.objects.all().delete()  # as an upgraded database has it
        PeriodicTask.objects.filter(task="tern.schedule").delete()
        save_flow(flow_source("", flow_id="plain").replace("triggers:\n", ""))
        assert control.sync_missing_states() == 1
        assert control.sync_missing_states() == 0  # once is enough
    assert state_of().next_date == NOON and state_of().periodic_task.enabled


def test_a_tick_never_starts_before_its_date_and_one_just_ahead_is_waited_for():
    every_second = """  - id: quarter
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * * *"
    withSeconds: true
"""
    with time_machine.travel(NOON - timedelta(seconds=5), tick=False):
        save_flow(flow_source(every_second))
    with time_machine.travel(NOON - timedelta(seconds=4, milliseconds=300), tick=False):
        # this worker's clock is 0.3 s behind the scheduler that sent 11:59:56: it waits, then starts that one
        assert fire(state_of().pk) == 1
    assert ticks_started() == ["2026-03-02T11:59:56Z"]
    assert state_of().next_date == NOON - timedelta(seconds=3)


def test_a_failing_housekeeping_step_does_not_starve_the_others(monkeypatch, caplog):
    from flows_app import tasks
    from flows_app.triggers import backfill_runs

    ran = []

    def broken():
        raise RuntimeError("a schedule that cannot be read")

    monkeypatch.setattr(schedules, "fire_overdue", broken)
    monkeypatch.setattr(backfill_runs, "advance_all", lambda: ran.append("backfills"))
    tasks.tick()
    assert ran == ["backfills"]
    assert "housekeeping: broken failed" in caplog.text
