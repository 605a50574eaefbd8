"""Backfills: thousands of a schedule's past ticks, each run once, in order, never more than a few in flight;
paused, resumed, cancelled; previewed; limited to the ticks that have no execution yet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from flows_app.engine.states import State
from flows_app.models import Backfill, Execution, TriggerState
from flows_app.services.flows import save_flow
from flows_app.triggers import backfills
from flows_app.triggers.backfill_runs import advance, advance_all
from flows_app.triggers.backfills import BackfillError, preview, start_backfill
from flows_app.triggers.schedules import fire

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
START = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)  # three days back: 4320 ticks of a minute


def source(cron: str = "* * * * *", extra: str = "", flow_id: str = "filling") -> str:
    return f"""id: {flow_id}
namespace: tests.backfills
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.date }}}}"
triggers:
  - id: every
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "{cron}"
{extra}"""


@pytest.fixture
def now():
    with time_machine.travel(NOW):  # the clock runs from NOW: executions started one after another differ
        yield


def schedule_of(state: TriggerState):
    from flows_app.services.flows import spec_of

    flow = state.flow
    spec = spec_of(flow.revisions.get(revision=flow.revision))
    return next(t.spec for t in spec.triggers if t.id == state.trigger_id)


def saved(cron: str = "* * * * *", extra: str = "", flow_id: str = "filling") -> TriggerState:
    save_flow(source(cron, extra, flow_id))
    return TriggerState.objects.get(flow__flow_id=flow_id)


def end_all(flow_id: str = "filling") -> None:
    """The executions started so far end (no worker runs them in these tests)."""
    Execution.objects.filter(flow__flow_id=flow_id).exclude(state=State.SUCCESS).update(state=State.SUCCESS)


def dates(flow_id: str = "filling") -> list[str]:
    return [e.trigger["date"] for e in Execution.objects.filter(flow__flow_id=flow_id).order_by("created_at", "id")]


def test_thousands_of_ticks_run_once_each_in_order_never_more_than_the_bound_in_flight(now, settings):
    settings.TERN = {**settings.TERN, "BACKFILL_MAX_IN_FLIGHT": 25}
    state = saved()
    backfill = start_backfill(state, schedule_of(state), START, NOW - timedelta(minutes=1))
    assert backfill.total == 4320
    rounds = 0
    while Backfill.objects.get(pk=backfill.pk).state == Backfill.RUNNING:
        advance(backfill.pk)
        advance(backfill.pk)  # a second step at once (another worker): nothing more while 25 are in flight
        in_flight = Execution.objects.filter(flow=state.flow).exclude(state=State.SUCCESS).count()
        assert in_flight <= 25
        end_all()
        rounds += 1
        assert rounds < 400
    started = dates()
    expected = [(START + timedelta(minutes=m)).isoformat().replace("+00:00", "Z") for m in range(4320)]
    assert started == expected  # every tick, once, oldest first
    done = Backfill.objects.get(pk=backfill.pk)
    assert (done.state, done.done, done.started, done.current_date) == (Backfill.DONE, 4320, 4320, None)
    assert all(e.trigger["backfill"] == backfill.pk for e in Execution.objects.all())


def test_a_paused_backfill_starts_nothing_until_it_is_resumed_and_a_cancelled_one_never(now, settings):
    settings.TERN = {**settings.TERN, "BACKFILL_MAX_IN_FLIGHT": 5}
    state = saved()
    backfill = start_backfill(state, schedule_of(state), START, START + timedelta(minutes=59))
    advance(backfill.pk)
    end_all()
    backfills.set_paused(backfill, True)
    assert advance(backfill.pk) == 0 and len(dates()) == 5
    progress = Backfill.objects.get(pk=backfill.pk)
    assert (progress.done, progress.total, progress.current_date) == (5, 60, START + timedelta(minutes=5))
    backfills.set_paused(backfill, False)
    assert advance(backfill.pk) == 5
    end_all()
    backfills.cancel(backfill)
    assert advance(backfill.pk) == 0 and advance_all() == 0 and len(dates()) == 10
    with pytest.raises(BackfillError, match="CANCELLED"):
        backfills.set_paused(backfill, False)


def test_one_backfill_at_a_time_per_trigger_and_its_end_after_its_start(now):
    state = saved()
    start_backfill(state, schedule_of(state), START, NOW)
    with pytest.raises(BackfillError, match="under way"):
        start_backfill(state, schedule_of(state), START, NOW)
    with pytest.raises(BackfillError, match="before the start"):
        start_backfill(saved(flow_id="other"), schedule_of(state), NOW, START)


def test_only_missing_skips_the_ticks_the_schedule_ran_and_the_preview_says_so(now, settings):
    settings.TERN = {**settings.TERN, "BACKFILL_MAX_IN_FLIGHT": 100}
    with time_machine.travel(START - timedelta(seconds=30), tick=False):
        state = saved("*/10 * * * *")
    with time_machine.travel(START + timedelta(minutes=25), tick=False):
        fire(state.pk)  # the schedule ran 12:00, 12:10 and 12:20 itself
    end_all()
    end = START + timedelta(minutes=59)
    everything = preview(schedule_of(state), state, START, end, only_missing=False)
    missing = preview(schedule_of(state), state, START, end, only_missing=True)
    assert (everything.executions, everything.first, everything.last) == (
        6,
        "2026-03-07T12:00:00Z",
        "2026-03-07T12:50:00Z",
    )
    assert (missing.executions, missing.first, missing.last, missing.ticks) == (
        3,
        "2026-03-07T12:30:00Z",
        "2026-03-07T12:50:00Z",
        6,
    )
    backfill = start_backfill(state, schedule_of(state), START, end, only_missing=True)
    advance(backfill.pk)
    assert sorted(dates()) == [f"2026-03-07T12:{m}:00Z" for m in ("00", "10", "20", "30", "40", "50")]
    done = Backfill.objects.get(pk=backfill.pk)
    assert (done.state, done.done, done.started) == (Backfill.DONE, 6, 3)


def test_a_backfill_in_a_time_zone_creates_its_executions(now):
    state = saved("0 9 * * *", "    timezone: America/New_York\n")
    backfill = start_backfill(
        state, schedule_of(state), datetime(2026, 3, 6, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC)
    )
    advance(backfill.pk)
    # 8 March 2026 is spring-forward day in New York: 09:00 EST before, 09:00 EDT after
    assert dates() == [
        "2026-03-06T09:00:00-05:00",
        "2026-03-07T09:00:00-05:00",
        "2026-03-08T09:00:00-04:00",
        "2026-03-09T09:00:00-04:00",
    ]


def test_the_flows_own_backfill_starts_once_however_often_the_flow_is_saved(now, settings):
    settings.TERN = {**settings.TERN, "BACKFILL_MAX_IN_FLIGHT": 3}
    extra = "    backfill:\n      start: 2026-03-10T10:00:00Z\n    inputs: {}\n"
    state = saved("*/15 * * * *", extra)
    save_flow(source("*/15 * * * *", extra).replace("message:", "message: again\n    # "))
    (backfill,) = Backfill.objects.filter(trigger_state=state)
    assert (backfill.start, backfill.total, backfill.origin[:5]) == (datetime(2026, 3, 10, 10, tzinfo=UTC), 9, "flow:")
    assert NOW <= backfill.end < NOW + timedelta(minutes=1)  # no end: up to when the flow was saved
    advance_all()
    assert dates() == ["2026-03-10T10:00:00Z", "2026-03-10T10:15:00Z", "2026-03-10T10:30:00Z"]


def test_backfill_inputs_and_labels_join_the_schedules(now):
    extra = "    inputs:\n      size: 1\n      when: '{{ trigger.date }}'\n    labels:\n      from: schedule\n"
    inputs = "inputs:\n  - id: size\n    type: INT\n  - id: when\n    type: STRING\n"
    save_flow(source("0 * * * *", extra).replace("tasks:", inputs + "tasks:"))
    state = TriggerState.objects.get()
    backfill = start_backfill(state, schedule_of(state), START, START, inputs={"size": 2}, labels={"run": "backfill"})
    advance(backfill.pk)
    (execution,) = Execution.objects.all()
    assert execution.inputs == {"size": 2, "when": "2026-03-07T12:00:00Z"}
    assert execution.labels["from"] == "schedule" and execution.labels["run"] == "backfill"


def test_a_backfill_whose_schedule_is_removed_is_cancelled(now):
    state = saved()
    backfill = start_backfill(state, schedule_of(state), START, NOW)
    save_flow(
        source().replace(
            'triggers:\n  - id: every\n    type: io.kestra.plugin.core.trigger.Schedule\n    cron: "* * * * *"\n', ""
        )
    )
    assert not Backfill.objects.filter(pk=backfill.pk).exists()  # its trigger is gone, and it with it
