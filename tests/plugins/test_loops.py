"""EachSequential, EachParallel and ForEach: stepped by hand through the planner, then run through the services."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

import pytest

from flows_app.engine.planner import apply, plan
from flows_app.engine.snapshot import ExecutionSnapshot
from flows_app.engine.states import State
from flows_app.engine.variables import build_variables, outputs_tree
from flows_app.spec.flow import load_flow
from plugins_app.base import FlowableError
from plugins_app.core.loops import loop_values

NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


class Sim:
    """An execution in memory: plan, apply, and let the test end runs as a worker would."""

    def __init__(self, source: str):
        ids = itertools.count(1)
        self.new_id = lambda: f"r{next(ids)}"
        self.snapshot = ExecutionSnapshot("e1", load_flow(source), State.CREATED, (), NOW)

    def step(self):
        self.snapshot = apply(self.snapshot, plan(self.snapshot, self.new_id).actions)

    def queued(self):
        return [(r.task_id, r.value) for r in self.snapshot.runs if r.state == State.QUEUED]

    def runs(self, task_id):
        return [r for r in self.snapshot.runs if r.task_id == task_id]

    def finish(self, task_id, value=None, state=State.SUCCESS, outputs=None):
        """End the queued run of `task_id` for `value`, then let the planner move on."""
        [run] = [r for r in self.snapshot.runs if r.task_id == task_id and r.value == value and r.state == State.QUEUED]
        runs = tuple(
            r.evolve(state=state, attempts=1, outputs=outputs or {}) if r.id == run.id else r
            for r in self.snapshot.runs
        )
        self.snapshot = self.snapshot.with_runs(runs)
        self.step()

    @property
    def state(self):
        return self.snapshot.state


def flow(loop: str) -> str:
    return f"id: f\nnamespace: tests\ntasks:\n{loop}"


def loop(kind: str, values: str, tasks=("a",), extra: str = "", errors=()) -> str:
    text = f"  - id: loop\n    type: io.kestra.plugin.core.flow.{kind}\n    {values}\n{extra}    tasks:\n"
    text += "".join(
        f"      - id: {t}\n        type: io.kestra.plugin.core.log.Log\n        message: hi\n" for t in tasks
    )
    if errors:
        text += "    errors:\n"
        text += "".join(
            f"      - id: {t}\n        type: io.kestra.plugin.core.log.Log\n        message: hi\n" for t in errors
        )
    return flow(text)


# ---- values ---------------------------------------------------------------------------------------


def test_values_come_from_a_list_or_its_json_text_objects_as_compact_json():
    assert loop_values(["a", {"key": "k", "value": {"sub": 1}}, 3, True]) == (
        "a",
        '{"key":"k","value":{"sub":1}}',
        "3",
        "true",
    )
    assert loop_values('["a", {"key": "k"}]') == ("a", '{"key":"k"}')


def test_a_value_given_twice_runs_once():
    assert loop_values(["a", "b", "a"]) == ("a", "b")


@pytest.mark.parametrize(
    "raw, message",
    [
        (None, "null"),
        ('[1, null, {"key": "k"}]', "1 null value"),
        ("not json", "not the JSON text of a list"),
        ('{"a": 1}', "must be a JSON list"),
        (12, "must be a list"),
    ],
)
def test_bad_values_fail_the_loop(raw, message):
    with pytest.raises(FlowableError, match=message):
        loop_values(raw)


# ---- EachSequential and ForEach -------------------------------------------------------------------


def test_each_sequential_runs_the_tasks_in_order_value_after_value():
    sim = Sim(loop("EachSequential", 'value: ["x", "y"]', tasks=("a", "b")))
    sim.step()
    assert sim.queued() == [("a", "x")]
    sim.finish("a", "x")
    assert sim.queued() == [("b", "x")]
    sim.finish("b", "x")
    assert sim.queued() == [("a", "y")]
    sim.finish("a", "y")
    sim.finish("b", "y")
    assert sim.state == State.SUCCESS
    assert [r.state for r in sim.runs("loop")] == [State.SUCCESS]


def test_for_each_runs_concurrency_limit_values_at_once_each_in_order():
    sim = Sim(loop("ForEach", "values: [1, 2, 3]", tasks=("a", "b"), extra="    concurrencyLimit: 2\n"))
    sim.step()
    assert sim.queued() == [("a", "1"), ("a", "2")]
    sim.finish("a", "2")
    assert sim.queued() == [("a", "1"), ("b", "2")]  # value 2 keeps its slot between its tasks
    sim.finish("b", "2")
    assert sim.queued() == [("a", "1"), ("a", "3")]  # value 2 done: value 3 takes its slot
    for task, value in (("a", "1"), ("b", "1"), ("a", "3"), ("b", "3")):
        sim.finish(task, value)
    assert sim.state == State.SUCCESS


def test_for_each_without_a_limit_starts_every_value():
    sim = Sim(loop("ForEach", 'values: ["a", "b", "c"]', extra="    concurrencyLimit: 0\n"))
    sim.step()
    assert sim.queued() == [("a", "a"), ("a", "b"), ("a", "c")]


def test_for_each_is_sequential_by_default():
    sim = Sim(loop("ForEach", 'values: ["a", "b"]'))
    sim.step()
    assert sim.queued() == [("a", "a")]


def test_an_empty_list_succeeds_without_children():
    sim = Sim(loop("ForEach", "values: '[]'"))
    sim.step()
    assert sim.state == State.SUCCESS
    assert [r.task_id for r in sim.snapshot.runs] == ["loop"]


def test_a_null_value_fails_the_loop_and_the_execution():
    sim = Sim(loop("ForEach", "values: '[1, null]'"))
    sim.step()
    assert sim.state == State.FAILED
    assert [(r.task_id, r.state) for r in sim.snapshot.runs] == [("loop", State.FAILED)]


def test_a_failure_stops_new_values_then_the_errors_run_once_and_the_loop_fails():
    sim = Sim(loop("ForEach", 'values: ["x", "y", "z"]', extra="    concurrencyLimit: 2\n", errors=("e",)))
    sim.step()
    sim.finish("a", "x", State.FAILED)
    assert sim.queued() == [("a", "y")]  # z does not start; the running one ends first
    sim.finish("a", "y")
    assert sim.queued() == [("e", None)]
    sim.finish("e")
    assert sim.state == State.FAILED
    assert [r.state for r in sim.runs("loop")] == [State.FAILED]
    assert not [r for r in sim.snapshot.runs if r.value == "z"]


def test_a_warning_child_makes_the_loop_end_in_warning():
    sim = Sim(loop("EachSequential", 'value: ["x"]'))
    sim.step()
    sim.finish("a", "x", State.WARNING)
    assert [r.state for r in sim.runs("loop")] == [State.WARNING]


# ---- EachParallel ---------------------------------------------------------------------------------


def test_each_parallel_runs_every_value_and_task_side_by_side():
    sim = Sim(loop("EachParallel", 'value: ["x", "y"]', tasks=("a", "b")))
    sim.step()
    assert sim.queued() == [("a", "x"), ("b", "x"), ("a", "y"), ("b", "y")]


def test_each_parallel_releases_a_child_as_a_slot_frees():
    sim = Sim(loop("EachParallel", "value: [1, 2, 3, 4]", extra="    concurrent: 2\n"))
    sim.step()
    assert sim.queued() == [("a", "1"), ("a", "2")]
    sim.finish("a", "2")
    assert sim.queued() == [("a", "1"), ("a", "3")]


def test_a_big_each_parallel_never_holds_more_than_concurrent_children():
    values = json.dumps([f"v{i}" for i in range(300)])
    sim = Sim(loop("EachParallel", f"value: '{values}'", extra="    concurrent: 10\n"))
    sim.step()
    most = 0
    while sim.state == State.RUNNING:
        queued = sim.queued()
        most = max(most, len(queued))
        sim.finish(*queued[0])
    assert sim.state == State.SUCCESS and most == 10
    assert len(sim.runs("a")) == 300


# ---- variables: taskrun.value, parent(s), outputs by value -----------------------------------------

NESTED = flow("""\
  - id: outer
    type: io.kestra.plugin.core.flow.ForEach
    values: ["o1"]
    tasks:
      - id: switch
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: inner
            type: io.kestra.plugin.core.flow.ForEach
            values: ["o1", "i2"]
            tasks:
              - id: leaf
                type: io.kestra.plugin.core.log.Log
                message: hi
