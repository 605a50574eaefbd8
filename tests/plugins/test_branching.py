"""Switch, If, AllowFailure, Dag, OutputValues and Sleep: the planner stepped by hand, then flows run for real."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from flows_app.engine.planner import apply, plan
from flows_app.engine.snapshot import ExecutionSnapshot
from flows_app.engine.states import State
from flows_app.spec.errors import FlowValidationError
from flows_app.spec.flow import load_flow
from flows_app.spec.model import FlowSpec, TaskSpec
from plugins_app.base import PluginError
from plugins_app.core.branching import Dag, Switch
from plugins_app.core.misc import OutputValues, Sleep

NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
LOG = "io.kestra.plugin.core.log.Log"


class Sim:
    """An execution in memory: plan, apply, and let the test end runs as a worker would."""

    def __init__(self, source: str | FlowSpec, inputs=None):
        self.flow = source if isinstance(source, FlowSpec) else load_flow(source)
        ids = itertools.count(1)
        self.new_id = lambda: f"r{next(ids)}"
        self.snapshot = ExecutionSnapshot("e1", self.flow, State.CREATED, (), NOW, inputs=inputs or {})

    def step(self):
        result = plan(self.snapshot, self.new_id)
        self.snapshot = apply(self.snapshot, result.actions)
        return result

    def run_of(self, task_id):
        [run] = [r for r in self.snapshot.runs if r.task_id == task_id]
        return run

    def queued(self):
        return sorted(r.task_id for r in self.snapshot.runs if r.state == State.QUEUED)

    def finish(self, task_id, state=State.SUCCESS):
        run = self.run_of(task_id)
        runs = tuple(
            r.evolve(state=state, attempts=r.attempts + 1) if r.id == run.id else r for r in self.snapshot.runs
        )
        self.snapshot = self.snapshot.with_runs(runs)
        self.step()

    @property
    def state(self):
        return self.snapshot.state

    def states(self):
        return {r.task_id: r.state for r in self.snapshot.runs}


def flow(tasks: str, inputs: str = "") -> str:
    return f"id: f\nnamespace: tests\n{inputs}tasks:\n{tasks}"


def log(task_id: str, indent: int) -> str:
    pad = " " * indent
    return f"{pad}- id: {task_id}\n{pad}  type: {LOG}\n{pad}  message: {task_id}\n"


# ---- Switch ---------------------------------------------------------------------------------------

SWITCH = flow(
    f"""  - id: route
    type: io.kestra.plugin.core.flow.Switch
    value: "{{{{ inputs.kind }}}}"
    cases:
      A:
{log("a1", 8)}{log("a2", 8)}      1:
{log("one", 8)}    defaults:
{log("other", 6)}{log("after", 2)}""",
    "inputs:\n  - id: kind\n    type: STRING\n",
)


def test_switch_runs_the_matching_case_in_order_and_outputs_its_value():
    sim = Sim(SWITCH, {"kind": "A"})
    sim.step()
    assert sim.run_of("route").outputs == {"value": "A", "defaults": False}
    assert sim.queued() == ["a1"]
    sim.finish("a1")
    assert sim.queued() == ["a2"]
    sim.finish("a2")
    assert sim.states()["route"] == State.SUCCESS and sim.queued() == ["after"]
    assert "other" not in sim.states() and "one" not in sim.states()


def test_switch_matches_a_case_key_yaml_read_as_a_number():
    sim = Sim(SWITCH, {"kind": "1"})
    sim.step()
    assert sim.queued() == ["one"]


def test_switch_falls_back_to_defaults_and_says_so():
    sim = Sim(SWITCH, {"kind": "Z"})
    sim.step()
    assert sim.run_of("route").outputs == {"value": "Z", "defaults": True}
    assert sim.queued() == ["other"]


def test_switch_without_a_match_or_defaults_fails_and_stops_the_flow():
    sim = Sim(
        flow(f"""  - id: route
    type: io.kestra.plugin.core.flow.Switch
    value: nope
    cases:
      A:
{log("a1", 8)}{log("after", 2)}""")
    )
    sim.step()
    assert sim.states() == {"route": State.FAILED}
    assert sim.state == State.FAILED


def test_a_failing_case_runs_the_switch_errors_and_fails_it():
    sim = Sim(
        flow(f"""  - id: route
    type: io.kestra.plugin.core.flow.Switch
    value: A
    cases:
      A:
{log("a1", 8)}{log("a2", 8)}    errors:
{log("handler", 6)}""")
    )
    sim.step()
    sim.finish("a1", State.FAILED)
    assert sim.queued() == ["handler"]
    sim.finish("handler")
    assert sim.states()["route"] == State.FAILED and "a2" not in sim.states()


def test_switch_needs_cases_or_defaults():
    assert Switch.check({"value": "x", "cases": {}, "defaults": None})
    assert not Switch.check({"value": "x", "defaults": [{"id": "d", "type": LOG}]})


def test_a_switch_with_no_cases_and_no_defaults_is_invalid():
    with pytest.raises(FlowValidationError):
        load_flow(flow("  - id: s\n    type: io.kestra.plugin.core.flow.Switch\n    value: x\n    cases: {}\n"))


# ---- If -------------------------------------------------------------------------------------------

IF = flow(
    f"""  - id: check
    type: io.kestra.plugin.core.flow.If
    condition: "{{{{ inputs.flag }}}}"
    then:
{log("yes1", 6)}{log("yes2", 6)}    else:
{log("no1", 6)}""",
    "inputs:\n  - id: flag\n    type: STRING\n",
)


@pytest.mark.parametrize("flag", ["true", "True", "1", "yes", "anything"])
def test_if_runs_then_when_the_condition_renders_true(flag):
    sim = Sim(IF, {"flag": flag})
    sim.step()
    assert sim.queued() == ["yes1"] and sim.run_of("check").outputs == {"evaluationResult": True}
    sim.finish("yes1")
    sim.finish("yes2")
    assert sim.state == State.SUCCESS and "no1" not in sim.states()


@pytest.mark.parametrize("flag", ["false", "False", "0", "-0", "", " ", "null"])
def test_if_runs_else_when_the_condition_renders_false(flag):
    sim = Sim(IF, {"flag": flag})
    sim.step()
    assert sim.queued() == ["no1"]


def test_if_without_else_and_false_succeeds_with_no_children():
    sim = Sim(
        flow(f"""  - id: check
    type: io.kestra.plugin.core.flow.If
    condition: "{{{{ 1 > 2 }}}}"
    then:
{log("never", 6)}{log("after", 2)}""")
    )
    sim.step()
    assert sim.states() == {"check": State.SUCCESS, "after": State.QUEUED}


def test_if_needs_then():
    with pytest.raises(FlowValidationError, match="then"):
        load_flow(flow("  - id: check\n    type: io.kestra.plugin.core.flow.If\n    condition: 'true'\n"))


# ---- AllowFailure ---------------------------------------------------------------------------------

ALLOW = flow(f"""  - id: best-effort
    type: io.kestra.plugin.core.flow.AllowFailure
    tasks:
{log("flaky", 6)}{log("not-reached", 6)}    errors:
{log("cleanup", 6)}{log("after", 2)}""")


def test_allow_failure_turns_a_child_failure_into_a_warning_and_the_flow_goes_on():
    sim = Sim(ALLOW)
    sim.step()
    sim.finish("flaky", State.FAILED)
    assert sim.queued() == ["cleanup"]
    sim.finish("cleanup")
    assert sim.states()["best-effort"] == State.WARNING and sim.queued() == ["after"]
    assert "not-reached" not in sim.states()
    sim.finish("after")
    assert sim.state == State.WARNING


def test_allow_failure_that_does_not_fail_succeeds():
    sim = Sim(ALLOW)
    sim.step()
    sim.finish("flaky")
    sim.finish("not-reached")
    assert sim.states()["best-effort"] == State.SUCCESS


# ---- Dag ------------------------------------------------------------------------------------------


def dag_flow(deps: dict[str, list[str]], concurrent: int = 0) -> FlowSpec:
    """Built by hand: the flow parser cannot read a Dag's `{task, dependsOn}` entries yet."""
    children = tuple(TaskSpec(id=t, type=LOG, properties={"message": t}) for t in deps)
    entries = [{"task": {"id": t, "type": LOG, "message": t}, "dependsOn": d} for t, d in deps.items()]
    dag = TaskSpec(
        id="dag", type=Dag.type, properties={"tasks": entries, "concurrent": concurrent}, branches={"tasks": children}
    )
    after = TaskSpec(id="after", type=LOG, properties={"message": "after"})
    return FlowSpec(id="f", namespace="tests", tasks=(dag, after))


