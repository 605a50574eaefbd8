"""Fixture flows run to their end through the real services, planner and plugins (the inline dispatcher)."""

from __future__ import annotations

import time

import pytest

from flows_app.models import Execution, LogEntry
from flows_app.testrun import InvalidFlow

pytestmark = pytest.mark.django_db(transaction=True)


def runs_by_task(outcome):
    return {run["taskId"]: run for run in outcome.summary["taskRuns"]}


def messages(outcome, task_id=None, level=None):
    logs = LogEntry.objects.filter(execution_id=outcome.execution.id).order_by("id")
    return [
        entry.message
        for entry in logs
        if (task_id is None or entry.task_id == task_id) and (level is None or entry.level == level)
    ]


def test_outputs_pass_from_task_to_task(run_flow):
    outcome = run_flow("sequential.yml")
    runs = runs_by_task(outcome)
    assert outcome.execution.state == "SUCCESS"
    assert runs["second"]["outputs"] == {"value": "one two"}
    assert messages(outcome, "say") == ["one two from say in tests.engine.sequential"]


def test_parallel_children_run_and_the_join_sees_their_outputs(run_flow):
    outcome = run_flow("parallel.yml")
    runs = runs_by_task(outcome)
    assert outcome.execution.state == "SUCCESS"
    fan = runs["fan"]["id"]
    assert {runs[t]["parentTaskRunId"] for t in ("a", "b", "c")} == {fan}
    assert runs["join"]["outputs"] == {"value": "c1-c2"}
    assert messages(outcome, "a", "INFO") == ["a"]


def test_a_failing_task_runs_the_errors_branch_and_fails_the_execution(run_flow):
    outcome = run_flow("errors-branch.yml")
    runs = runs_by_task(outcome)
    assert outcome.execution.state == "FAILED"
    assert runs["boom"]["state"] == "FAILED" and runs["handler"]["state"] == "SUCCESS"
    assert "never" not in runs
    assert "it broke" in messages(outcome, "boom", "ERROR")
    assert messages(outcome, "handler") == ["handling the failure of errors-branch"]


def test_a_failing_shell_command_fails_its_task_with_the_exit_code(run_flow):
    outcome = run_flow("failing-shell.yml")
    run = runs_by_task(outcome)["shell"]
    assert outcome.execution.state == "FAILED" and run["state"] == "FAILED"
    assert run["outputs"]["exitCode"] == 3
    assert "before" in messages(outcome, "shell") and "after" not in messages(outcome, "shell")


def test_a_template_error_fails_the_task_naming_task_property_and_expression(run_flow):
    outcome = run_flow("template-error.yml")
    assert outcome.execution.state == "FAILED"
    [error] = messages(outcome, "bad", "ERROR")
    assert "task 'bad'" in error and "property 'message'" in error and "{{ outputs.nothing.value }}" in error


def test_typed_inputs_are_coerced_and_defaulted(run_flow):
    outcome = run_flow("inputs.yml", {"count": "41"})
    assert outcome.execution.inputs == {"name": "world", "count": 41, "ratio": None}
    assert runs_by_task(outcome)["show"]["outputs"] == {"value": "world x42 "}


def test_a_bad_input_is_refused_before_anything_runs(run_flow):
    with pytest.raises(InvalidFlow) as info:
        run_flow("inputs.yml", {"count": "many"})
    assert "inputs.count" in str(info.value) and "'many'" in str(info.value)
    assert not Execution.objects.exists()


def test_a_timeout_kills_the_shell_task(run_flow):
    started = time.monotonic()
    outcome = run_flow("timeout.yml", timeout=30)
    assert time.monotonic() - started < 15
    run = runs_by_task(outcome)["slow"]
    assert outcome.execution.state == "FAILED" and run["state"] == "FAILED"
    assert any("Timeout" in m for m in messages(outcome, "slow", "ERROR"))


def test_retries_are_spent_then_the_task_fails(run_flow):
    outcome = run_flow("retry-exhausted.yml")
    run = runs_by_task(outcome)["flaky"]
    assert outcome.execution.state == "FAILED"
    assert run["state"] == "FAILED" and run["attempts"] == 3
    assert outcome.summary["taskRuns"].__len__() == 1


