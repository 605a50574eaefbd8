"""Executions through the API, run by a real worker: started with inputs and labels, waited for, read with
their task runs and logs, searched, killed, resumed, deleted; and webhooks."""

from __future__ import annotations

from flows_app.models import Execution, TaskRun
from flows_app.services.executions import advance_execution

from .conftest import HELLO, ended, wait_until

SLEEPER = """\
id: sleeper
namespace: company.team
tasks:
  - id: nap
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["sleep 30"]
"""
APPROVAL = """\
id: approval
namespace: company.team
tasks:
  - id: approve
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: approved
        type: BOOLEAN
  - id: decision
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.approve.onResume.approved }}"
"""
HOOKED = """\
id: hooked
namespace: company.team
tasks:
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.body.name }} {{ trigger.parameters.x[0] }}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: s3cr3t-key
"""


def test_it_runs_a_flow_with_inputs_and_labels_and_waits_for_its_end(worker, alice):
    alice.save_flow(HELLO)
    answer = alice.post("executions/company.team/hello?wait=true&labels=team:data&labels=env:test", {"name": "Ada"})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["state"]["current"] == "SUCCESS"
    assert [h["state"] for h in body["state"]["histories"]] == ["CREATED", "RUNNING", "SUCCESS"]
    assert body["state"]["duration"].startswith("PT")
    assert body["inputs"] == {"name": "Ada"}
    labels = {label["key"]: label["value"] for label in body["labels"]}
    assert labels["team"] == "data" and labels["env"] == "test" and labels["system.username"] == "alice"
    (run,) = body["taskRunList"]
    assert run["taskId"] == "greet" and run["state"]["current"] == "SUCCESS"
    assert run["attempts"][0]["state"]["current"] == "SUCCESS"
    logs = alice.get(f"logs/{body['id']}?minLevel=INFO").json()
    assert any(line["message"] == "Hello Ada" and line["taskId"] == "greet" for line in logs)
    text = alice.get(f"logs/{body['id']}/download")
    assert "Hello Ada" in text.content.decode()


def test_bad_inputs_are_refused_with_the_input_named(worker, alice):
    alice.save_flow(HELLO.replace("type: STRING", "type: INT").replace("defaults: world", "required: true"))
    answer = alice.post("executions/company.team/hello", {"name": "not a number"})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["path"] == "inputs.name"
    assert Execution.objects.count() == 0


def test_it_kills_a_running_execution(worker, alice):
    alice.save_flow(SLEEPER)
    started = alice.post("executions/company.team/sleeper").json()
    wait_until(lambda: alice.get(f"executions/{started['id']}").json()["taskRunList"], what="a task run")
    killed = alice.delete(f"executions/{started['id']}/actions/kill")
    assert killed.status_code == 202
    assert ended(started["id"]).state == "KILLED"
    assert alice.delete(f"executions/{started['id']}/actions/kill").status_code == 409


