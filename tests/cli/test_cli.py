"""`tern flow validate` and `tern flow test` as a user runs them: a real process, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "flows"
TERN = [sys.executable, "-m", "orchestrator.cli"]


def tern(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(env_extra or {})
    return subprocess.run([*TERN, *map(str, args)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def test_validate_accepts_valid_flows_and_exits_zero():
    result = tern("flow", "validate", ROOT / "flows" / "hello.yml", ROOT / "flows" / "seed-full.yml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": valid") == 2


def test_validate_names_each_error_and_exits_one():
    result = tern("flow", "validate", FIXTURES / "invalid" / "bad-duration.yml", FIXTURES / "valid" / "sequential.yml")
    assert result.returncode == 1
    assert "tasks[0].retry.interval: 'PT15X' is not a duration (line 9)" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", sorted(p.name for p in (FIXTURES / "invalid").glob("*.yml")))
def test_every_invalid_fixture_is_rejected_without_a_traceback(name):
    result = tern("flow", "validate", FIXTURES / "invalid" / name)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "invalid" in result.stderr


def test_flow_test_prints_logs_and_a_json_summary():
    result = tern("flow", "test", FIXTURES / "valid" / "sequential.yml", "--json")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert any("INFO  say one two from say" in line for line in lines[:-1])
    summary = json.loads(lines[-1])
    assert (
        summary["state"] == "SUCCESS" and summary["flowId"] == "sequential" and summary["namespace"] == "tests.engine"
    )
    assert [r["taskId"] for r in summary["taskRuns"]] == ["first", "second", "say"]
    first = summary["taskRuns"][0]
    assert first["parentTaskRunId"] is None and first["attempts"] == 1 and first["outputs"] == {"value": "one"}


def test_flow_test_exits_one_when_the_execution_fails():
    result = tern("flow", "test", FIXTURES / "valid" / "errors-branch.yml", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout.strip().splitlines()[-1])["state"] == "FAILED"


def test_flow_test_takes_inputs_and_exits_two_on_a_bad_one():
    good = tern(
        "flow", "test", FIXTURES / "valid" / "inputs.yml", "--input", "count=1", "--input", "name=tern", "--json"
    )
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout.strip().splitlines()[-1])["taskRuns"][0]["outputs"] == {"value": "tern x2 "}
    bad = tern("flow", "test", FIXTURES / "valid" / "inputs.yml", "--input", "count=lots")
    assert bad.returncode == 2
    assert "inputs.count: 'lots' is not an integer" in bad.stderr and "Traceback" not in bad.stderr
    missing = tern("flow", "test", FIXTURES / "valid" / "inputs.yml")
    assert missing.returncode == 2 and "inputs.count" in missing.stderr


def test_flow_test_exits_two_on_an_invalid_flow_or_a_missing_file():
    invalid = tern("flow", "test", FIXTURES / "invalid" / "unknown-type.yml")
    assert invalid.returncode == 2 and "unknown task type" in invalid.stderr and "Traceback" not in invalid.stderr
    missing = tern("flow", "test", FIXTURES / "valid" / "no-such-flow.yml")
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_flow_test_loads_other_flows_with_flows_dir():
    result = tern("flow", "test", FIXTURES / "valid" / "sequential.yml", "--flows", FIXTURES / "valid", "--json")
    assert result.returncode == 0, result.stderr


def test_plugins_list_and_doc_come_from_the_plugin_classes():
    listing = tern("plugins", "list")
    assert listing.returncode == 0
    assert any(
        line.startswith("io.kestra.plugin.core.log.Log") and "runnable" in line for line in listing.stdout.splitlines()
    )
    assert any(
        line.startswith("io.kestra.plugin.core.flow.Parallel") and "flowable" in line
        for line in listing.stdout.splitlines()
    )
    doc = tern("plugins", "doc", "io.kestra.core.tasks.log.Log")  # a seed-era name finds the plugin
    assert doc.returncode == 0
    assert "message (string | array, required, templated)" in doc.stdout
    assert 'level ("TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR", default "INFO", templated)' in doc.stdout
    assert "Example:" in doc.stdout and "Also known as: io.kestra.core.tasks.log.Log" in doc.stdout
    shell = tern("plugins", "doc", "io.kestra.plugin.scripts.shell.Commands")
    assert "Outputs:" in shell.stdout and "exitCode" in shell.stdout
    unknown = tern("plugins", "doc", "Logg")
    assert unknown.returncode == 1 and "did you mean 'io.kestra.plugin.core.log.Log'" in unknown.stderr


BOMB = (
    "id: bomb\nnamespace: tests\nvariables:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8))
    + "tasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
)
RECURSIVE = (
    "id: loop\nnamespace: tests\ntasks: &tasks\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n"
    "    message: hi\n  - *tasks\n"
)


def test_validate_refuses_an_alias_bomb_a_recursive_alias_and_a_binary_file_without_a_traceback(tmp_path):
    (tmp_path / "bomb.yml").write_text(BOMB)
    (tmp_path / "loop.yml").write_text(RECURSIVE)
    (tmp_path / "binary.yml").write_bytes(b"id: x\n\xff\xfe\x00")
    result = tern("flow", "validate", tmp_path / "bomb.yml", tmp_path / "loop.yml", tmp_path / "binary.yml")
    assert result.returncode == 1
    assert "<flow>: invalid YAML: aliases expand to more than 100000 values (line 8)" in result.stderr
    assert "<flow>: invalid YAML: alias *tasks is used inside its own anchor &tasks (line 7)" in result.stderr
    assert "<flow>: not UTF-8 text (byte 6) (line 2)" in result.stderr
    assert result.stderr.count(": invalid\n") == 3 and "Traceback" not in result.stderr


def test_flow_test_refuses_a_recursive_alias_and_a_binary_file_without_a_traceback(tmp_path):
    (tmp_path / "loop.yml").write_text(RECURSIVE)
    loop = tern("flow", "test", tmp_path / "loop.yml")
    assert loop.returncode == 2 and "Traceback" not in loop.stderr
    assert "alias *tasks is used inside its own anchor &tasks (line 7)" in loop.stderr
    (tmp_path / "binary.yml").write_bytes(b"\xff")
    binary = tern("flow", "test", tmp_path / "binary.yml")
    assert binary.returncode == 2 and "not UTF-8 text (byte 0)" in binary.stderr and "Traceback" not in binary.stderr


UNLIMITED = """id: unlimited
namespace: tests
sla:
  - id: slow
    type: MAX_DURATION
    duration: PT1H
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: daily
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "@daily"
"""


def test_validate_prints_what_is_not_acted_on_as_warnings_and_exits_zero(tmp_path):
    path = tmp_path / "unlimited.yml"
    path.write_text(UNLIMITED)
    result = tern("flow", "validate", path, FIXTURES / "valid" / "sequential.yml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": valid") == 2
    assert result.stderr.splitlines() == [
        f"warning: {path}: sla (line 3): accepted but not acted on yet: SLAs are not checked"
    ]


def test_flow_test_prints_the_warnings_before_the_run(tmp_path):
    path = tmp_path / "unlimited.yml"
    path.write_text(UNLIMITED)
    result = tern("flow", "test", path, "--json")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"warning: {path}: sla (line 3): accepted but not acted on yet: SLAs are not checked"
    assert lines[-1].endswith("ended SUCCESS")
    assert json.loads(result.stdout.strip().splitlines()[-1])["state"] == "SUCCESS"


def test_flow_test_runs_finally_and_after_execution():
    result = tern("flow", "test", FIXTURES / "valid" / "after-execution-failed.yml", "--json")
    assert result.returncode == 1 and "warning:" not in result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["state"] == "FAILED"
    assert [(r["taskId"], r["state"]) for r in summary["taskRuns"]] == [
        ("fail", "FAILED"),
        ("handler", "SUCCESS"),
        ("cleanup", "SUCCESS"),
        ("on_success", "SKIPPED"),
        ("on_failure", "SUCCESS"),
    ]