""")


def test_children_see_their_value_and_their_parents_values_nearest_first():
    sim = Sim(NESTED)
    sim.step()
    [leaf] = [r for r in sim.snapshot.runs if r.task_id == "leaf"]
    variables = build_variables(sim.snapshot, sim.snapshot.flow.task("leaf"), leaf)
    assert variables["taskrun"]["value"] == "o1"
    # `inner` has no value of its own (a Sequential's child) and no outputs: Kestra leaves it out
    assert variables["parents"] == [{"taskrun": {"value": "o1"}}]
    assert variables["parent"] == {"taskrun": {"value": "o1"}}


def test_outputs_are_keyed_by_each_loop_value_even_when_inner_and_outer_values_are_equal():
    sim = Sim(NESTED)
    sim.step()
    sim.finish("leaf", "o1", outputs={"n": 1})
    sim.finish("leaf", "i2", outputs={"n": 2})
    assert outputs_tree(sim.snapshot)["leaf"] == {"o1": {"o1": {"n": 1}, "i2": {"n": 2}}}


def test_a_templated_value_is_rendered_with_the_execution_variables():
    source = flow("""\
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: x
  - id: loop
    type: io.kestra.plugin.core.flow.EachSequential
    value: '["{{ outputs.first.value }}", "b"]'
    tasks:
      - id: a
        type: io.kestra.plugin.core.log.Log
        message: hi
