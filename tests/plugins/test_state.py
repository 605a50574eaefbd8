"""The older state store tasks: a named map per flow (or namespace), per loop value unless told otherwise."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

LOOPS = """id: states
namespace: tests.state
tasks:
  - id: per_value
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b"]
    tasks:
      - id: set1
        type: io.kestra.plugin.core.state.Set
        name: trail
        data:
          value: "{{ taskrun.value }}"
      - id: get1
        type: io.kestra.plugin.core.state.Get
        name: trail
  - id: shared
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b"]
    concurrencyLimit: 1
    tasks:
      - id: get2
        type: io.kestra.plugin.core.state.Get
        name: trail
        taskrunValue: false
      - id: set2
        type: io.kestra.plugin.core.state.Set
        name: trail
        taskrunValue: false
        data:
          value: "{{ (currentEachOutput(outputs.get2).data.value ?? 'start') ~ '-' ~ taskrun.value }}"
          other: kept
  - id: final
    type: io.kestra.plugin.core.state.Get
    name: trail
    taskrunValue: false
  - id: delete
    type: io.kestra.plugin.core.state.Delete
    name: trail
    taskrunValue: false
  - id: again
    type: io.kestra.plugin.core.state.Delete
    name: trail
    taskrunValue: false
"""


def test_states_are_kept_per_loop_value_or_shared_and_merged(run_flow, tmp_path):
    (tmp_path / "states.yml").write_text(LOOPS)
    execution = run_flow(tmp_path / "states.yml").execution
    runs = {(r.task_id, r.value): r for r in execution.task_runs.all()}
    assert execution.state == "SUCCESS"
    assert runs[("get1", "a")].outputs == {"data": {"value": "a"}, "count": 1}
    assert runs[("get1", "b")].outputs == {"data": {"value": "b"}, "count": 1}
    assert runs[("final", None)].outputs["data"] == {"value": "start-a-b", "other": "kept"}
    assert runs[("delete", None)].outputs == {"deleted": True} and runs[("again", None)].outputs == {"deleted": False}


def test_a_state_lives_on_into_the_next_execution_and_a_missing_one_can_be_an_error(run_flow, tmp_path):
    (tmp_path / "counter.yml").write_text("""id: counter
namespace: tests.state
tasks:
  - id: read
    type: io.kestra.plugin.core.state.Get
    name: runs
  - id: bump
    type: io.kestra.plugin.core.state.Set
    name: runs
    data:
      n: "{{ (outputs.read.data.n ?? 0) + 1 }}"
  - id: strict
    type: io.kestra.plugin.core.state.Get
    name: never-set
    errorOnMissing: true
""")
    first = run_flow(tmp_path / "counter.yml").execution
    second = run_flow(tmp_path / "counter.yml").execution
    assert second.task_runs.get(task_id="read").outputs["data"] == {"n": "1"}
    assert first.state == second.state == "FAILED"
    assert second.task_runs.get(task_id="strict").state == "FAILED"