def test_a_retried_task_can_succeed_and_warning_on_retry_marks_it(run_flow):
    outcome = run_flow("retry-then-succeed.yml")
    run = runs_by_task(outcome)["flaky"]
    assert run["attempts"] == 3 and run["state"] == "WARNING"
    assert outcome.execution.state == "WARNING"


def test_allow_failure_gives_a_warning_and_disabled_tasks_do_not_run(run_flow):
    outcome = run_flow("allow-failure.yml")
    runs = runs_by_task(outcome)
    assert outcome.execution.state == "WARNING"
    assert runs["may-fail"]["state"] == "WARNING" and runs["after"]["state"] == "SUCCESS"
    assert "off" not in runs


def test_shell_outputs_env_and_flow_outputs(run_flow):
    outcome = run_flow("shell-outputs.yml")
    runs = runs_by_task(outcome)
    assert runs["produce"]["outputs"]["vars"] == {"who": "hello tern", "n": 3}
    assert runs["produce"]["state"] == "SUCCESS"  # exit code 0: stderr does not make a WARNING (Kestra 0.23)
    assert "a warning" in messages(outcome, "produce", "ERROR")  # stderr lines are ERROR (Kestra 0.21)
    assert outcome.execution.outputs == {"result": "hello tern/3/0"}


def test_the_seed_hello_flow_runs_as_written(run_flow, settings):
    from pathlib import Path

    outcome = run_flow(Path(settings.BASE_DIR) / "flows" / "hello.yml")
    assert outcome.execution.state == "SUCCESS"
    assert messages(outcome, "hello-world") == ["Hello world!"]


def test_secrets_come_from_base64_environment_variables(run_flow, tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_API_TOKEN", "czNjcjN0")  # base64 of "s3cr3t"
    flow = tmp_path / "secret.yml"
    flow.write_text(
        "id: secret\nnamespace: tests\ntasks:\n  - id: r\n    type: io.kestra.plugin.core.debug.Return\n"
        "    format: \"{{ secret('API_TOKEN') | length }}\"\n"
    )
    outcome = run_flow(flow)
    assert runs_by_task(outcome)["r"]["outputs"] == {"value": "6"}


def test_secret_values_are_masked_in_the_logs(run_flow, tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_DB_PASSWORD", "aHVudGVyMg==")  # base64 of "hunter2"
    flow = tmp_path / "leak.yml"
    flow.write_text(
        "id: leak\nnamespace: tests\ntasks:\n  - id: say\n    type: io.kestra.plugin.core.log.Log\n"
        "    message: \"password is {{ secret('DB_PASSWORD') }}\"\n"
        "  - id: shell\n    type: io.kestra.plugin.scripts.shell.Commands\n"
        "    commands: [\"echo pw={{ secret('DB_PASSWORD') }}\"]\n"
        "  - id: ret\n    type: io.kestra.plugin.core.debug.Return\n    format: \"{{ secret('DB_PASSWORD') }}!\"\n"
    )
    outcome = run_flow(flow)
    assert outcome.execution.state == "SUCCESS"
    assert messages(outcome, "say") == ["password is ******"]
    assert "pw=******" in messages(outcome, "shell", "INFO")
    assert not LogEntry.objects.filter(message__contains="hunter2").exists()
    assert runs_by_task(outcome)["ret"]["outputs"] == {"value": "******!"}


def test_templates_see_the_flow_execution_task_and_parent_variables(run_flow, monkeypatch):
    monkeypatch.setenv("ENV_TERN_FIXTURE", "from-env")
    outcome = run_flow("context-variables.yml")
    runs = runs_by_task(outcome)
    # a Sequential parent has no loop value and no outputs: Kestra leaves it out of `parents`
    assert runs["inner"]["outputs"]["value"] == "inner|true|0|tests.engine.context-variables|data|hello|from-env|32|0"
    year = outcome.execution.started_at.strftime("%Y")
    assert runs["when"]["outputs"]["value"] == f"{year}|true"
    assert runs["guard-pass"]["state"] == "SUCCESS"  # its condition is false: it does not fail
    assert messages(outcome, "echo") == ["echo inner"]
    assert runs["guard-fail"]["state"] == "FAILED" and outcome.execution.state == "FAILED"
    assert messages(outcome, "guard-fail", "ERROR") == ["greeting was hello"]