""")
    sim = Sim(source)
    sim.step()
    sim.finish("first", outputs={"value": "from-first"})
    assert sim.queued() == [("a", "from-first")]


# ---- through the services -------------------------------------------------------------------------


def runs_by_task(outcome):
    found: dict[str, list] = {}
    for run in outcome.summary["taskRuns"]:
        found.setdefault(run["taskId"], []).append(run)
    return found


@pytest.mark.django_db(transaction=True)
def test_a_for_each_passes_outputs_by_value_through_a_worker(run_flow):
    outcome = run_flow("loops-foreach-outputs.yml")
    runs = runs_by_task(outcome)
    assert outcome.execution.state == "SUCCESS"
    assert sorted(r["value"] for r in runs["first"]) == ["3", "a", '{"name":"b"}']
    assert {r["value"]: r["outputs"]["value"] for r in runs["second"]}['{"name":"b"}'] == '{"name":"b"}!'
    assert runs["after"][0]["outputs"] == {"value": "a! 3!"}


@pytest.mark.django_db(transaction=True)
def test_nested_loops_read_outputs_by_outer_then_inner_value(run_flow):
    outcome = run_flow("loops-nested.yml")
    runs = runs_by_task(outcome)
    assert outcome.execution.state == "SUCCESS"
    assert sorted(r["outputs"]["value"] for r in runs["pair"]) == ["x-1", "x-2", "y-1", "y-2"]
    assert runs["read"][0]["outputs"] == {"value": "x-2 y-1"}


@pytest.mark.django_db(transaction=True)
def test_a_failing_iteration_runs_the_errors_and_fails_the_execution(run_flow):
    outcome = run_flow("loops-failure.yml")
    runs = runs_by_task(outcome)
    assert outcome.execution.state == "FAILED"
    assert [(r["value"], r["state"]) for r in runs["check"]] == [("ok", "SUCCESS"), ("bad", "FAILED")]
    assert [r["state"] for r in runs["handler"]] == ["SUCCESS"]
    assert "after" not in runs


@pytest.mark.django_db(transaction=True)
def test_values_that_are_not_a_list_fail_the_loop_with_a_message(run_flow):
    outcome = run_flow("loops-bad-values.yml")
    runs = runs_by_task(outcome)
    assert outcome.execution.state == "FAILED"
    assert [r["state"] for r in runs["each"]] == ["FAILED"]
    assert "never" not in runs
