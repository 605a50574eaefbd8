"""Flow validation: every error names its place and line, and all of a file's errors come at once."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from flows_app.spec.errors import FlowValidationError
from flows_app.spec.flow import load_flow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "flows"


def errors_of(source: str) -> list[str]:
    with pytest.raises(FlowValidationError) as info:
        load_flow(source)
    return [str(e) for e in info.value.errors]


def test_the_seed_flows_validate_as_written():
    for name in ("hello.yml", "seed-full.yml"):
        spec = load_flow((Path(__file__).resolve().parents[2] / "flows" / name).read_text())
        assert spec.id == "hello" and spec.namespace == "prod"
    full = load_flow((Path(__file__).resolve().parents[2] / "flows" / "seed-full.yml").read_text())
    hello = full.task("hello")
    assert hello.timeout == timedelta(minutes=10)
    assert hello.retry.interval == timedelta(minutes=15) and hello.retry.max_attempts == 5
    assert hello.retry.warning_on_retry is True
    assert [t.id for t in full.task("parallel").branches["tasks"]] == ["task1", "task2", "task3"]
    assert full.labels == {"owner": "john-doe", "team": "data-engineering"}
    assert full.triggers[0].type == "io.kestra.plugin.core.trigger.Schedule"


def test_a_bad_duration_is_named_by_path_and_line():
    source = """id: f
namespace: tests
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: hi
    retry:
      type: constant
      interval: PT15X
"""
    assert errors_of(source) == ["tasks[0].retry.interval: 'PT15X' is not a duration (line 9)"]


def test_all_errors_of_a_file_are_reported_at_once():
    source = """id: f
namespace: tests
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Logg
    message: hi
  - id: a b
    type: io.kestra.plugin.core.log.Log
  - id: c
    type: io.kestra.plugin.core.log.Log
    message: x
    timeout: soon
"""
    errors = errors_of(source)
    assert len(errors) == 4, errors
    assert (
        "tasks[0].type: unknown task type 'io.kestra.plugin.core.log.Logg'; did you mean 'io.kestra.plugin.core.log.Log'"
        in errors[0]
    )
    assert errors[1].startswith("tasks[1].id: 'a b' is not a valid id")
    assert errors[2] == "tasks[1].message: missing required property (line 7)"
    assert errors[3] == "tasks[2].timeout: 'soon' is not a duration (line 12)"


def test_duplicate_task_ids_are_caught_anywhere_in_the_tree():
    source = """id: f
namespace: tests
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: hi
  - id: p
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: a
        type: io.kestra.plugin.core.log.Log
        message: again
"""
    assert errors_of(source) == ["tasks[1].tasks[0].id: duplicate task id 'a' (also at tasks[0]) (line 10)"]


def test_yaml_syntax_errors_give_the_line():
    errors = errors_of("id: f\nnamespace: tests\ntasks:\n  - id: [a\n    type: x\n")
    assert errors[0].startswith("<flow>: invalid YAML") and "(line 5)" in errors[0]


def test_a_duplicate_yaml_key_is_an_error():
    assert errors_of(
        "id: f\nnamespace: tests\nid: g\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: x\n"
    ) == ["id: duplicate key 'id' (line 3)"]


def test_empty_task_lists_and_missing_fields_are_errors():
    assert errors_of("id: f\nnamespace: tests\ntasks: []\n") == ["tasks: must hold at least one task (line 3)"]
    errors = errors_of(
        "namespace: tests\ntasks:\n  - id: p\n    type: io.kestra.plugin.core.flow.Parallel\n    tasks: []\n"
    )
    assert "id: missing id (line 1)" in errors
    assert "tasks[0].tasks: must hold at least one task (line 5)" in errors


def test_bad_cron_expressions_are_errors():
    source = """id: f
namespace: tests
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: x
triggers:
  - id: s
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "61 * * * *"
"""
    assert errors_of(source) == ["triggers[0].cron: '61 * * * *': minute 61 is out of range 0-59 (line 10)"]


def test_a_wrongly_typed_property_is_an_error_unless_it_is_a_template():
    base = "id: f\nnamespace: tests\ntasks:\n  - id: p\n    type: io.kestra.plugin.core.flow.Parallel\n    concurrent: {}\n    tasks:\n      - id: a\n        type: io.kestra.plugin.core.log.Log\n        message: x\n"
    assert errors_of(base.format("many"))[0].startswith("tasks[0].concurrent: 'many'")
    assert load_flow(base.format('"{{ inputs.n }}"')).task("p").properties["concurrent"] == "{{ inputs.n }}"


def test_unknown_properties_are_errors():
    assert errors_of(
        "id: f\nnamespace: tests\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: x\n    mesage: y\n"
    ) == ["tasks[0].mesage: unknown property (line 7)"]


def test_labels_as_a_list_and_the_reserved_prefix():
    spec = load_flow(
        "id: f\nnamespace: tests\nlabels:\n  - key: a\n    value: 1\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: x\n"
    )
    assert spec.labels == {"a": "1"}
    assert (
        "reserved"
        in errors_of(
            "id: f\nnamespace: tests\nlabels:\n  system.x: y\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: x\n"
        )[0]
    )


def test_task_defaults_fill_in_properties_unless_the_task_sets_them():
    source = """id: f
namespace: tests
taskDefaults:
  - type: io.kestra.plugin.core.log.Log
    values:
      level: ERROR
      message: default
tasks:
  - id: a
    type: io.kestra.core.tasks.log.Log
  - id: b
    type: io.kestra.plugin.core.log.Log
    message: own
"""
    spec = load_flow(source)
    assert spec.task("a").properties == {"level": "ERROR", "message": "default"}
    assert spec.task("b").properties["message"] == "own"


def test_the_yaml_loader_is_safe():
    errors = errors_of("id: f\nnamespace: tests\ntasks: !!python/object/apply:os.system ['echo pwned']\n")
    assert "invalid YAML" in errors[0]


@pytest.mark.parametrize("path", sorted((FIXTURES / "invalid").glob("*.y*ml")), ids=lambda p: p.name)
def test_invalid_fixtures_are_rejected(path):
    with pytest.raises(FlowValidationError):
        load_flow(path.read_text())


@pytest.mark.parametrize("path", sorted((FIXTURES / "valid").glob("*.y*ml")), ids=lambda p: p.name)
def test_valid_fixtures_validate(path):
    load_flow(path.read_text())


def test_the_pure_heart_imports_neither_django_nor_celery():
    code = (
        "import sys; import flows_app.spec.flow, flows_app.engine.planner, flows_app.engine.templating, "
        "flows_app.engine.inputs, plugins_app.base, plugins_app.registry; "
        "from plugins_app.registry import all_plugins; all_plugins(); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('django', 'celery')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2]
    )
    assert result.returncode == 0, result.stdout + result.stderr
