"""Flow revisions, the one door for state changes, claims by compare-and-set, and the admin pages."""

from __future__ import annotations

import pytest
from django.urls import reverse

from flows_app import dispatch
from flows_app.engine.states import IllegalTransition, State
from flows_app.models import Execution, Flow, FlowRevision, TaskRun
from flows_app.services.executions import advance_execution, kill_execution, start_execution
from flows_app.services.flows import save_flow
from flows_app.services.taskruns import run_task_run
from flows_app.services.transitions import claim_task_run, move_task_run
from flows_app.spec.errors import FlowValidationError

SOURCE = """# the hello flow, comments kept
id: hello
namespace: tests.services
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: hi   # inline comment
"""


class Recorder:
    """A dispatcher that records what would be sent, so a test can play the messages itself."""

    def __init__(self):
        self.advances, self.runs = [], []

    def advance(self, execution_id, at=None):
        self.advances.append((execution_id, at))

    def send(self, ready):
        self.runs.extend(r.task_run_id for r in ready.runs if r.task_run_id != ready.kept)

    def ended(self, event):
        pass

    def logs_written(self, event):
        pass

    def changed(self, event):
        pass


@pytest.mark.django_db
def test_saving_the_same_source_twice_makes_no_new_revision():
    first = save_flow(SOURCE)
    again = save_flow(SOURCE)
    assert first.created and not again.created and again.revision.pk == first.revision.pk
    changed = save_flow(SOURCE.replace("hi", "hello"))
    assert changed.created and changed.revision.revision == 2
    flow = Flow.objects.get(flow_id="hello")
    assert flow.revision == 2 and FlowRevision.objects.filter(flow=flow).count() == 2
    assert flow.revisions.get(revision=1).source == SOURCE  # exactly as written, comments included


@pytest.mark.django_db
def test_an_invalid_source_is_not_saved():
    with pytest.raises(FlowValidationError):
        save_flow("id: x\nnamespace: y\ntasks: []\n")
    assert not Flow.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_each_message_played_twice_runs_each_task_once():
    recorder = Recorder()
    saved = save_flow(SOURCE)
    with dispatch.using(recorder):
        execution = start_execution(saved.flow)
        advance_execution(execution.id)
        advance_execution(execution.id)  # a duplicate advance creates nothing new
        assert TaskRun.objects.filter(execution=execution).count() == 1
        run_id = recorder.runs[0]
        assert run_task_run(run_id) is not None
        assert run_task_run(run_id) is None  # the duplicate finds the run claimed and does nothing
        advance_execution(execution.id)
        advance_execution(execution.id)
    run = TaskRun.objects.get(id=run_id)
    assert run.state == "SUCCESS" and len(run.attempts) == 1
    assert Execution.objects.get(id=execution.id).state == "SUCCESS"


@pytest.mark.django_db(transaction=True)
def test_a_claim_succeeds_once_and_illegal_moves_are_refused():
    recorder = Recorder()
    saved = save_flow(SOURCE)
    with dispatch.using(recorder):
        execution = start_execution(saved.flow)
        advance_execution(execution.id)
    run = TaskRun.objects.get(execution=execution)
    stale = TaskRun.objects.get(id=run.id)
    assert claim_task_run(run) is True
    assert claim_task_run(stale) is False  # read QUEUED, but another worker holds it now
    with pytest.raises(IllegalTransition):
        move_task_run(run, State.CREATED)


@pytest.mark.django_db(transaction=True)
def test_killing_an_execution_drops_its_queued_work():
    recorder = Recorder()
    saved = save_flow(SOURCE)
    with dispatch.using(recorder):
        execution = start_execution(saved.flow)
        advance_execution(execution.id)
        assert kill_execution(execution.id) is True
        advance_execution(execution.id)
        assert run_task_run(recorder.runs[0]) is None
    assert Execution.objects.get(id=execution.id).state == "KILLED"
    assert TaskRun.objects.get(execution=execution).state == "KILLED"
    assert kill_execution(execution.id) is False


@pytest.mark.django_db
def test_the_admin_lists_flows_executions_task_runs_and_logs(admin_client):
    saved = save_flow(SOURCE)
    with dispatch.using(Recorder()):
        start_execution(saved.flow)
    for model in ("flow", "flowrevision", "execution", "taskrun", "logentry"):
        response = admin_client.get(reverse(f"admin:flows_app_{model}_changelist"))
        assert response.status_code == 200, model
    page = admin_client.get(reverse("admin:flows_app_flow_change", args=[saved.flow.pk]))
    assert page.status_code == 200 and b"# the hello flow, comments kept" in page.content
    filtered = admin_client.get(reverse("admin:flows_app_execution_changelist") + "?state__exact=CREATED")
    assert filtered.status_code == 200 and saved.flow.flow_id.encode() in filtered.content