def test_it_resumes_a_paused_execution_with_its_on_resume_inputs(worker, alice):
    alice.save_flow(APPROVAL)
    started = alice.post("executions/company.team/approval").json()
    wait_until(lambda: alice.get(f"executions/{started['id']}").json()["state"]["current"] == "PAUSED", what="paused")
    bad = alice.post(f"executions/{started['id']}/actions/resume", {"approved": "perhaps"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "inputs.approved"
    assert alice.post(f"executions/{started['id']}/actions/resume", {"approved": "true"}).status_code == 200
    execution = ended(started["id"])
    assert execution.state == "SUCCESS"
    decision = alice.get(f"executions/{started['id']}").json()["taskRunList"][-1]
    assert decision["outputs"] == {"value": "true"}


TWO_STEPS = """\
id: two-steps
namespace: company.team
tasks:
  - id: first
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["sleep 2"]
  - id: second
    type: io.kestra.plugin.core.debug.Return
    format: done
"""


def test_a_paused_running_execution_finishes_what_runs_and_starts_nothing_until_resumed(worker, alice, bob):
    alice.save_flow(TWO_STEPS)
    started = alice.post("executions/company.team/two-steps").json()
    runs = TaskRun.objects.filter(execution_id=started["id"])
    wait_until(lambda: runs.filter(task_id="first", state="RUNNING").exists(), what="the first task running")
    assert bob.post(f"executions/{started['id']}/actions/pause").status_code == 403
    paused = alice.post(f"executions/{started['id']}/actions/pause")
    assert paused.status_code == 200 and paused.json()["state"]["current"] == "PAUSED"
    assert alice.post(f"executions/{started['id']}/actions/pause").status_code == 409  # not running now
    wait_until(lambda: runs.filter(task_id="first", state="SUCCESS").exists(), what="the first task's end")
    advance_execution(started["id"])  # whatever the worker's advance did, one more finds nothing to start
    assert list(runs.values_list("task_id", flat=True)) == ["first"]
    assert Execution.objects.get(id=started["id"]).state == "PAUSED"
    assert alice.post(f"executions/{started['id']}/actions/resume").status_code == 200
    assert ended(started["id"]).state == "SUCCESS"
    assert sorted(runs.values_list("task_id", "state")) == [("first", "SUCCESS"), ("second", "SUCCESS")]
    histories = [h["state"] for h in alice.get(f"executions/{started['id']}").json()["state"]["histories"]]
    assert histories == ["CREATED", "RUNNING", "PAUSED", "RUNNING", "SUCCESS"]


def test_pause_and_resume_by_ids(worker, alice):
    alice.save_flow(SLEEPER)
    one, two = (alice.post("executions/company.team/sleeper").json()["id"] for _ in range(2))
    wait_until(lambda: TaskRun.objects.filter(execution_id__in=[one, two]).count() == 2, what="both naps")
    assert alice.post("executions/pause/by-ids", [one, two], format="json").json() == {"count": 2}
    assert alice.post("executions/pause/by-ids", [one], format="json").json() == {"count": 0}
    assert set(Execution.objects.filter(id__in=[one, two]).values_list("state", flat=True)) == {"PAUSED"}
    assert alice.post("executions/resume/by-ids", [one, two], format="json").json() == {"count": 2}
    assert alice.delete("executions/kill/by-ids", [one, two], format="json").json() == {"count": 2}
    assert {ended(one).state, ended(two).state} == {"KILLED"}


def test_search_filters_by_flow_state_and_labels_and_delete_needs_an_end(worker, alice, bob):
    alice.save_flow(HELLO)
    alice.save_flow(SLEEPER)
    done = alice.post("executions/company.team/hello?wait=true&labels=k:v").json()
    running = alice.post("executions/company.team/sleeper").json()
    found = alice.get("executions/search", {"filters[flowId][EQUALS]": "hello", "filters[state][IN]": "SUCCESS"}).json()
    assert [e["id"] for e in found["results"]] == [done["id"]]
    by_label = bob.get("executions/search", {"filters[labels][EQUALS][k]": "v"}).json()
    assert [e["id"] for e in by_label["results"]] == [done["id"]]
    legacy = alice.get("executions?namespace=company.team&flowId=sleeper").json()
    assert [e["id"] for e in legacy["results"]] == [running["id"]]
    assert alice.get("executions/search?sort=state.startDate:desc").json()["results"][0]["id"] == running["id"]
    assert alice.delete(f"executions/{running['id']}").status_code == 409
    assert bob.delete(f"executions/{done['id']}").status_code == 403
    assert alice.delete(f"executions/{done['id']}").status_code == 204
    assert alice.get(f"executions/{done['id']}").status_code == 404
    alice.delete(f"executions/{running['id']}/actions/kill")
    ended(running["id"])


def test_a_webhook_starts_its_flow_with_body_headers_and_parameters(worker, alice, anonymous):
    alice.save_flow(HOOKED)
    answer = anonymous.post("executions/webhook/company.team/hooked/s3cr3t-key?x=1", {"name": "hook"}, format="json")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["trigger"]["variables"]["body"] == {"name": "hook"}
    assert body["trigger"]["variables"]["parameters"] == {"x": ["1"]}
    ended(body["id"])
    run = alice.get(f"executions/{body['id']}").json()["taskRunList"][0]
    assert run["outputs"] == {"value": "hook 1"}


def test_a_wrong_webhook_key_and_an_unknown_flow_answer_the_same_404(db, alice, anonymous):
    alice.save_flow(HOOKED)
    wrong = anonymous.get("executions/webhook/company.team/hooked/guess")
    unknown = anonymous.get("executions/webhook/company.team/nothing/s3cr3t-key")
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json() == unknown.json()
    assert Execution.objects.count() == 0


def test_a_flow_named_follow_still_runs_though_the_follow_route_looks_like_it(db, alice):
    alice.save_flow(HELLO.replace("id: hello", "id: follow"))
    answer = alice.post("executions/company.team/follow")
    assert answer.status_code == 200, answer.content
    assert answer.json()["flowId"] == "follow"