DIAMOND = {"fetch": [], "compile": ["fetch"], "lint": ["fetch"], "package": ["compile", "lint"]}


def test_dag_starts_a_task_once_all_its_dependencies_succeeded():
    sim = Sim(dag_flow(DIAMOND))
    sim.step()
    assert sim.queued() == ["fetch"]
    sim.finish("fetch")
    assert sim.queued() == ["compile", "lint"]
    sim.finish("compile")
    assert sim.queued() == ["lint"]
    sim.finish("lint")
    assert sim.queued() == ["package"]
    sim.finish("package")
    assert sim.states()["dag"] == State.SUCCESS and sim.queued() == ["after"]


def test_dag_runs_at_most_concurrent_tasks_at_once():
    sim = Sim(dag_flow({"a": [], "b": [], "c": [], "d": ["a"]}, concurrent=2))
    sim.step()
    assert sim.queued() == ["a", "b"]
    sim.finish("a")
    assert sim.queued() == ["b", "c"]  # c was ready before d
    sim.finish("b")
    assert sim.queued() == ["c", "d"]


def test_a_dag_failure_stops_new_starts_and_fails_the_dag_once_the_running_end():
    sim = Sim(dag_flow({"a": [], "b": [], "c": ["a"]}))
    sim.step()
    sim.finish("a", State.FAILED)
    assert sim.queued() == ["b"] and sim.states()["dag"] == State.RUNNING
    sim.finish("b")
    assert sim.states()["dag"] == State.FAILED and "c" not in sim.states()
    assert sim.state == State.FAILED


