"""Secrets in their disguises, and values a script asks to mask, never reach a task's logs, outputs or errors."""

from __future__ import annotations

import base64

import pytest

from flows_app.models import LogEntry, TaskRun

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = 'pa"ss w/rd'  # a quote, a space and a slash: JSON and URL encoding change it

DISGUISES_FLOW = """
id: disguises
namespace: tests
tasks:
  - id: upper
    type: io.kestra.plugin.core.log.Log
    message: "upper {{ secret('PW') | upper }}"
  - id: base64
    type: io.kestra.plugin.core.log.Log
    message: "base64 {{ secret('PW') | base64encode }}"
  - id: url
    type: io.kestra.plugin.core.log.Log
    message: "url {{ secret('PW') | urlencode }}"
  - id: json
    type: io.kestra.plugin.core.log.Log
    message: "json {{ {'pw': secret('PW')} | toJson }}"
  - id: script
    type: io.kestra.plugin.scripts.shell.Script
    script: |
      echo '::{"mask": "tok-123"}::'
      echo "token tok-123"
      echo '::{"mask": ["tok-456", "tok-789"], "outputs": {"token": "tok-123"}}::'
      echo "TOK-456 and $(printf tok-789 | base64)"
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: "pw={{ secret('PW') }}"
"""

FAILING_FLOW = """
id: failing
namespace: tests
tasks:
  - id: script
    type: io.kestra.plugin.scripts.shell.Commands
    allowFailure: true
    commands:
      - echo '::{"mask":"tok-123"}::'
      - echo '::{"outputs":{"token":"tok-123"}}::'
      - exit 3
  - id: fail
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: "cannot log in with {{ secret('PW') | upper }}"
"""


@pytest.fixture
def password(monkeypatch):
    monkeypatch.setenv("SECRET_PW", base64.b64encode(PASSWORD.encode()).decode())


def messages(outcome, task_id):
    logs = LogEntry.objects.filter(execution_id=outcome.execution.id, task_id=task_id).order_by("id")
    return [entry.message for entry in logs]


def outputs(outcome, task_id):
    return TaskRun.objects.get(execution_id=outcome.execution.id, task_id=task_id).outputs


def no_trace_of(*values):
    for value in values:
        assert not LogEntry.objects.filter(message__icontains=value).exists(), value
        assert not TaskRun.objects.filter(outputs__icontains=value).exists(), value


def test_a_secret_is_masked_in_its_disguises_in_the_logs(run_flow, tmp_path, password):
    flow = tmp_path / "disguises.yml"
    flow.write_text(DISGUISES_FLOW)
    outcome = run_flow(flow)
    assert outcome.execution.state == "SUCCESS"
    assert messages(outcome, "upper") == ["upper ******"]
    assert messages(outcome, "base64") == ["base64 ******"]
    assert messages(outcome, "url") == ["url ******"]
    assert messages(outcome, "json") == ['json {"pw":"******"}']
    assert outputs(outcome, "ret") == {"value": "pw=******"}
    no_trace_of(PASSWORD, 'pa\\"ss', "pa%22ss", base64.b64encode(PASSWORD.encode()).decode())


def test_a_value_a_script_masks_is_masked_from_then_on_in_its_logs_and_outputs(run_flow, tmp_path, password):
    flow = tmp_path / "disguises.yml"
    flow.write_text(DISGUISES_FLOW)
    outcome = run_flow(flow)
    assert messages(outcome, "script")[-2:] == ["token ******", "****** and ******"]
    assert outputs(outcome, "script")["vars"] == {"token": "******"}
    no_trace_of("tok-123", "tok-456", "tok-789")


def test_masked_values_stay_out_of_a_failed_task_and_its_error(run_flow, tmp_path, password):
    flow = tmp_path / "failing.yml"
    flow.write_text(FAILING_FLOW)
    outcome = run_flow(flow)
    assert outputs(outcome, "script") == {"exitCode": 3, "vars": {"token": "******"}}
    assert messages(outcome, "fail") == ["cannot log in with ******"]
    no_trace_of("tok-123", PASSWORD)
