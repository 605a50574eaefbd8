"""The bounds of issue 11 through the real task path: a render past its budget fails its task naming the task,
the property and the limit; a task's timeout and a kill stop a task that is still rendering; outputs over
their size are refused whole."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from flows_app import dispatch
from flows_app.engine import output_size
from flows_app.models import Execution, LogEntry, TaskRun
from flows_app.services.executions import advance_execution, kill_execution, start_execution
from flows_app.services.flows import save_flow
from flows_app.services.taskruns import run_task_run
from tests.services.test_flows_and_state import Recorder

# a render that runs for minutes: 10**10 empty loop steps, each within every size limit
LONG_RENDER = "{% for i in range(1, 99999) %}{% for j in range(1, 99999) %}{% endfor %}{% endfor %}"


def flow_file(tmp_path, source: str):
    path = tmp_path / "flow.yml"
    path.write_text(source)
    return path


def errors_of(execution) -> list[str]:
    return list(LogEntry.objects.filter(execution_id=execution.id, level="ERROR").values_list("message", flat=True))


def test_a_render_past_a_size_limit_fails_its_task_naming_the_task_the_property_and_the_limit(run_flow, tmp_path):
    source = """id: wide
namespace: tests.bounds
tasks:
  - id: shout
    type: io.kestra.plugin.core.log.Log
    message: "{{ 'x' | center(2000000000) }}"
"""
    started = time.monotonic()
    outcome = run_flow(flow_file(tmp_path, source))
    assert time.monotonic() - started < 10
    assert outcome.execution.state == "FAILED"
    [error] = errors_of(outcome.execution)
    assert "shout" in error and "message" in error
    assert "more than the limit of 10,000,000 (TERN_TEMPLATE_MAX_CHARS)" in error


def test_a_tasks_timeout_stops_it_while_it_renders(run_flow, tmp_path):
    source = f"""id: slow-render
namespace: tests.bounds
tasks:
  - id: think
    type: io.kestra.plugin.core.log.Log
    timeout: PT1S
    message: "{LONG_RENDER}"
"""
    started = time.monotonic()
    outcome = run_flow(flow_file(tmp_path, source))
    assert time.monotonic() - started < 5  # not the render budget's 10 s
    assert outcome.execution.state == "FAILED"
    assert errors_of(outcome.execution) == ["task 'think': Timeout after PT1S, while rendering"]


@pytest.mark.django_db(transaction=True)
def test_a_kill_stops_a_task_while_it_renders_and_frees_its_thread():
    source = f"""id: killed-render
namespace: tests.bounds
tasks:
  - id: think
    type: io.kestra.plugin.core.log.Log
    message: "{LONG_RENDER}"
"""
    with dispatch.using(Recorder()):
        execution = start_execution(save_flow(source).flow)
        advance_execution(execution.id)
        run = TaskRun.objects.get(execution=execution, task_id="think")

        def work():
            try:
                run_task_run(run.id)
            finally:
                connection.close()

        worker = threading.Thread(target=work)
        worker.start()
        deadline = time.monotonic() + 10
        while TaskRun.objects.get(id=run.id).state != "RUNNING":
            assert time.monotonic() < deadline, "the task run never started"
            time.sleep(0.02)
        killed_at = time.monotonic()
        assert kill_execution(execution.id)
        worker.join(timeout=5)
        assert not worker.is_alive(), "the render went on after the kill"
        assert time.monotonic() - killed_at < 2  # the render asks twice a second
    assert TaskRun.objects.get(id=run.id).state == "KILLED"
    assert Execution.objects.get(id=execution.id).state == "KILLED"
    assert errors_of(execution) == ["task 'think': the execution was killed while this task was rendering"]


@pytest.fixture
def small_outputs():
    saved = output_size.MAX_BYTES
    output_size.configure(1000)
    yield
    output_size.configure(saved)


def test_outputs_over_the_limit_are_refused_whole_and_say_what_to_do(run_flow, tmp_path, small_outputs):
    source = """id: big-outputs
namespace: tests.bounds
tasks:
  - id: small
    type: io.kestra.plugin.core.debug.Return
    format: "{{ 'x' | center(900) }}"
  - id: big
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner:
      type: io.kestra.plugin.core.runner.Process
    commands:
      - python3 -c "print('::{\\"outputs\\":{\\"big\\":\\"' + 'x' * 2000 + '\\"}}::')"
"""
    outcome = run_flow(flow_file(tmp_path, source))
    assert outcome.execution.state == "FAILED"
    runs = {r.task_id: r for r in TaskRun.objects.filter(execution=outcome.execution)}
    assert runs["small"].state == "SUCCESS" and len(runs["small"].outputs["value"]) == 900
    assert runs["big"].state == "FAILED" and runs["big"].outputs == {}  # nothing stored half
    [error] = errors_of(outcome.execution)
    assert error.startswith("the outputs of task 'big' take 2.04 KB as JSON, more than the limit of 1 KB")
    assert "(TERN_OUTPUT_MAX_BYTES)" in error and "outputFiles" in error


def test_flow_outputs_over_the_limit_fail_the_execution(run_flow, tmp_path, small_outputs):
    source = """id: big-flow-outputs
namespace: tests.bounds
tasks:
  - id: make
    type: io.kestra.plugin.core.debug.Return
    format: "{{ 'x' | center(600) }}"
outputs:
  - id: twice
    type: STRING
    value: "{{ outputs.make.value ~ outputs.make.value }}"
"""
    outcome = run_flow(flow_file(tmp_path, source))
    assert outcome.execution.state == "FAILED"
    assert not outcome.execution.outputs
    [error] = errors_of(outcome.execution)
    assert error.startswith("flow outputs: the flow's outputs take 1.21 KB as JSON, more than the limit of 1 KB")
