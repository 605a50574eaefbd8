"""A WorkingDirectory's children stay on the worker that holds their directory, as on separate machines."""

from __future__ import annotations

import socket

from flows_app.models import TaskRun
from flows_app.services.executions import start_execution
from flows_app.services.flows import save_flow

from .conftest import wait_until
from .test_celery_runtime import runs, wait_ended

FLOW = """id: shared-dir
namespace: tests.workers
tasks:
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: make
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo made > made.txt
      - id: flaky
        type: io.kestra.plugin.scripts.shell.Commands
        retry:
          type: constant
          interval: PT1S
          maxAttempt: 4
        commands:
          - cat made.txt
          - echo x >> tries.txt
          - test "$(wc -l < tries.txt)" -ge 3
      - id: last
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo "::{\\"outputs\\":{\\"tries\\":$(wc -l < tries.txt)}}::"
"""


def test_children_and_their_retries_run_where_the_directory_is(celery_runtime, tmp_path):
    """Worker A runs the first children, then stops serving the shared queue and B starts serving it:
    the retries of `flaky` must still reach A, through A's own queue, or made.txt is not there."""
    from orchestrator.celery import app

    # Each worker has a working-directory root of its own, as if on another machine.
    celery_runtime.extra_env["TERN_WORK_DIR"] = str(tmp_path / "work-a")
    celery_runtime.start(concurrency=4)
    celery_runtime.extra_env["TERN_WORK_DIR"] = str(tmp_path / "work-b")
    celery_runtime.start(queues="tern.idle", concurrency=4)
    execution = start_execution(save_flow(FLOW).flow)
    wait_until(
        lambda: TaskRun.objects.filter(execution=execution, task_id="flaky", state="RETRYING").exists(),
        what="flaky's first failure",
    )
    host = socket.gethostname()
    app.control.cancel_consumer("tern", destination=[f"w0@{host}"], reply=True)
    app.control.add_consumer("tern", destination=[f"w1@{host}"], reply=True)

    execution = wait_ended(execution, timeout=60)
    by_task = runs(execution)
    assert execution.state == "SUCCESS", {t: r.state for t, r in by_task.items()}
    assert len(by_task["flaky"].attempts) == 3  # two retries, sent at their time by an advance message
    assert by_task["last"].outputs["vars"] == {"tries": 3}
    children = TaskRun.objects.filter(execution=execution, parent_id=by_task["wd"].id)
    assert {c.worker for c in children} == {by_task["make"].worker}
    assert by_task["wd"].worker == f"w0@{host}"  # pinned to A (and routed to its own queue)
    assert list(tmp_path.glob("work-*/*/shared-*")) == []  # removed when the WorkingDirectory ended
