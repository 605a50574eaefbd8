"""Executions carried by real Celery worker processes over a real Redis."""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from pathlib import Path

from flows_app.models import Execution, LogEntry, TaskRun
from flows_app.services.executions import start_execution
from flows_app.services.flows import save_flow
from flows_app.services.housekeeping import tick

from .conftest import wait_until

FLOWS = Path(__file__).resolve().parents[1] / "fixtures" / "flows" / "valid"
ENDED = {"SUCCESS", "WARNING", "FAILED", "KILLED"}


def start(name: str, inputs=None) -> Execution:
    saved = save_flow((FLOWS / name).read_text())
    return start_execution(saved.flow, inputs or {})


def wait_ended(execution: Execution, timeout: float = 60, ticking: bool = False) -> Execution:
    """Wait until the execution ends; `ticking` also plays the scheduler's housekeeping tick."""

    def ended():
        if ticking:
            tick()
        execution.refresh_from_db()
        return execution.state in ENDED

    wait_until(ended, timeout=timeout, interval=0.2 if ticking else 0.05, what=f"end of {execution.id}")
    return execution


def runs(execution: Execution) -> dict[str, TaskRun]:
    return {r.task_id: r for r in execution.task_runs.all()}


def test_a_sequential_flow_runs_on_a_worker_and_passes_outputs(celery_runtime):
    worker = celery_runtime.start()
    execution = wait_ended(start("sequential.yml"))
    assert execution.state == "SUCCESS"
    assert runs(execution)["second"].outputs == {"value": "one two"}
    assert LogEntry.objects.filter(execution=execution, task_id="say", message__startswith="one two").count() == 1
    assert runs(execution)["first"].worker.endswith(str(worker.pid))


def test_a_parallel_block_runs_its_children_side_by_side_then_joins(celery_runtime):
    celery_runtime.start(concurrency=8)
    started = time.monotonic()
    execution = wait_ended(start("parallel-join.yml"))
    assert execution.state == "SUCCESS"
    children = [runs(execution)[t] for t in ("p1", "p2", "p3", "p4")]
    assert max(c.started_at for c in children) < min(c.ended_at for c in children)  # they overlapped
    assert runs(execution)["join"].outputs == {"value": "0"}
    assert time.monotonic() - started < 3.5  # four 1 s sleeps, side by side


def test_a_failure_runs_the_errors_branch_on_a_worker(celery_runtime):
    celery_runtime.start()
    execution = wait_ended(start("errors-branch.yml"))
    assert execution.state == "FAILED"
    assert runs(execution)["handler"].state == "SUCCESS" and "never" not in runs(execution)


def test_retries_wait_their_interval_between_attempts(celery_runtime):
    celery_runtime.start()
    execution = wait_ended(start("retry-exhausted.yml"))
    flaky = runs(execution)["flaky"]
    assert execution.state == "FAILED" and flaky.state == "FAILED" and len(flaky.attempts) == 3
    starts = [datetime.fromisoformat(a["startDate"]) for a in flaky.attempts]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert all(gap >= 0.2 for gap in gaps), gaps


def test_a_timeout_kills_a_sleeping_shell_task_on_the_worker(celery_runtime):
    celery_runtime.start()
    started = time.monotonic()
    execution = wait_ended(start("timeout.yml"), timeout=30)
    assert execution.state == "FAILED" and runs(execution)["slow"].state == "FAILED"
    assert time.monotonic() - started < 10


def test_every_message_sent_twice_still_runs_each_task_once(celery_runtime):
    from flows_app import dispatch
    from tests.integration.doubling import DoublingDispatcher

    celery_runtime.extra_env["TERN_DISPATCHER"] = "tests.integration.doubling.DoublingDispatcher"
    celery_runtime.start()
    with dispatch.using(DoublingDispatcher()):
        execution = wait_ended(start("parallel.yml"))
    assert execution.state == "SUCCESS"
    for run in execution.task_runs.all():
        assert len(run.attempts) == 1, run.task_id
    assert execution.task_runs.count() == 7
    assert LogEntry.objects.filter(execution=execution, task_id="a", level="INFO").count() == 1


def test_log_lines_are_published_to_redis_for_live_viewers(celery_runtime, redis_url):
    import json

    from orchestrator.embedded_redis import client

    celery_runtime.start()
    listener = client(redis_url).pubsub()
    listener.psubscribe("tern:logs:*")
    wait_until(lambda: listener.get_message(timeout=0.1), what="subscription confirmed")
    execution = wait_ended(start("sequential.yml"))
    received = []

    def heard_say():
        message = listener.get_message(timeout=0.1)
        if message and message["type"] == "pmessage":
            assert message["channel"].decode() == f"tern:logs:{execution.id}"
            received.extend(json.loads(message["data"]))
        return any(line["taskId"] == "say" for line in received)

    wait_until(heard_say, timeout=10, what="the published log line")
    line = next(line for line in received if line["taskId"] == "say")
    assert line["message"] == "one two from say in tests.engine.sequential" and line["level"] == "INFO"
    listener.close()


def test_a_pause_timer_kept_in_the_database_resumes_the_execution_on_a_worker(celery_runtime):
    celery_runtime.start()
    started = time.monotonic()
    execution = wait_ended(start("pause-delay.yml"), timeout=30)
    assert execution.state == "SUCCESS" and time.monotonic() - started >= 0.5
    assert runs(execution)["inside"].state == "SUCCESS"


def test_a_subflow_runs_its_child_execution_on_the_workers(celery_runtime):
    celery_runtime.start()
    subflows = FLOWS.parent / "subflows"
    save_flow((subflows / "child.yml").read_text())
    parent = start_execution(save_flow((subflows / "parent.yml").read_text()).flow)
    parent = wait_ended(parent)
    assert parent.state == "SUCCESS"
    child = Execution.objects.get(parent=parent)
    assert child.state == "SUCCESS" and runs(parent)["call"].outputs["executionId"] == child.id