def test_dag_reports_unknown_dependencies_and_cycles_with_their_paths():
    def entry(task_id, *deps):
        return {"task": {"id": task_id, "type": LOG}, "dependsOn": list(deps)}

    issues = Dag.check({"tasks": [entry("a"), entry("b", "x"), entry("c", "b")]})
    assert issues == [(("tasks", 1, "dependsOn", 0), "'x' is not the id of a task of this Dag")]
    [(path, message)] = Dag.check({"tasks": [entry("a", "b"), entry("b", "a"), entry("c", "b")]})
    assert path == ("tasks",) and message == "dependency cycle: a -> b -> a"
    assert Dag.check({"tasks": [entry("a", "a")]}) == [(("tasks",), "dependency cycle: a -> a")]
    assert Dag.check({"tasks": [entry("a"), entry("b", "a"), entry("c", "a", "b")]}) == []


DAG_SOURCE = flow("""  - id: build
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task:
          id: fetch
          type: io.kestra.plugin.core.log.Log
          message: fetch
      - task:
          id: compile
          type: io.kestra.plugin.core.log.Log
          message: compile
        dependsOn: [fetch]
""")


def test_a_dag_flow_parses_its_tasks_and_dependencies():
    spec = load_flow(DAG_SOURCE)
    assert [t.id for t in spec.task("build").branches["tasks"]] == ["fetch", "compile"]


@pytest.mark.parametrize("deps, message", [("[fetch, nope]", "'nope' is not the id"), ("[compile]", "cycle")])
def test_a_dag_with_an_unknown_or_circular_dependency_is_invalid(deps, message):
    source = DAG_SOURCE.replace("message: fetch", f"message: fetch\n        dependsOn: {deps}")
    with pytest.raises(FlowValidationError, match=message):
        load_flow(source)


@pytest.mark.django_db(transaction=True)
def test_a_dag_runs_through_the_real_services(run_flow, tmp_path):
    path = tmp_path / "dag.yml"
    path.write_text(
        DAG_SOURCE
        + """      - task:
          id: done
          type: io.kestra.plugin.core.debug.Return
          format: "{{ task.id }} ran"
        dependsOn: [compile]
"""
    )
    outcome = run_flow(path)
    runs = {run["taskId"]: run for run in outcome.summary["taskRuns"]}
    assert outcome.execution.state == "SUCCESS"
    assert list(runs) == ["build", "fetch", "compile", "done"] and runs["done"]["outputs"] == {"value": "done ran"}


@pytest.mark.django_db(transaction=True)
def test_flowable_runs_end_their_attempt_when_they_end(run_flow, tmp_path):
    """A flowable's attempt closes with it, also when it fails as it starts (a Switch with no case)."""
    path = tmp_path / "attempts.yml"
    path.write_text("""id: attempts
namespace: tests.branching
tasks:
  - id: seq
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: hello
        type: io.kestra.plugin.core.log.Log
        message: hi
  - id: pick
    type: io.kestra.plugin.core.flow.Switch
    value: nothing
    cases:
      other:
        - id: never
          type: io.kestra.plugin.core.log.Log
          message: no
""")
    runs = {r.task_id: r for r in run_flow(path).execution.task_runs.all()}
    assert [(a["state"], "endDate" in a) for a in runs["seq"].attempts] == [("SUCCESS", True)]
    assert [(a["state"], "endDate" in a) for a in runs["pick"].attempts] == [("FAILED", True)]


# ---- OutputValues and Sleep -----------------------------------------------------------------------


class Ctx(SimpleNamespace):
    """A RunContext stand-in for runnables."""

    def should_stop(self):
        return self.stop()


def test_output_values_returns_its_values():
    props = OutputValues.Properties(values={"a": 1, "b": [1, 2], "c": {"d": "e"}})
    assert OutputValues().run(props, Ctx()) == {"values": {"a": 1, "b": [1, 2], "c": {"d": "e"}}}


