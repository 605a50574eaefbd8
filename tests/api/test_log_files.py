"""Logs have a shape: a long line is cut with a marker, and a task run that writes more lines than its
share of the database (or has `logToFile`) goes on in a file in internal storage, which the download
includes."""

from __future__ import annotations

import pytest

from flows_app.models import LogEntry, TaskRun

SCRIPT = """id: chatty
namespace: company.team
tasks:
  - id: talk
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner:
      type: io.kestra.plugin.core.runner.Process
    commands:
      - for i in $(seq 1 50); do echo "line $i"; done
"""


@pytest.fixture
def small_logs(settings, tmp_path):
    settings.TERN = {**settings.TERN, "LOG_MAX_LINES": 10, "LOG_LINE_MAX_BYTES": 100, "STORAGE_DIR": tmp_path / "s"}


def flow_file(tmp_path, source):
    path = tmp_path / "flow.yml"
    path.write_text(source)
    return path


def lines_in_database(execution) -> list[str]:
    return list(LogEntry.objects.filter(execution_id=execution.id).order_by("id").values_list("message", flat=True))


def test_a_long_line_is_cut_with_a_marker_saying_how_much(run_flow, tmp_path, small_logs):
    source = "id: long\nnamespace: company.team\ntasks:\n  - id: say\n    type: io.kestra.plugin.core.log.Log\n"
    source += "    message: \"é{{ 'x' | center(500) }}\"\n"
    outcome = run_flow(flow_file(tmp_path, source))
    [line] = lines_in_database(outcome.execution)
    kept, marker = line.split(" … ")
    assert len(kept.encode()) == 100 and kept.startswith("é")
    assert marker == "[402 more bytes cut (TERN_LOG_LINE_MAX_BYTES)]"  # 502 bytes written, 100 kept


def test_past_its_share_a_task_runs_log_goes_on_in_a_file_that_the_download_includes(
    run_flow, tmp_path, small_logs, root
):
    outcome = run_flow(flow_file(tmp_path, SCRIPT))
    assert outcome.execution.state == "SUCCESS"
    run = TaskRun.objects.get(execution=outcome.execution, task_id="talk")
    uri = run.attempts[0]["logFile"]
    assert uri.startswith("kestra:///company/team/chatty/executions/") and uri.endswith("log-attempt-1.txt")
    stored = lines_in_database(outcome.execution)
    # the task's first 10 lines: the shell's "Starting /bin/sh ..." and 9 of the script's
    assert stored[0].startswith("Starting ") and stored[1:10] == [f"line {i}" for i in range(1, 10)]
    assert stored[10:] == [f"this task run's log goes on in {uri} (more than 10 lines (TERN_LOG_MAX_LINES))"]
    text = root.get(f"logs/{outcome.execution.id}/download").content.decode()
    said = [line.split(None, 3)[3] for line in text.splitlines()]
    assert said == [*stored, *(f"line {i}" for i in range(10, 51))]  # all of it, in order, once


def test_log_to_file_sends_every_line_of_the_task_to_the_file(run_flow, tmp_path, small_logs, root):
    outcome = run_flow(flow_file(tmp_path, SCRIPT.replace("    taskRunner:", "    logToFile: true\n    taskRunner:")))
    run = TaskRun.objects.get(execution=outcome.execution, task_id="talk")
    switched = f"this task run's log goes on in {run.attempts[0]['logFile']} (logToFile)"
    assert lines_in_database(outcome.execution) == [switched]
    text = root.get(f"logs/{outcome.execution.id}/download", {"minLevel": "INFO"}).content.decode()
    assert [line.split(None, 3)[3] for line in text.splitlines()][-50:] == [f"line {i}" for i in range(1, 51)]
    errors = root.get(f"logs/{outcome.execution.id}/download", {"minLevel": "ERROR"}).content.decode()
    assert [line.split(None, 3)[3] for line in errors.splitlines()] == [switched]  # where the rest is, and no INFO


def test_a_multi_line_message_in_the_file_is_downloaded_whole_with_a_level_filter(run_flow, tmp_path, small_logs, root):
    source = """id: lines
namespace: company.team
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    logToFile: true
    level: WARN
    message: "first\\nsecond words\\nthird"
"""
    outcome = run_flow(flow_file(tmp_path, source))
    text = root.get(f"logs/{outcome.execution.id}/download", {"minLevel": "WARN"}).content.decode()
    assert text.splitlines()[-3:][1:] == ["second words", "third"]
    assert text.splitlines()[-3].endswith("WARN  say first")
