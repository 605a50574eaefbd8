"""The acceptance test of the API: Kestra's own Python client, `kestrapy`, unchanged, against a live
`tern web` and a real worker — create and update a flow from YAML, read it back with its source, run it
with inputs and wait, read its task runs, outputs and logs, kill, pause and resume, trigger a webhook,
search, delete; and a wrong password refused."""

from __future__ import annotations

import time

import pytest
from kestrapy import Configuration, KestraClient, QueryFilter, QueryFilterField, QueryFilterOp, StateType
from kestrapy.exceptions import NotFoundException, UnauthorizedException

from .conftest import PASSWORD, wait_until

TENANT = "main"
FLOW = """\
id: greeter
namespace: company.team
# comments are kept
inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: "Hello {{ inputs.name }}"
  - id: answer
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.name | upper }}"
"""
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
      - id: ok
        type: BOOLEAN
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.approve.onResume.ok }}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: a-long-webhook-key
"""


@pytest.fixture
def kestra(web_server, db):
    from django.contrib.auth.models import User

    User.objects.create_superuser("root@root.com", "root@root.com", PASSWORD)
    configuration = Configuration()
    configuration.host = web_server.url
    configuration.username = "root@root.com"
    configuration.password = PASSWORD
    return KestraClient(configuration, timeout=60)


def ended(kestra, execution_id: str):
    return wait_until(
        lambda: (
            (e := kestra.executions.execution(execution_id, TENANT)).state.current
            in (StateType.SUCCESS, StateType.WARNING, StateType.FAILED, StateType.KILLED)
            and e
        ),
        timeout=40,
        what="the execution ended",
    )


def test_kestrapy_drives_tern(kestra, web_server):
    # Flows: create, read back with the source, update, search.
    created = kestra.flows.create_flow(TENANT, FLOW)
    assert (created.namespace, created.id, created.revision) == ("company.team", "greeter", 1)
    fetched = kestra.flows.flow("company.team", "greeter", TENANT, source=True)
    assert fetched.source == FLOW
    updated = kestra.flows.update_flow("company.team", "greeter", TENANT, FLOW.replace("Hello", "Hi"))
    assert updated.revision == 2
    found = kestra.flows.search_flows(
        TENANT,
        page=1,
        size=10,
        filters=[
            QueryFilter(var_field=QueryFilterField.NAMESPACE, operation=QueryFilterOp.EQUALS, value="company.team")
        ],
    )
    assert [f.id for f in found.results] == ["greeter"] and found.total == 1

    # Run with inputs and wait; read task runs, outputs and logs.
    run = kestra.executions.create_execution(TENANT, "company.team", "greeter", wait=True, inputs={"name": "ada"})
    assert run.state.current == StateType.SUCCESS
    assert run.inputs == {"name": "ada"}
    execution = kestra.executions.execution(run.id, TENANT)
    assert [t.task_id for t in execution.task_run_list] == ["greet", "answer"]
    assert all(t.state.current == StateType.SUCCESS for t in execution.task_run_list)
    answer = execution.task_run_list[1]
    assert answer.additional_properties["outputs"] == {"value": "ADA"}
    assert answer.attempts[0].state.current == StateType.SUCCESS
    logs = kestra.logs.list_logs_from_execution(run.id, TENANT, min_level="INFO")
    assert any(line.message == "Hi ada" and line.task_id == "greet" for line in logs)
    assert "Hi ada" in kestra.logs.download_logs_from_execution(run.id, TENANT)
    searched = kestra.executions.search_executions(
        TENANT,
        filters=[QueryFilter(var_field=QueryFilterField.FLOW_ID, operation=QueryFilterOp.EQUALS, value="greeter")],
    )
    assert [e["id"] for e in searched["results"]] == [run.id]

    # Pause a running execution, then kill it.
    kestra.flows.create_flow(TENANT, SLEEPER)
    sleeping = kestra.executions.create_execution(TENANT, "company.team", "sleeper")
    wait_until(lambda: kestra.executions.execution(sleeping.id, TENANT).task_run_list, what="the nap started")
    assert kestra.executions.pause_execution(sleeping.id, TENANT).state.current == StateType.PAUSED
    kestra.executions.kill_execution(sleeping.id, TENANT)
    assert ended(kestra, sleeping.id).state.current == StateType.KILLED

    # A webhook starts a flow that pauses; it is resumed with its onResume input.
    kestra.flows.create_flow(TENANT, APPROVAL)
    hooked = kestra.executions.trigger_execution_by_get_webhook(
        TENANT, "company.team", "approval", "a-long-webhook-key"
    )
    assert hooked.flow_id == "approval"
    wait_until(lambda: kestra.executions.execution(hooked.id, TENANT).state.current == StateType.PAUSED, what="paused")
    kestra.executions.resume_execution(hooked.id, TENANT, inputs={"ok": True})
    resumed = ended(kestra, hooked.id)
    assert resumed.state.current == StateType.SUCCESS
    assert resumed.task_run_list[-1].additional_properties["outputs"] == {"value": "true"}

    # KV.
    kestra.kv.set_key_value("company.team", "answer", TENANT, "42")
    assert kestra.kv.key_value("company.team", "answer", TENANT).value == 42

    # Delete: an execution, then the flow.
    kestra.executions.delete_execution(run.id, TENANT)
    with pytest.raises(NotFoundException):
        kestra.executions.execution(run.id, TENANT)
    kestra.flows.delete_flow("company.team", "greeter", TENANT)
    with pytest.raises(NotFoundException):
        kestra.flows.flow("company.team", "greeter", TENANT)


def test_kestrapy_with_a_wrong_password_is_refused(kestra, web_server):
    wrong = KestraClient(host=web_server.url, username="root@root.com", password="wrong", timeout=10)
    started = time.monotonic()
    with pytest.raises(UnauthorizedException):
        wrong.flows.search_flows(TENANT, page=1, size=10)
    assert time.monotonic() - started < 10


def test_kestrapy_with_a_token(kestra, web_server):
    from django.contrib.auth.models import User

    from flows_app.services.tokens import create_token

    token, _ = create_token(User.objects.get(username="root@root.com"), "sdk")
    client = KestraClient(host=web_server.url, token=token, timeout=10)
    assert client.flows.search_flows(TENANT, page=1, size=10).total == 0


def test_kestrapys_models_take_tern_json_as_it_is_not_by_their_lenient_fallback(kestra, web_server):
    """kestrapy falls back to building a model without checks when its validation fails: check that
    Tern's answers pass the validation itself."""
    import requests
    from kestrapy.models.execution import Execution
    from kestrapy.models.flow_with_source import FlowWithSource
    from kestrapy.models.log_entry import LogEntry

    kestra.flows.create_flow(TENANT, FLOW)
    run = kestra.executions.create_execution(TENANT, "company.team", "greeter", wait=True)
    auth = ("root@root.com", PASSWORD)
    base = f"{web_server.url}/api/v1/main"
    FlowWithSource.from_dict(requests.get(f"{base}/flows/company.team/greeter", auth=auth, timeout=10).json())
    Execution.from_dict(requests.get(f"{base}/executions/{run.id}", auth=auth, timeout=10).json())
    for line in requests.get(f"{base}/logs/{run.id}", auth=auth, timeout=10).json():
        LogEntry.from_dict(line)
