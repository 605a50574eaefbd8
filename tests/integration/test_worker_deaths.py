"""Workers killed with SIGKILL while they run tasks: every execution still ends as it would have without the
fault. A dead worker's task is resubmitted to a live one, without spending a retry."""

from __future__ import annotations

import random
import time

from flows_app.models import Execution, LogEntry, TaskRun
from flows_app.services.executions import start_execution
from flows_app.services.flows import save_flow
from flows_app.services.housekeeping import tick

from .conftest import wait_until
from .test_celery_runtime import ENDED, runs, start, wait_ended


def test_a_killed_workers_task_goes_on_on_another_worker_without_spending_a_retry(celery_runtime, tmp_path):
    first = celery_runtime.start()
    execution = start("worker-lost.yml", {"marker": str(tmp_path / "marker")})
    wait_until(lambda: (tmp_path / "marker").exists(), what="the long task started on the first worker")
    celery_runtime.kill(first)  # SIGKILL: no goodbye, the message stays unacknowledged
    celery_runtime.start()
    execution = wait_ended(execution, timeout=60, ticking=True)
    long = runs(execution)["long"]
    assert execution.state == "SUCCESS" and long.state == "SUCCESS"
    [attempt] = long.attempts  # no retry spent: the one attempt went on elsewhere
    assert attempt["state"] == "SUCCESS" and [s["worker"].split(":")[-1] for s in attempt["resubmitted"]] == [
        str(first.pid)
    ]
    assert LogEntry.objects.filter(execution=execution, task_id="long", message="again on another worker").exists()
    assert LogEntry.objects.filter(execution=execution, level="WARN", message__contains="sent again").exists()


def test_a_task_that_kills_its_worker_every_time_ends_failed_instead_of_looping(celery_runtime, settings):
    settings.TERN = {**settings.TERN, "MAX_RESUBMITS": 1}
    worker = celery_runtime.start()
    execution = start_execution(
        save_flow("""id: worker-killer
namespace: tests.workers
tasks:
  - id: oom
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - kill -9 $PPID   # as the kernel's OOM killer would: the worker dies with the task
""").flow
    )

    def ended_with_a_worker_alive():
        nonlocal worker
        if worker.poll() is not None:
            worker = celery_runtime.start(wait=False)  # a supervisor restarts the dead worker
        tick()
        execution.refresh_from_db()
        return execution.state in ENDED

    wait_until(ended_with_a_worker_alive, timeout=90, interval=0.2, what="the execution's end")
    oom = runs(execution)["oom"]
    assert execution.state == "FAILED" and oom.state == "FAILED" and len(oom.attempts) == 1
    assert len(oom.attempts[0]["resubmitted"]) == 1
    assert LogEntry.objects.filter(
        execution=execution, level="ERROR", message__contains="already sent again 1 times"
    ).exists()


CHAOS = """id: chaos
namespace: tests.workers
tasks:
  - id: first
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["sleep 1.2", "echo '::{\\"outputs\\":{\\"n\\":1}}::'"]
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: left
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["sleep 1.2"]
      - id: right
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["sleep 1.2"]
  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.first.vars.n }}"
"""


def test_ten_kills_of_two_workers_leave_every_execution_as_it_would_have_ended(celery_runtime, settings):
    # A dead worker's prefetched, unstarted messages come back only when the tick sends old queued runs
    # again: here after 5 s instead of 2 minutes, so the test does not wait for them.
    settings.TERN = {**settings.TERN, "RESEND_AFTER_SECONDS": 5}
    celery_runtime.extra_env["TERN_WORKER_PREFETCH"] = "1"
    workers = [celery_runtime.start(concurrency=4), celery_runtime.start(concurrency=4)]
    flow = save_flow(CHAOS).flow
    executions = [start_execution(flow) for _ in range(100)]
    ids = [e.id for e in executions]
    chance = random.Random(9)

    def a_task_running():
        tick()  # as the scheduler does: dead workers' runs are sent again
        return TaskRun.objects.filter(execution_id__in=ids, state="RUNNING", heartbeat_at__isnull=False).exists()

    for kill in range(10):
        # kill a worker while tasks run, then start another in its place
        wait_until(a_task_running, timeout=60, interval=0.1, what=f"a task running before kill {kill + 1}")
        victim = chance.randrange(len(workers))
        celery_runtime.kill(workers[victim])
        workers[victim] = celery_runtime.start(concurrency=4)
        tick()
        time.sleep(chance.uniform(0.2, 1.0))  # let work move on before the next kill

    def all_ended():
        tick()
        return Execution.objects.filter(id__in=ids, state__in=ENDED).count() == len(ids)

    wait_until(all_ended, timeout=240, interval=0.5, what="the end of the 100 executions")
    states = dict(Execution.objects.filter(id__in=ids).values_list("id", "state"))
    failed = [i for i, state in states.items() if state != "SUCCESS"]
    assert not failed, LogEntry.objects.filter(execution_id__in=failed, level="ERROR").values_list(
        "message", flat=True
    )[:5]
    outputs = Execution.objects.filter(id__in=ids).values_list("task_runs__task_id", "task_runs__outputs")
    assert all(out == {"value": "1"} for task, out in outputs if task == "last")
    resubmitted = sum(
        len(a.get("resubmitted", ()))
        for attempts in TaskRun.objects.filter(execution_id__in=ids).values_list("attempts", flat=True)
        for a in attempts
    )
    assert resubmitted >= 1  # the kills did hit running tasks
    for attempts in TaskRun.objects.filter(execution_id__in=ids).values_list("attempts", flat=True):
        assert len(attempts) == 1  # no task declared a retry, and none was spent
