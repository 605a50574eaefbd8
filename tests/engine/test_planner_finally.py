"""`finally` and `afterExecution` stepped by hand, as Kestra runs them: the planner says what comes next."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from textwrap import dedent

from flows_app.engine.actions import SetExecutionOutputs, SetExecutionState
from flows_app.engine.states import State
from flows_app.engine.variables import build_variables

from .test_planner import NOW
from .test_planner import Sim as PlannerSim


class Sim(PlannerSim):
    """Also keeps the flow outputs the planner asks to keep, as the services do."""

    def step(self):
        result = super().step()
        for action in result.actions:
            if isinstance(action, SetExecutionOutputs):
                self.snapshot = replace(self.snapshot, outputs=dict(action.outputs))
        return result

    def sees(self, task_id, template="{{ execution.state }}"):
        """What `task_id`'s templates read, rendered as the worker would."""
        from flows_app.engine.templating import render_value

        task = self.flow.task(task_id)
        return render_value(template, build_variables(self.snapshot, task, self.run_of(task_id)))


def source(text: str) -> str:
    return "id: f\nnamespace: tests\n" + dedent(text)


LOG = "type: io.kestra.plugin.core.log.Log\n    message: hi"
FINALLY = source(f"""
tasks:
  - id: a
    {LOG}
  - id: b
    {LOG}
errors:
  - id: e1
    {LOG}
finally:
  - id: f1
    {LOG}
  - id: f2
    {LOG}
""")


def test_finally_runs_after_the_tasks_and_the_execution_keeps_their_state():
    sim = Sim(FINALLY)
    sim.step()
    sim.finish("a")
    sim.step()
    assert sim.queued() == ["b"]
    sim.finish("b")
    sim.step()
    assert sim.queued() == ["f1"] and sim.state == State.RUNNING  # finally runs while the execution runs
    assert sim.sees("f1") == "RUNNING"
    sim.finish("f1", State.FAILED)
    sim.step()
    assert sim.queued() == ["f2"]  # each finally task runs, whatever the one before did
    sim.finish("f2")
    assert SetExecutionState(State.SUCCESS) in sim.step().actions  # Kestra: finally does not change the state
    assert "e1" not in sim.states()


def test_after_a_failure_the_errors_run_then_finally_and_the_execution_fails():
    sim = Sim(FINALLY)
    sim.step()
    sim.finish("a", State.FAILED)
    sim.step()
    assert sim.queued() == ["e1"] and "f1" not in sim.states()
    sim.finish("e1")
    sim.step()
    assert sim.queued() == ["f1"]
    sim.finish("f1")
    sim.step()
    sim.finish("f2")
    sim.step()
    assert sim.state == State.FAILED and "b" not in sim.states()


def test_a_failed_error_handler_still_lets_finally_run():
    sim = Sim(FINALLY)
    sim.step()
    sim.finish("a", State.FAILED)
    sim.step()
    sim.finish("e1", State.FAILED)
    sim.step()
    assert sim.queued() == ["f1"]


def test_a_flowables_finally_runs_inside_it_before_it_ends():
    sim = Sim(
        source("""
    tasks:
      - id: par
        type: io.kestra.plugin.core.flow.Parallel
        tasks:
          - id: p1
            type: io.kestra.plugin.core.log.Log
            message: one
          - id: p2
            type: io.kestra.plugin.core.log.Log
            message: two
        errors:
          - id: e1
            type: io.kestra.plugin.core.log.Log
            message: handled
        finally:
          - id: f1
            type: io.kestra.plugin.core.log.Log
            message: cleanup
      - id: after
        type: io.kestra.plugin.core.log.Log
        message: next
    """)
    )
    sim.step()
    sim.finish("p1", State.FAILED)
    sim.step()
    assert sim.queued() == ["p2"]  # the running sibling ends first
    sim.finish("p2")
    sim.step()
    assert sim.queued() == ["e1"]
    sim.finish("e1")
    sim.step()
    assert sim.queued() == ["f1"] and sim.run_of("f1").parent_id == sim.run_of("par").id
    assert sim.states()["par"] == State.RUNNING
    sim.finish("f1")
    sim.step()
    assert sim.states()["par"] == State.FAILED and sim.state == State.FAILED and "after" not in sim.states()