def test_sleep_waits_for_its_duration():
    started = time.monotonic()
    assert Sleep().run(Sleep.Properties(duration="PT0.2S"), Ctx(timeout=None, stop=lambda: False)) == {}
    assert time.monotonic() - started >= 0.2


def test_sleep_wakes_early_when_told_to_stop():
    started = time.monotonic()
    with pytest.raises(PluginError, match="killed"):
        Sleep().run(Sleep.Properties(duration="PT1H"), Ctx(timeout=None, stop=lambda: True))
    assert time.monotonic() - started < 1


def test_sleep_longer_than_its_timeout_fails_at_the_timeout():
    with pytest.raises(PluginError, match="Timeout"):
        Sleep().run(Sleep.Properties(duration="PT1H"), Ctx(timeout=0.1, stop=lambda: False))


def test_a_bad_sleep_duration_is_a_validation_error():
    with pytest.raises(FlowValidationError, match="duration"):
        load_flow(flow("  - id: nap\n    type: io.kestra.plugin.core.flow.Sleep\n    duration: soon\n"))


# ---- through the real services --------------------------------------------------------------------


def runs_by_task(outcome):
    return {run["taskId"]: run for run in outcome.summary["taskRuns"]}


@pytest.mark.django_db(transaction=True)
class TestFlowRuns:
    def test_a_switch_case_runs_and_later_tasks_read_its_outputs(self, run_flow):
        outcome = run_flow("branching-switch.yml", {"kind": "CSV"})
        runs = runs_by_task(outcome)
        assert outcome.execution.state == "SUCCESS"
        assert runs["csv"]["outputs"] == {"value": "csv for CSV"}
        assert runs["csv-after"]["outputs"] == {"value": "csv for CSV then more"}
        assert runs["after"]["outputs"] == {"value": "after CSV (defaults: false)"}
        assert "other" not in runs and "on-error" not in runs

    def test_a_switch_takes_its_defaults(self, run_flow):
        outcome = run_flow("branching-switch.yml", {"kind": "XML"})
        runs = runs_by_task(outcome)
        assert outcome.execution.state == "SUCCESS"
        assert runs["route"]["outputs"] == {"value": "XML", "defaults": True}
        assert runs["other"]["outputs"] == {"value": "other: XML"}

    def test_a_failing_case_runs_the_switch_errors_and_fails_the_execution(self, run_flow):
        outcome = run_flow("branching-switch.yml", {"kind": "BROKEN"})
        runs = runs_by_task(outcome)
        assert outcome.execution.state == "FAILED"
        assert runs["route"]["state"] == "FAILED" and runs["on-error"]["state"] == "SUCCESS"
        assert "after" not in runs

    def test_a_switch_with_no_match_and_no_defaults_fails(self, run_flow):
        outcome = run_flow("branching-switch-no-default.yml", {"kind": "XML"})
        runs = runs_by_task(outcome)
        assert outcome.execution.state == "FAILED" and runs["route"]["state"] == "FAILED"
        assert "csv" not in runs and "after" not in runs

    @pytest.mark.parametrize("flag, ran", [("true", "when-true"), ("0", "when-false")])
    def test_if_takes_one_branch(self, run_flow, flag, ran):
        outcome = run_flow("branching-if.yml", {"flag": flag})
        runs = runs_by_task(outcome)
        assert outcome.execution.state == "SUCCESS"
        assert ran in runs and ({"when-true", "when-false"} - {ran}).isdisjoint(runs)
        assert ("then-only" in runs) == (flag == "true")

    def test_allow_failure_ends_warning_and_the_flow_goes_on(self, run_flow):
        outcome = run_flow("branching-allow-failure.yml")
        runs = runs_by_task(outcome)
        assert outcome.execution.state == "WARNING"
        assert runs["flaky"]["state"] == "FAILED" and runs["best-effort"]["state"] == "WARNING"
        assert runs["cleanup"]["state"] == "SUCCESS" and runs["goes-on"]["state"] == "SUCCESS"
        assert "skipped-after-failure" not in runs

    def test_output_values_are_read_by_later_tasks_after_a_sleep(self, run_flow):
        outcome = run_flow("branching-output-values.yml")
        runs = runs_by_task(outcome)
        assert outcome.execution.state == "SUCCESS" and runs["nap"]["state"] == "SUCCESS"
        assert runs["facts"]["outputs"]["values"] == {
            "flow": "branching-output-values",
            "answer": 42,
            "items": ["facts", "static"],
            "nested": {"key": "tests.branching"},
        }
        assert runs["read"]["outputs"] == {"value": "branching-output-values 42 facts tests.branching"}
