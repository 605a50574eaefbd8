"""`finally` and `afterExecution` in the spec, and the warnings for what a valid flow says that Tern does not do."""

from __future__ import annotations

from textwrap import dedent

import pytest

from flows_app.spec.errors import FlowValidationError
from flows_app.spec.flow import NOT_ACTED_ON, load_flow


def flow(text: str) -> str:
    return "id: f\nnamespace: tests\n" + dedent(text).lstrip("\n")


def errors_of(source: str) -> list[str]:
    with pytest.raises(FlowValidationError) as info:
        load_flow(source)
    return [str(e) for e in info.value.errors]


def test_finally_and_after_execution_are_task_lists_of_the_flow():
    spec = load_flow(
        flow("""
    tasks:
      - id: a
        type: io.kestra.plugin.core.log.Log
        message: hi
    finally:
      - id: f1
        type: io.kestra.plugin.core.log.Log
        message: hi
    afterExecution:
      - id: after
        type: io.kestra.plugin.core.flow.If
        condition: "{{ execution.state == 'FAILED' }}"
        then:
          - id: alert
            type: io.kestra.plugin.core.log.Log
            message: hi
    """)
    )
    assert [t.id for t in spec.finally_tasks] == ["f1"] and [t.id for t in spec.after_execution] == ["after"]
    assert spec.task("alert").path == ("afterExecution", 0, "then", 0)
    assert "finally" not in spec.extra and "afterExecution" not in spec.extra and spec.warnings == ()


def test_flowables_take_a_finally_branch():
    spec = load_flow(
        flow("""
    tasks:
      - id: seq
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: hi
        finally:
          - id: f1
            type: io.kestra.plugin.core.log.Log
            message: bye
    """)
    )
    assert [t.id for t in spec.task("seq").branches["finally"]] == ["f1"]


def test_ids_are_unique_across_tasks_finally_and_after_execution():
    errors = errors_of(
        flow("""
    tasks:
      - id: a
        type: io.kestra.plugin.core.log.Log
        message: hi
    finally:
      - id: a
        type: io.kestra.plugin.core.log.Log
        message: hi
    afterExecution:
      - id: a
        type: io.kestra.plugin.core.log.Log
        message: hi
    """)
    )
    assert errors == [
        "finally[0].id: duplicate task id 'a' (also at tasks[0]) (line 8)",
        "afterExecution[0].id: duplicate task id 'a' (also at tasks[0]) (line 12)",
    ]


def test_a_working_directorys_finally_must_be_runnable_tasks_too():
    errors = errors_of(
        flow("""
    tasks:
      - id: wd
        type: io.kestra.plugin.core.flow.WorkingDirectory
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: hi
        finally:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: b
                type: io.kestra.plugin.core.log.Log
                message: hi
    """)
    )
    assert any(
        e.startswith("tasks[0].finally[0].type: 'io.kestra.plugin.core.flow.Sequential' is a flowable") for e in errors
    )


def test_a_finally_where_tern_cannot_run_one_is_an_error_not_a_silent_no_op():
    errors = errors_of(
        flow("""
    tasks:
      - id: wait
        type: io.kestra.plugin.core.flow.Pause
        finally:
          - id: f1
            type: io.kestra.plugin.core.log.Log
            message: bye
    """)
    )
    assert errors == ["tasks[0].finally: unknown property (line 6)"]


WARNED = flow("""
revision: 4
concurrency:
  limit: 1
sla:
  - id: slow
    type: MAX_DURATION
    duration: PT1H
    behavior: FAIL
checks:
  - condition: "{{ true }}"
    message: never
workerGroup:
  key: gpu
deleted: false
listeners:
  - tasks:
      - id: listen
        type: io.kestra.plugin.core.log.Log
        message: hi
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: daily
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "@daily"
""")


def test_keys_tern_does_not_act_on_give_placed_warnings_and_the_flow_stays_valid():
    spec = load_flow(WARNED)
    assert [str(w) for w in spec.warnings] == [
        "revision (line 3): accepted but ignored: Tern numbers a flow's revisions itself when it is saved",
        "sla (line 6): accepted but not acted on yet: SLAs are not checked",
        "checks (line 11): accepted but not acted on yet: checks are not evaluated before an execution starts",
        "workerGroup (line 14): accepted but not acted on yet: set `workerGroup` on the tasks to choose their workers",
        "deleted (line 16): accepted but not acted on yet: the flow is not deleted",
        "listeners (line 17): accepted but not acted on yet: listeners do not run (Kestra deprecated them for "
        "afterExecution)",
    ]
    assert [t.id for t in spec.tasks] == ["a"]


def test_every_key_kept_aside_as_extra_is_warned_about():
    spec = load_flow(WARNED)
    assert set(spec.extra) <= set(NOT_ACTED_ON)
    assert {w.path[0] for w in spec.warnings} >= set(spec.extra)


def test_a_flow_that_says_only_what_tern_does_has_no_warnings():
    spec = load_flow(
        flow("""
    description: all acted on
    labels:
      team: data
    inputs:
      - id: name
        type: STRING
        defaults: x
    variables:
      v: 1
    tasks:
      - id: a
        type: io.kestra.plugin.core.log.Log
        message: hi
    errors:
      - id: e
        type: io.kestra.plugin.core.log.Log
        message: hi
    outputs:
      - id: o
        type: STRING
        value: x
    pluginDefaults:
      - type: io.kestra.plugin.core.log.Log
        values:
          level: INFO
    retry:
      type: constant
      interval: PT1S
    disabled: false
    """)
    )
    assert spec.warnings == ()


def test_warnings_do_not_hide_errors():
    errors = errors_of(
        flow("""
    checks:
      - condition: "{{ true }}"
    tasks:
      - id: a
        type: io.kestra.plugin.core.log.Nope
    """)
    )
    assert len(errors) == 1 and errors[0].startswith("tasks[0].type: unknown task type")