def test_a_loops_finally_runs_once_after_every_value():
    sim = Sim(
        source("""
    tasks:
      - id: each
        type: io.kestra.plugin.core.flow.ForEach
        values: ["x", "y"]
        concurrencyLimit: 0
        tasks:
          - id: t
            type: io.kestra.plugin.core.debug.Return
            format: "{{ taskrun.value }}"
        finally:
          - id: f1
            type: io.kestra.plugin.core.log.Log
            message: "{{ taskrun.value }}"
    """)
    )
    sim.step()
    runs = tuple(r.evolve(state=State.SUCCESS) if r.task_id == "t" else r for r in sim.snapshot.runs)
    sim.snapshot = sim.snapshot.with_runs(runs)
    sim.step()
    assert sim.queued() == ["f1"] and sim.run_of("f1").value is None
    sim.finish("f1")
    sim.step()
    assert sim.states()["each"] == State.SUCCESS and sim.state == State.SUCCESS


def test_an_allow_failure_block_runs_its_finally_and_ends_warning():
    sim = Sim(
        source("""
    tasks:
      - id: safe
        type: io.kestra.plugin.core.flow.AllowFailure
        tasks:
          - id: ko
            type: io.kestra.plugin.core.execution.Fail
        finally:
          - id: f1
            type: io.kestra.plugin.core.log.Log
            message: cleanup
    """)
    )
    sim.step()
    sim.finish("ko", State.FAILED)
    sim.step()
    sim.finish("f1")
    sim.step()
    assert sim.states()["safe"] == State.WARNING and sim.state == State.WARNING


AFTER = source("""
tasks:
  - id: a
    type: io.kestra.plugin.core.debug.Return
    format: done
errors:
  - id: e1
    type: io.kestra.plugin.core.log.Log
    message: handled
finally:
  - id: f1
    type: io.kestra.plugin.core.log.Log
    message: cleanup
afterExecution:
  - id: on_success
    runIf: "{{ execution.state == 'SUCCESS' }}"
    type: io.kestra.plugin.core.log.Log
    message: fine
  - id: on_failure
    runIf: "{{ execution.state == 'FAILED' }}"
    type: io.kestra.plugin.core.execution.Fail
  - id: report
    type: io.kestra.plugin.core.output.OutputValues
    values:
      state: "{{ execution.state }}"
""")


def test_after_execution_tasks_run_once_the_final_state_is_known_and_see_it():
    sim = Sim(AFTER)
    sim.step()
    sim.finish("a")
    sim.step()
    assert sim.queued() == ["f1"]
    sim.finish("f1")
    sim.step()
    assert sim.queued() == ["on_success"] and sim.state == State.RUNNING  # RUNNING while they run
    assert sim.sees("on_success") == "SUCCESS"
    sim.finish("on_success")
    sim.step()
    assert sim.states()["on_failure"] == State.SKIPPED and sim.queued() == ["report"]
    assert sim.sees("report") == "SUCCESS"
    sim.finish("report")
    assert sim.step().actions == (SetExecutionState(State.SUCCESS),)


def test_after_execution_tasks_see_a_failure_and_do_not_change_the_state():
    sim = Sim(AFTER)
    sim.step()
    sim.finish("a", State.FAILED)
    sim.step()
    sim.finish("e1")
    sim.step()
    sim.finish("f1")
    sim.step()
    assert sim.states()["on_success"] == State.SKIPPED and sim.queued() == ["on_failure"]
    assert sim.sees("on_failure") == "FAILED"
    sim.finish("on_failure", State.FAILED)
    sim.step()
    assert sim.queued() == ["report"]  # each afterExecution task runs, whatever the one before did
    sim.finish("report", State.FAILED)
    sim.step()
    assert sim.state == State.FAILED


def test_a_failed_after_execution_task_leaves_a_success_a_success():
    sim = Sim(
        source("""
    tasks:
      - id: a
        type: io.kestra.plugin.core.log.Log
        message: hi
    afterExecution:
      - id: notify
        type: io.kestra.plugin.core.execution.Fail
    """)
    )
    sim.step()
    sim.finish("a")
    sim.step()
    sim.finish("notify", State.FAILED)
    sim.step()
    assert sim.state == State.SUCCESS


