"""The snapshot's run cache: what it returns is always what a full read of the database returns."""

from __future__ import annotations

import pytest

from flows_app import dispatch
from flows_app.models import TaskRun
from flows_app.services.executions import start_execution
from flows_app.services.flows import save_flow, spec_of
from flows_app.services.snapshots import EndedRuns, load_runs

from .test_flows_and_state import Recorder

FLOW = """id: cached
namespace: tests.snapshots
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b", "c"]
    tasks:
      - id: item
        type: io.kestra.plugin.core.log.Log
        message: "{{ taskrun.value }}"
  - id: child
    type: io.kestra.plugin.core.flow.Subflow
    namespace: tests.snapshots
    flowId: another
    wait: false
"""


@pytest.mark.django_db
def test_every_read_through_the_cache_equals_a_full_read():
    with dispatch.using(Recorder()):
        execution = start_execution(save_flow(FLOW).flow)
    flow = spec_of(execution.flow_revision)
    cache = EndedRuns()

    def run(task_id, value, state, order, **fields):
        return TaskRun.objects.create(
            execution=execution, task_id=task_id, value=value, state=state, order=order, **fields
        )

    def same() -> bool:
        return cache.load(execution.id, flow) == load_runs(execution.id)

    each = run("each", None, "RUNNING", 0)
    a = run("item", "a", "SUCCESS", 1, parent_id=each.id)
    b = run("item", "b", "RUNNING", 2, parent_id=each.id)
    assert same()
    TaskRun.objects.filter(id=b.id).update(state="SUCCESS", outputs={"x": 1})  # ended since the last read
    run("item", "c", "QUEUED", 3, parent_id=each.id)  # created since
    assert same()
    TaskRun.objects.filter(id=a.id).update(state="RUNNING")  # an ended run started again (a restart)
    assert same()
    TaskRun.objects.filter(id=a.id).update(state="FAILED", outputs={"again": True})
    assert same()
    child = run("child", None, "SUCCESS", 4, outputs={"executionId": "x"})
    assert same()
    TaskRun.objects.filter(id=child.id).update(outputs={"executionId": "x", "state": "SUCCESS"})  # after its end
    assert same()
    TaskRun.objects.filter(id=each.id).update(state="SUCCESS")
    assert same()
    # kept: the ended loop and two items; not the queued item, nor the Subflow run (written after its end)
    assert set(cache.entries[execution.id][0]) == {each.id, a.id, b.id}


@pytest.mark.django_db
def test_the_cache_keeps_only_the_last_executions():
    cache = EndedRuns(executions=2)
    with dispatch.using(Recorder()):
        executions = [start_execution(save_flow(FLOW).flow) for _ in range(3)]
    flow = spec_of(executions[0].flow_revision)
    for execution in executions:
        cache.load(execution.id, flow)
    assert list(cache.entries) == [executions[1].id, executions[2].id]


@pytest.mark.django_db
def test_runs_read_with_plain_sql_match_the_rows():
    from django.utils import timezone

    with dispatch.using(Recorder()):
        execution = start_execution(save_flow(FLOW).flow)
    now = timezone.now()
    row = TaskRun.objects.create(
        execution=execution,
        task_id="each",
        value="v",
        state="RETRYING",
        order=7,
        attempts=[{"state": "FAILED"}, {"state": "FAILED"}],
        outputs={"a": [1, "b"]},
        started_at=now,
        next_attempt_at=now,
    )
    (read,) = load_runs(execution.id)
    assert (read.id, read.task_id, read.parent_id, read.state.value, read.value, read.attempts, read.order) == (
        row.id,
        "each",
        None,
        "RETRYING",
        "v",
        2,
        7,
    )
    assert read.outputs == {"a": [1, "b"]}
    assert read.started_at == now and read.next_attempt_at == now and read.started_at.tzinfo is not None


@pytest.mark.django_db
def test_with_many_unfinished_runs_the_cache_reads_everything_again(monkeypatch):
    import flows_app.services.snapshots as snapshots

    monkeypatch.setattr(snapshots, "MAX_REREAD", 2)
    with dispatch.using(Recorder()):
        execution = start_execution(save_flow(FLOW).flow)
    flow = spec_of(execution.flow_revision)
    cache = EndedRuns()
    rows = [
        TaskRun.objects.create(execution=execution, task_id="item", value=str(n), state="RUNNING", order=n)
        for n in range(4)
    ]
    cache.load(execution.id, flow)
    TaskRun.objects.filter(id__in=[r.id for r in rows]).update(state="SUCCESS")
    assert cache.load(execution.id, flow) == load_runs(execution.id)
    assert set(cache.entries[execution.id][0]) == {r.id for r in rows}