@pytest.mark.django_db(transaction=True)
def test_the_admin_run_and_kill_actions_go_through_the_services(admin_client):
    saved = save_flow(SOURCE)
    runner = dispatch.InlineDispatcher()
    try:
        with dispatch.using(runner):
            url = reverse("admin:flows_app_flow_changelist")
            page = admin_client.post(url, {"action": "run_flows", "_selected_action": [saved.flow.pk]}, follow=True)
            assert b"started" in page.content
            execution = Execution.objects.get()
            assert runner.run_until_done(execution.id, timeout=30) == "SUCCESS"
            assert execution.logs.filter(message="hi").exists()
            kill_url = reverse("admin:flows_app_execution_changelist")
            admin_client.post(kill_url, {"action": "kill_executions", "_selected_action": [execution.pk]}, follow=True)
            assert Execution.objects.get().state == "SUCCESS"  # an ended execution is not killed
    finally:
        runner.close()


@pytest.mark.django_db
def test_the_admin_run_action_reports_missing_required_inputs(admin_client):
    saved = save_flow(SOURCE.replace("tasks:", "inputs:\n  - id: n\n    type: INT\ntasks:"))
    url = reverse("admin:flows_app_flow_changelist")
    page = admin_client.post(url, {"action": "run_flows", "_selected_action": [saved.flow.pk]}, follow=True)
    assert b"not started" in page.content and b"inputs.n" in page.content
    assert not Execution.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_parallel_block_whose_children_all_start_goes_as_one_join_and_worker_groups_pick_queues():
    recorder = BatchRecorder()
    saved = save_flow("""id: join
namespace: tests.services
tasks:
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: a
        type: io.kestra.plugin.core.log.Log
        message: a
      - id: b
        type: io.kestra.plugin.core.log.Log
        message: b
        workerGroup:
          key: gpu
      - id: c
        type: io.kestra.plugin.core.log.Log
        message: c
  - id: limited
    type: io.kestra.plugin.core.flow.Parallel
    concurrent: 1
    tasks:
      - id: d
        type: io.kestra.plugin.core.log.Log
        message: d
      - id: e
        type: io.kestra.plugin.core.log.Log
        message: e
""")
    with dispatch.using(recorder):
        execution = start_execution(saved.flow)
        advance_execution(execution.id)
    names = {r.id: r.task_id for r in TaskRun.objects.all()}
    batches = {tuple(sorted(names[i] for i in b.task_run_ids)): (b.queue, b.join) for b in recorder.batches}
    # b goes to its worker group's queue, so the fan's children split in two batches: not all together
    assert batches == {("a", "c"): ("tern", False), ("b",): ("tern.gpu", False)}


@pytest.mark.django_db(transaction=True)
def test_children_of_one_parallel_on_one_queue_are_joined():
    recorder = BatchRecorder()
    saved = save_flow(
        "id: join2\nnamespace: tests.services\ntasks:\n  - id: fan\n    type: io.kestra.plugin.core.flow.Parallel\n"
        "    tasks:\n"
        + "".join(
            f"      - id: t{i}\n        type: io.kestra.plugin.core.log.Log\n        message: m\n" for i in range(3)
        )
    )
    with dispatch.using(recorder):
        advance_execution(start_execution(saved.flow).id)
    [batch] = recorder.batches
    assert batch.join and len(batch.task_run_ids) == 3 and batch.queue == "tern"


class BatchRecorder(Recorder):
    def __init__(self):
        super().__init__()
        self.batches = []

    def send(self, ready):
        self.batches.extend(dispatch.batches(ready))


@pytest.mark.django_db
def test_the_scheduler_periodic_tasks_are_visible_in_the_admin(admin_client):
    from django_celery_beat.models import PeriodicTask

    from flows_app.services.housekeeping import ensure_tick_schedule

    ensure_tick_schedule()
    ensure_tick_schedule()  # idempotent: still one row
    assert PeriodicTask.objects.filter(task="tern.tick").count() == 1
    page = admin_client.get(reverse("admin:django_celery_beat_periodictask_changelist"))
    assert page.status_code == 200 and b"tern housekeeping tick" in page.content