def test_flow_outputs_are_kept_before_the_after_execution_tasks_and_they_read_them():
    sim = Sim(
        source("""
    tasks:
      - id: a
        type: io.kestra.plugin.core.debug.Return
        format: result
    outputs:
      - id: final
        type: STRING
        value: "{{ outputs.a.value }}"
    afterExecution:
      - id: report
        runIf: "{{ execution.outputs.final == 'result' }}"
        type: io.kestra.plugin.core.log.Log
        message: "{{ execution.outputs.final }}"
    """)
    )
    sim.step()
    sim.finish("a", outputs={"value": "result"})
    result = sim.step()
    assert SetExecutionOutputs({"final": "result"}) in result.actions and sim.queued() == ["report"]
    assert sim.sees("report", "{{ execution.outputs.final }} {{ execution.state }}") == "result SUCCESS"
    sim.finish("report")
    assert sim.step().actions == (SetExecutionState(State.SUCCESS),)  # the kept outputs stay


def test_flow_outputs_that_cannot_be_rendered_fail_the_execution_and_after_execution_tasks_see_it():
    sim = Sim(
        source("""
    tasks:
      - id: a
        type: io.kestra.plugin.core.log.Log
        message: hi
    outputs:
      - id: final
        type: STRING
        value: "{{ outputs.missing.value }}"
    afterExecution:
      - id: report
        type: io.kestra.plugin.core.log.Log
        message: "{{ execution.state }}"
    """)
    )
    sim.step()
    sim.finish("a")
    kept = [a for a in sim.step().actions if isinstance(a, SetExecutionOutputs)]
    assert kept[0].outputs == {} and kept[0].message.startswith("flow outputs:")
    assert sim.sees("report") == "FAILED"
    sim.finish("report")
    sim.step()
    assert sim.state == State.FAILED


def test_after_an_exit_the_after_execution_tasks_run_and_see_the_exits_state():
    sim = Sim(
        source("""
    tasks:
      - id: stop
        type: io.kestra.plugin.core.execution.Exit
        state: WARNING
      - id: never
        type: io.kestra.plugin.core.log.Log
        message: not reached
    afterExecution:
      - id: report
        type: io.kestra.plugin.core.log.Log
        message: "{{ execution.state }}"
    """)
    )
    sim.step()
    assert sim.states()["stop"] == State.SUCCESS and sim.run_of("stop").outputs == {"state": "WARNING"}
    assert sim.queued() == ["report"] and sim.state == State.RUNNING
    assert sim.sees("report") == "WARNING"
    sim.step()
    assert sim.states()["report"] == State.QUEUED  # the Exit leaves the afterExecution tasks alone
    sim.finish("report")
    sim.step()
    assert sim.state == State.WARNING and "never" not in sim.states()


def test_a_kill_runs_no_finally_but_its_after_execution_tasks_then_ends_killed():
    sim = Sim(FINALLY.replace("finally:", "afterExecution:\n  - id: report\n    " + LOG + "\nfinally:"))
    sim.step()
    sim.snapshot = sim.snapshot.with_runs(sim.snapshot.runs, State.KILLING)
    sim.step()
    assert sim.states() == {"a": State.KILLED, "report": State.QUEUED} and sim.state == State.KILLING
    assert sim.sees("report") == "KILLED"
    sim.finish("report")
    sim.step()
    assert sim.state == State.KILLED and sim.states() == {"a": State.KILLED, "report": State.SUCCESS}  # no finally


def test_after_a_kill_afterexecution_flowables_and_retries_still_move_on():
    sim = Sim(
        FINALLY.replace(
            "finally:",
            "afterExecution:\n  - id: notify\n    type: io.kestra.plugin.core.flow.Sequential\n    tasks:\n"
            "      - id: first\n        type: io.kestra.plugin.core.log.Log\n        message: hi\n"
            "        retry:\n          type: constant\n          interval: PT1S\n          maxAttempt: 2\n"
            "      - id: second\n        type: io.kestra.plugin.core.log.Log\n        message: bye\nfinally:",
        )
    )
    sim.step()
    sim.snapshot = sim.snapshot.with_runs(sim.snapshot.runs, State.KILLING)
    sim.step()
    assert sim.states()["notify"] == State.RUNNING and sim.queued() == ["first"]  # the Sequential started its child
    sim.attempt("first", State.FAILED)  # its own retry holds it back, in the KILLING execution too
    assert sim.states()["first"] == State.RETRYING
    sim.at(NOW + timedelta(seconds=2))
    sim.step()
    assert sim.queued() == ["first"]
    sim.finish("first")
    sim.step()
    assert sim.queued() == ["second"]
    sim.finish("second")
    sim.step()
    assert sim.state == State.KILLED and sim.states()["notify"] == State.SUCCESS
