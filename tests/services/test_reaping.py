"""A worker's death is not the task's failure: the reaper sends the run again, fenced and bounded.

The workers are played by hand here (claims, results); tests/integration/test_worker_deaths.py kills real ones.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from flows_app import dispatch
from flows_app.engine.states import State
from flows_app.models import Execution, LogEntry, TaskRun
from flows_app.services.executions import advance_execution, kill_execution, start_execution
from flows_app.services.flows import save_flow
from flows_app.services.housekeeping import reap_dead_workers
from flows_app.services.reaping import reap_task_run
from flows_app.services.taskruns import Attempt, record_attempt, run_task_run
from flows_app.services.transitions import claim_task_run
from tests.services.test_flows_and_state import Recorder

FLOW = """id: reaped
namespace: tests.reaping
tasks:
  - id: work
    type: io.kestra.plugin.core.debug.Return
    format: done
    retry:
      type: constant
      interval: PT1S
      maxAttempt: 3
"""


@pytest.fixture
def recorder():
    with dispatch.using(Recorder()) as recorder:
        yield recorder


def a_claimed_run(worker: str = "a:1") -> TaskRun:
    """An execution whose one task run a worker claimed, then went silent (no heartbeat for a minute)."""
    execution = start_execution(save_flow(FLOW).flow)
    advance_execution(execution.id)
    run = TaskRun.objects.get(execution=execution)
    assert claim_task_run(run)
    TaskRun.objects.filter(id=run.id).update(worker=worker, heartbeat_at=timezone.now() - timedelta(minutes=1))
    run.refresh_from_db()
    return run


def flow_spec(run: TaskRun):
    from flows_app.services.snapshots import load_snapshot

    return load_snapshot(run.execution).flow


@pytest.mark.django_db(transaction=True)
def test_a_silent_workers_run_is_sent_again_without_spending_a_retry(recorder):
    run = a_claimed_run()
    assert reap_dead_workers(timezone.now()) == 1
    run.refresh_from_db()
    assert run.state == "QUEUED" and run.worker == "" and run.heartbeat_at is None
    [attempt] = run.attempts  # still the first attempt
    assert attempt["state"] == "RESUBMITTED" and [s["worker"] for s in attempt["resubmitted"]] == ["a:1"]
    assert recorder.runs[-1] == run.id  # sent again
    assert LogEntry.objects.filter(task_run_id=run.id, level="WARN", message__contains="sent again").exists()
    # another worker takes it: the same attempt goes on there, and ends it
    assert run_task_run(run.id) is not None
    run.refresh_from_db()
    assert run.state == "SUCCESS" and len(run.attempts) == 1 and run.claim == 2
    assert run.attempts[0]["state"] == "SUCCESS" and len(run.attempts[0]["resubmitted"]) == 1


@pytest.mark.django_db(transaction=True)
def test_a_late_result_of_a_resubmitted_attempt_is_refused(recorder):
    zombie = a_claimed_run()  # what the silent worker holds in memory
    assert reap_task_run(zombie.id)
    taken = TaskRun.objects.get(id=zombie.id)
    assert claim_task_run(taken)  # a live worker has it now
    flow = flow_spec(zombie)
    record_attempt(zombie, flow, flow.task("work"), Attempt(State.FAILED), advance=True)  # the zombie answers
    taken.refresh_from_db()
    assert taken.state == "RUNNING" and taken.claim == zombie.claim + 1  # the live worker's attempt stands
    assert LogEntry.objects.filter(task_run_id=zombie.id, level="WARN", message__contains="was refused").exists()


@pytest.mark.django_db(transaction=True)
def test_a_zombies_heartbeat_does_not_keep_the_new_attempt_alive(recorder):
    from flows_app.services.taskruns import Heartbeat

    zombie = a_claimed_run()
    assert reap_task_run(zombie.id)
    taken = TaskRun.objects.get(id=zombie.id)
    assert claim_task_run(taken)
    TaskRun.objects.filter(id=zombie.id).update(heartbeat_at=None)
    assert Heartbeat(zombie.id, zombie.claim).beat() is False
    assert TaskRun.objects.get(id=zombie.id).heartbeat_at is None
    assert Heartbeat(zombie.id, taken.claim).beat() is True  # the live worker's beat counts
    assert TaskRun.objects.get(id=zombie.id).heartbeat_at is not None


@pytest.mark.django_db(transaction=True)
def test_a_task_that_keeps_killing_its_worker_fails_after_the_bound(recorder, settings):
    settings.TERN = {**settings.TERN, "MAX_RESUBMITS": 2}
    run = a_claimed_run()
    for _ in range(2):
        assert reap_task_run(run.id)
        run = TaskRun.objects.get(id=run.id)
        assert run.state == "QUEUED"
        assert claim_task_run(run)
        TaskRun.objects.filter(id=run.id).update(heartbeat_at=timezone.now() - timedelta(minutes=1))
        run.refresh_from_db()
    assert reap_task_run(run.id)  # the third death: the attempt counts as failed, the retry policy decides
    run.refresh_from_db()
    assert run.state == "RETRYING" and run.attempts[0]["state"] == "FAILED"
    assert len(run.attempts[0]["resubmitted"]) == 2
    message = LogEntry.objects.filter(task_run_id=run.id, level="ERROR").values_list("message", flat=True).get()
    assert "already sent again 2 times" in message and "counts as failed" in message


@pytest.mark.django_db(transaction=True)
def test_nothing_is_sent_again_into_an_execution_being_killed(recorder):
    run = a_claimed_run()
    assert kill_execution(run.execution_id)
    sent = list(recorder.runs)
    assert reap_task_run(run.id)
    run.refresh_from_db()
    assert run.state == "KILLED" and recorder.runs == sent
    assert Execution.objects.get(id=run.execution_id).state == "KILLED"


@pytest.mark.django_db(transaction=True)
def test_a_queued_run_of_a_killed_execution_is_not_claimed(recorder):
    execution = start_execution(save_flow(FLOW).flow)
    advance_execution(execution.id)
    run = TaskRun.objects.get(execution=execution)
    Execution.objects.filter(id=execution.id).update(state="KILLING")  # the kill's advance has not run yet
    assert run_task_run(run.id) is None
    assert TaskRun.objects.get(id=run.id).state == "QUEUED"  # the kill's advance will end it
