"""Exit: the execution ends now, in the state asked for."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def run(run_flow, tmp_path, tasks: str):
    path = tmp_path / "exit.yml"
    path.write_text("id: exit\nnamespace: tests.exit\ntasks:\n" + tasks)
    execution = run_flow(path).execution
    return execution, {r.task_id: r for r in execution.task_runs.all()}


@pytest.mark.parametrize("state", ["SUCCESS", "WARNING", "FAILED"])
def test_exit_ends_the_execution_in_its_state_and_nothing_after_it_runs(run_flow, tmp_path, state):
    execution, runs = run(
        run_flow,
        tmp_path,
        f"""  - id: check
    type: io.kestra.plugin.core.flow.If
    condition: "true"
    then:
      - id: stop
        type: io.kestra.plugin.core.execution.Exit
        state: {state}
      - id: after_exit
        type: io.kestra.plugin.core.log.Log
        message: never
  - id: later
    type: io.kestra.plugin.core.log.Log
    message: never
""",
    )
    assert execution.state == state
    assert runs["stop"].state == "SUCCESS" and runs["stop"].outputs == {"state": state}
    assert runs["check"].state == state
    assert "after_exit" not in runs and "later" not in runs


def test_exit_killed_kills_the_tasks_still_running(run_flow, tmp_path):
    started = time.monotonic()
    execution, runs = run(
        run_flow,
        tmp_path,
        """  - id: both
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: slow
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["sleep 30"]
      - id: quick
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: wait
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT0.3S
          - id: stop
            type: io.kestra.plugin.core.execution.Exit
            state: KILLED
""",
    )
    assert execution.state == "KILLED" and runs["slow"].state == "KILLED"
    assert time.monotonic() - started < 15


def test_exit_with_another_state_lets_a_running_branch_finish_without_changing_the_end(run_flow, tmp_path):
    execution, runs = run(
        run_flow,
        tmp_path,
        """  - id: both
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: slow
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["sleep 1.5", "echo done"]
      - id: later
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: wait
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT0.5S
          - id: stop
            type: io.kestra.plugin.core.execution.Exit
            state: WARNING
""",
    )
    assert execution.state == "WARNING" and runs["both"].state == "WARNING" and runs["later"].state == "WARNING"
    assert runs["slow"].state == "SUCCESS"  # it finished on its worker; the execution had already ended
    assert runs["slow"].ended_at > execution.ended_at


def test_kestras_canceled_ends_the_execution_killed(run_flow, tmp_path):
    execution, runs = run(
        run_flow,
        tmp_path,
        """  - id: stop
    type: io.kestra.plugin.core.execution.Exit
    state: CANCELED
""",
    )
    assert execution.state == "KILLED" and runs["stop"].outputs == {"state": "KILLED"}
