"""Second chances through the API, on a real worker: restart a failed execution, set a task run's state by
hand, replay from a chosen task run into a new execution."""

from __future__ import annotations

from flows_app.models import Execution, KVEntry, TaskRun

from .conftest import ended

GATED = """\
id: gated
namespace: company.team
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: "one"
  - id: gate
    type: io.kestra.plugin.core.debug.Return
    format: "{{ kv('go', errorOnMissing=true) }}"
  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.first.value }} {{ outputs.gate.value ?? 'skipped' }}"
errors:
  - id: handler
    type: io.kestra.plugin.core.log.Log
    message: the gate failed
"""


def failed_run(alice) -> dict:
    alice.save_flow(GATED)
    execution = alice.post("executions/company.team/gated?wait=true").json()
    assert execution["state"]["current"] == "FAILED"
    assert [t["taskId"] for t in execution["taskRunList"]] == ["first", "gate", "handler"]
    return execution


def test_a_restart_runs_the_failed_task_again_and_clears_what_its_failure_set_off(worker, alice):
    execution = failed_run(alice)
    KVEntry.objects.create(namespace="company.team", key="go", value="open")
    restarted = alice.post(f"executions/{execution['id']}/actions/restart")
    assert restarted.status_code == 200, restarted.content
    final = ended(execution["id"])
    assert final.state == "SUCCESS"
    runs = {r.task_id: r for r in TaskRun.objects.filter(execution=final)}
    assert sorted(runs) == ["first", "gate", "last"]  # the handler's run is gone
    assert [a["state"] for a in runs["gate"].attempts] == ["FAILED", "SUCCESS"]
    assert len(runs["first"].attempts) == 1
    assert runs["last"].outputs == {"value": "one open"}
    states = [h["state"] for h in alice.get(f"executions/{execution['id']}").json()["state"]["histories"]]
    assert states == ["CREATED", "RUNNING", "FAILED", "RESTARTED", "RUNNING", "SUCCESS"]
    assert alice.post(f"executions/{execution['id']}/actions/restart").status_code == 409  # it succeeded


def test_setting_the_failed_task_run_to_success_lets_the_execution_go_on(worker, alice, bob):
    execution = failed_run(alice)
    gate = next(t for t in execution["taskRunList"] if t["taskId"] == "gate")
    body = {"taskRunId": gate["id"], "state": "SUCCESS"}
    assert bob.post(f"executions/{execution['id']}/actions/state", body, format="json").status_code == 403
    answer = alice.post(f"executions/{execution['id']}/actions/state", body, format="json")
    assert answer.status_code == 200, answer.content
    final = ended(execution["id"])
    assert final.state == "SUCCESS"
    last = TaskRun.objects.get(execution=final, task_id="last")
    assert last.outputs == {"value": "one skipped"}
    bad = alice.post(
        f"executions/{execution['id']}/actions/state", {"taskRunId": gate["id"], "state": "NOPE"}, format="json"
    )
    assert bad.status_code == 422


def test_a_replay_from_a_task_run_copies_what_ran_before_it_into_a_new_execution(worker, alice):
    execution = failed_run(alice)
    KVEntry.objects.create(namespace="company.team", key="go", value="later")
    gate = next(t for t in execution["taskRunList"] if t["taskId"] == "gate")
    replay = alice.post(f"executions/{execution['id']}/actions/replay?taskRunId={gate['id']}")
    assert replay.status_code == 200, replay.content
    new_id = replay.json()["id"]
    assert new_id != execution["id"]
    final = ended(new_id)
    assert final.state == "SUCCESS"
    runs = {r.task_id: r for r in TaskRun.objects.filter(execution=final)}
    first = next(t for t in execution["taskRunList"] if t["taskId"] == "first")
    assert runs["first"].attempts[0]["startDate"] == first["attempts"][0]["state"]["startDate"].replace("Z", "+00:00")
    assert runs["last"].outputs == {"value": "one later"}
    assert Execution.objects.get(id=execution["id"]).state == "FAILED"  # the original is left as it was

    whole = alice.post(f"executions/{execution['id']}/actions/replay").json()
    assert ended(whole["id"]).state == "SUCCESS"
    assert TaskRun.objects.filter(execution_id=whole["id"]).count() == 3
