"""The planner stepped by hand: a fake worker ends task runs, the planner says what comes next."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from flows_app.engine.actions import CreateTaskRun, DiscardTaskRuns, RequeueTaskRun, SetExecutionState, SetTaskRunState
from flows_app.engine.outcome import decide
from flows_app.engine.planner import apply, plan
from flows_app.engine.snapshot import ExecutionSnapshot
from flows_app.engine.states import IllegalTransition, State, check_transition
from flows_app.spec.flow import load_flow

NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


class Sim:
    """An execution in memory: plan, apply, and let the test end runs as a worker would."""

    def __init__(self, source: str, inputs=None):
        self.flow = load_flow(source)
        ids = itertools.count(1)
        self.new_id = lambda: f"r{next(ids)}"
        self.snapshot = ExecutionSnapshot("e1", self.flow, State.CREATED, (), NOW, inputs=inputs or {})
        self.last = None

    def step(self):
        self.last = plan(self.snapshot, self.new_id)
        self.snapshot = apply(self.snapshot, self.last.actions)
        return self.last

    def attempt(self, task_id, state):
        """A worker ends an attempt: it is decided (an end, or a retry at a time) as the services do."""
        run = self.run_of(task_id)
        decision = decide(self.flow, self.flow.task(task_id), state, run.attempts + 1, True, NOW, self.snapshot.now)
        runs = tuple(
            r.evolve(state=decision.state, attempts=r.attempts + 1, next_attempt_at=decision.next_attempt_at)
            if r.id == run.id
            else r
            for r in self.snapshot.runs
        )
        self.snapshot = self.snapshot.with_runs(runs)

    def at(self, moment):
        self.snapshot = ExecutionSnapshot(**{**self.snapshot.__dict__, "now": moment})

    def run_of(self, task_id):
        matches = [r for r in self.snapshot.runs if r.task_id == task_id]
        assert len(matches) == 1, f"{task_id}: {len(matches)} runs"
        return matches[0]

    def queued(self):
        return [r.task_id for r in self.snapshot.runs if r.state == State.QUEUED]

    def finish(self, task_id, state=State.SUCCESS, outputs=None):
        run = self.run_of(task_id)
        runs = tuple(
            r.evolve(state=state, attempts=r.attempts + 1, outputs=outputs or {}) if r.id == run.id else r
            for r in self.snapshot.runs
        )
        self.snapshot = self.snapshot.with_runs(runs)

    @property
    def state(self):
        return self.snapshot.state

    def states(self):
        return {r.task_id: r.state for r in self.snapshot.runs}


def flow(tasks: str, extra: str = "") -> str:
    return f"id: f\nnamespace: tests\ntasks:\n{tasks}\n{extra}"


LOG = "    type: io.kestra.plugin.core.log.Log\n    message: hi\n"


def test_it_runs_tasks_one_after_another():
    sim = Sim(flow(f"  - id: a\n{LOG}  - id: b\n{LOG}"))
    sim.step()
    assert sim.state == State.RUNNING and sim.queued() == ["a"]
    assert sim.step().actions == ()  # a still queued: nothing to do
    sim.finish("a")
    sim.step()
    assert sim.queued() == ["b"]
    sim.finish("b")
    assert SetExecutionState(State.SUCCESS) in sim.step().actions
    assert sim.state == State.SUCCESS


def test_a_failure_stops_the_sequence_and_fails_the_execution():
    sim = Sim(flow(f"  - id: a\n{LOG}  - id: b\n{LOG}"))
    sim.step()
    sim.finish("a", State.FAILED)
    sim.step()
    assert sim.state == State.FAILED
    assert "b" not in sim.states()


def test_errors_run_after_a_failure_and_the_execution_stays_failed():
    sim = Sim(
        flow(
            f"  - id: a\n{LOG}  - id: b\n{LOG}", f"errors:\n  - id: e1\n{LOG.replace('    ', '    ')}  - id: e2\n{LOG}"
        )
    )
    sim.step()
    sim.finish("a", State.FAILED)
    sim.step()
    assert sim.queued() == ["e1"] and sim.state == State.RUNNING
    sim.finish("e1")
    sim.step()
    assert sim.queued() == ["e2"]
    sim.finish("e2")
    sim.step()
    assert sim.state == State.FAILED
    assert "b" not in sim.states()


def test_parallel_starts_its_children_together_and_a_nested_flowable_at_once():
    source = flow(
        """  - id: par
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: seq
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: s1
            type: io.kestra.plugin.core.log.Log
            message: x
      - id: p2
        type: io.kestra.plugin.core.log.Log
        message: y
  - id: last
"""
        + LOG.replace("    type", "    type", 1)
    )
    sim = Sim(source)
    sim.step()
    assert sim.states()["par"] == State.RUNNING and sim.states()["seq"] == State.RUNNING
    assert sorted(sim.queued()) == ["p2", "s1"]
    sim.finish("p2")
    sim.step()
    assert "last" not in sim.states()  # s1 still queued
    sim.finish("s1")
    sim.step()
    assert sim.states()["seq"] == State.SUCCESS and sim.states()["par"] == State.SUCCESS
    assert sim.queued() == ["last"]


def test_parallel_concurrent_limits_how_many_run_at_once():
    children = "".join(
        f"      - id: c{i}\n        type: io.kestra.plugin.core.log.Log\n        message: m\n" for i in range(5)
    )
    sim = Sim(
        flow(f"  - id: par\n    type: io.kestra.plugin.core.flow.Parallel\n    concurrent: 2\n    tasks:\n{children}")
    )
    sim.step()
    assert sim.queued() == ["c0", "c1"]
    sim.finish("c0")
    sim.step()
    assert sim.queued() == ["c1", "c2"]


def test_a_failed_parallel_child_starts_no_new_child_and_fails_the_parent():
    children = "".join(
        f"      - id: c{i}\n        type: io.kestra.plugin.core.log.Log\n        message: m\n" for i in range(3)
    )
    sim = Sim(
        flow(f"  - id: par\n    type: io.kestra.plugin.core.flow.Parallel\n    concurrent: 2\n    tasks:\n{children}")
    )
    sim.step()
    sim.finish("c0", State.FAILED)
    sim.step()
    assert "c2" not in sim.states() and sim.states()["par"] == State.RUNNING  # c1 still running
    sim.finish("c1")
    sim.step()
    assert sim.states()["par"] == State.FAILED and sim.state == State.FAILED


def test_errors_on_a_flowable_run_inside_it():
    source = flow("""  - id: seq
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: a
        type: io.kestra.plugin.core.log.Log
        message: x
    errors:
      - id: handler
        type: io.kestra.plugin.core.log.Log
        message: y
""")
    sim = Sim(source)
    sim.step()
    sim.finish("a", State.FAILED)
    sim.step()
    assert sim.queued() == ["handler"]
    assert sim.run_of("handler").parent_id == sim.run_of("seq").id
    sim.finish("handler")
    sim.step()
    assert sim.states()["seq"] == State.FAILED and sim.state == State.FAILED


def test_allow_failure_on_a_flowable_turns_its_failure_into_a_warning():
    source = flow("""  - id: seq
    type: io.kestra.plugin.core.flow.Sequential
    allowFailure: true
    tasks:
      - id: a
        type: io.kestra.plugin.core.log.Log
        message: x
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: y
""")
    sim = Sim(source)
    sim.step()
    sim.finish("a", State.FAILED)
    sim.step()
    assert sim.states()["seq"] == State.WARNING and sim.queued() == ["after"]
    sim.finish("after")
    sim.step()
    assert sim.state == State.WARNING


def test_disabled_tasks_are_left_out():
    sim = Sim(flow(f"  - id: a\n{LOG}  - id: b\n    disabled: true\n{LOG}  - id: c\n{LOG}"))
    sim.step()
    sim.finish("a")
    sim.step()
    assert sim.queued() == ["c"]


def test_run_if_false_skips_the_task_and_the_flow_goes_on():
    sim = Sim(flow(f'  - id: a\n    runIf: "{{{{ inputs.go }}}}"\n{LOG}  - id: b\n{LOG}'), inputs={"go": False})
    sim.step()
    assert sim.states() == {"a": State.SKIPPED, "b": State.QUEUED}


def test_a_due_retry_is_requeued_and_a_later_one_sets_the_wake_time():
    sim = Sim(flow(f"  - id: a\n{LOG}"))
    sim.step()
    later = NOW + timedelta(seconds=30)
    runs = tuple(r.evolve(state=State.RETRYING, attempts=1, next_attempt_at=later) for r in sim.snapshot.runs)
    sim.snapshot = sim.snapshot.with_runs(runs)
    result = sim.step()
    assert result.actions == () and result.wake_at == later
    sim.snapshot = ExecutionSnapshot(**{**sim.snapshot.__dict__, "now": later})
    result = sim.step()
    assert [type(a) for a in result.actions] == [RequeueTaskRun] and result.to_dispatch == ["r1"]
    assert sim.queued() == ["a"]


def test_a_held_execution_starts_nothing_and_fires_no_timer_until_released_but_a_kill_goes_on():
    sim = Sim(flow(f"  - id: a\n{LOG}  - id: b\n{LOG}", "retry:\n  type: constant\n  interval: PT1M\n  maxAttempts: 3"))
    sim.step()
    sim.finish("a")
    sim.snapshot = ExecutionSnapshot(**{**sim.snapshot.__dict__, "state": State.PAUSED, "held": True})
    assert sim.step().actions == () and sim.last.wake_at is None
    assert "b" not in sim.states()
    sim.snapshot = ExecutionSnapshot(**{**sim.snapshot.__dict__, "state": State.RUNNING, "held": False})
    sim.step()
    assert sim.queued() == ["b"]
    sim.attempt("b", State.FAILED)  # a retry in a minute: a timer
    sim.step()
    assert sim.last.wake_at is not None
    sim.snapshot = ExecutionSnapshot(**{**sim.snapshot.__dict__, "state": State.PAUSED, "held": True})
    sim.at(NOW + timedelta(minutes=5))
    assert sim.step().actions == () and sim.last.wake_at is None and sim.states()["b"] == State.RETRYING
    sim.snapshot = ExecutionSnapshot(**{**sim.snapshot.__dict__, "state": State.KILLING})
    sim.step()
    assert sim.states()["b"] == State.KILLED and sim.state == State.KILLED


def test_killing_drops_queued_work_and_ends_killed():
    sim = Sim(
        flow(
            "  - id: par\n    type: io.kestra.plugin.core.flow.Parallel\n    tasks:\n      - id: a\n        type: io.kestra.plugin.core.log.Log\n        message: x\n      - id: b\n        type: io.kestra.plugin.core.log.Log\n        message: y\n"
        )
    )
    sim.step()
    runs = tuple(r.evolve(state=State.RUNNING) if r.task_id == "a" else r for r in sim.snapshot.runs)
    sim.snapshot = sim.snapshot.with_runs(runs, State.KILLING)
    sim.step()
    assert sim.states()["b"] == State.KILLED
    assert sim.states()["a"] == State.RUNNING and sim.state == State.KILLING  # a worker still holds a
    sim.finish("a", State.KILLED)
    sim.step()
    assert sim.states()["par"] == State.KILLED and sim.state == State.KILLED


def test_a_bad_template_in_a_flowable_property_fails_it_with_the_task_and_property_named():
    sim = Sim(
        flow(
            '  - id: par\n    type: io.kestra.plugin.core.flow.Parallel\n    concurrent: "{{ nope.x }}"\n    tasks:\n'
            "      - id: a\n        type: io.kestra.plugin.core.log.Log\n        message: x\n"
        )
    )
    result = sim.step()
    failure = [a for a in result.actions if isinstance(a, SetTaskRunState) and a.state == State.FAILED]
    assert failure and "par" in failure[0].message and "concurrent" in failure[0].message
    assert sim.state == State.FAILED


def test_flow_outputs_are_rendered_when_the_execution_ends():
    sim = Sim(
        flow(
            "  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    format: x\n",
            'outputs:\n  - id: out\n    type: STRING\n    value: "{{ outputs.r.value }}!"\n',
        )
    )
    sim.step()
    sim.finish("r", outputs={"value": "hey"})
    result = sim.step()
    assert SetExecutionState(State.SUCCESS, outputs={"out": "hey!"}) in result.actions


def test_a_failing_flow_output_fails_the_execution():
    sim = Sim(
        flow(f"  - id: a\n{LOG}", 'outputs:\n  - id: out\n    type: STRING\n    value: "{{ outputs.missing.value }}"\n')
    )
    sim.step()
    sim.finish("a")
    sim.step()
    assert sim.state == State.FAILED


def test_flow_outputs_are_typed_like_inputs_and_a_wrong_type_fails_the_execution():
    outputs = (
        'outputs:\n  - id: n\n    type: INT\n    value: "{{ outputs.r.value }}"\n'
        "  - id: cfg\n    type: JSON\n    value: '{\"a\": 1}'\n"
    )
    sim = Sim(flow("  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    format: x\n", outputs))
    sim.step()
    sim.finish("r", outputs={"value": "42"})
    assert SetExecutionState(State.SUCCESS, outputs={"n": 42, "cfg": {"a": 1}}) in sim.step().actions

    sim = Sim(flow("  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    format: x\n", outputs))
    sim.step()
    sim.finish("r", outputs={"value": "many"})
    ended = [a for a in sim.step().actions if isinstance(a, SetExecutionState)]
    assert ended[0].state == State.FAILED and ended[0].message == "flow outputs: output 'n': 'many' is not an integer"


def test_created_runs_keep_their_order_and_parents():
    sim = Sim(flow(f"  - id: a\n{LOG}"))
    result = sim.step()
    created = [a for a in result.actions if isinstance(a, CreateTaskRun)]
    assert created == [CreateTaskRun("r1", "a", None, State.QUEUED)]


# ---- outcomes of attempts ------------------------------------------------------------------------


def retry_flow(retry: str, extra: str = "") -> str:
    return flow(f"  - id: a\n{LOG}{extra}    retry:\n{retry}")


def test_a_failed_attempt_is_retried_after_the_constant_interval():
    spec = load_flow(retry_flow("      type: constant\n      interval: PT10S\n      maxAttempt: 3\n"))
    decision = decide(spec, spec.task("a"), State.FAILED, 1, True, NOW, NOW)
    assert decision.state == State.RETRYING and decision.next_attempt_at == NOW + timedelta(seconds=10)
    assert decide(spec, spec.task("a"), State.FAILED, 3, True, NOW, NOW).state == State.FAILED


def test_exponential_retries_grow_and_stop_at_max_interval():
    spec = load_flow(
        retry_flow(
            "      type: exponential\n      interval: PT1S\n      maxInterval: PT5S\n      delayFactor: 2\n      maxAttempt: 10\n"
        )
    )
    waits = [
        (decide(spec, spec.task("a"), State.FAILED, n, True, NOW, NOW).next_attempt_at - NOW).total_seconds()
        for n in range(1, 6)
    ]
    assert waits == [1, 2, 4, 5, 5]


def test_random_retries_wait_between_their_bounds():
    spec = load_flow(
        retry_flow("      type: random\n      minInterval: PT1S\n      maxInterval: PT2S\n      maxAttempt: 50\n")
    )
    waits = {
        (decide(spec, spec.task("a"), State.FAILED, 1, True, NOW, NOW).next_attempt_at - NOW).total_seconds()
        for _ in range(30)
    }
    assert all(1 <= w <= 2 for w in waits) and len(waits) > 1


def test_max_duration_ends_retries():
    spec = load_flow(retry_flow("      type: constant\n      interval: PT10S\n      maxDuration: PT15S\n"))
    assert decide(spec, spec.task("a"), State.FAILED, 1, True, NOW, NOW).state == State.RETRYING
    assert decide(spec, spec.task("a"), State.FAILED, 2, True, NOW, NOW + timedelta(seconds=10)).state == State.FAILED


def test_allow_failure_turns_a_final_failure_into_a_warning_but_retries_first():
    spec = load_flow(
        retry_flow("      type: constant\n      interval: PT1S\n      maxAttempt: 2\n", "    allowFailure: true\n")
    )
    assert decide(spec, spec.task("a"), State.FAILED, 1, True, NOW, NOW).state == State.RETRYING
    assert decide(spec, spec.task("a"), State.FAILED, 2, True, NOW, NOW).state == State.WARNING


def test_warning_on_retry_marks_a_late_success_as_warning():
    spec = load_flow(
        retry_flow("      type: constant\n      interval: PT1S\n      maxAttempt: 3\n      warningOnRetry: true\n")
    )
    assert decide(spec, spec.task("a"), State.SUCCESS, 1, True, NOW, NOW).state == State.SUCCESS
    assert decide(spec, spec.task("a"), State.SUCCESS, 2, True, NOW, NOW).state == State.WARNING


def test_a_failure_that_cannot_be_helped_by_retrying_is_not_retried():
    spec = load_flow(retry_flow("      type: constant\n      interval: PT1S\n      maxAttempt: 3\n"))
    assert decide(spec, spec.task("a"), State.FAILED, 1, False, NOW, NOW).state == State.FAILED


def test_allow_warning_turns_a_warning_into_success():
    spec = load_flow(flow(f"  - id: a\n    allowWarning: true\n{LOG}"))
    assert decide(spec, spec.task("a"), State.WARNING, 1, True, NOW, NOW).state == State.SUCCESS


# ---- retries inside flowables (Kestra's: a flowable's retry is its failing children's) ----------------

RETRY_10S = "      type: constant\n      interval: PT10S\n      maxAttempt: 2\n"


def seq_flow(retry: str = RETRY_10S, child_retry: str = "", errors: bool = False) -> str:
    child = f"      - id: a\n        type: io.kestra.plugin.core.log.Log\n        message: x\n{child_retry}"
    handler = "    errors:\n      - id: h\n        type: io.kestra.plugin.core.log.Log\n        message: y\n"
    return flow(
        f"  - id: seq\n    type: io.kestra.plugin.core.flow.Sequential\n    retry:\n{retry}"
        f"    tasks:\n{child}" + (handler if errors else "")
    )


def test_a_child_inherits_the_retry_of_the_nearest_flowable_around_it():
    spec = load_flow(seq_flow())
    decision = decide(spec, spec.task("a"), State.FAILED, 1, True, NOW, NOW)
    assert decision.state == State.RETRYING and decision.next_attempt_at == NOW + timedelta(seconds=10)
    assert decide(spec, spec.task("a"), State.FAILED, 2, True, NOW, NOW).state == State.FAILED


def test_only_a_tasks_own_warning_on_retry_marks_its_late_success():
    inherited = load_flow(seq_flow(RETRY_10S + "      warningOnRetry: true\n"))
    assert decide(inherited, inherited.task("a"), State.SUCCESS, 2, True, NOW, NOW).state == State.SUCCESS
    own = load_flow(
        seq_flow(
            child_retry="        retry:\n          type: constant\n          interval: PT1S\n"
            "          warningOnRetry: true\n"
        )
    )
    assert decide(own, own.task("a"), State.SUCCESS, 2, True, NOW, NOW).state == State.WARNING


def test_an_inherited_retry_does_not_hold_back_an_allowed_failure():
    spec = load_flow(seq_flow(child_retry="        allowFailure: true\n"))
    assert decide(spec, spec.task("a"), State.FAILED, 1, True, NOW, NOW).state == State.WARNING


def test_a_flowable_waits_while_its_child_waits_for_a_retry_and_the_retry_reuses_the_run():
    sim = Sim(seq_flow())
    sim.step()
    first = sim.run_of("a")
    sim.attempt("a", State.FAILED)
    result = sim.step()
    assert result.actions == () and result.wake_at == NOW + timedelta(seconds=10)
    assert sim.states() == {"seq": State.RUNNING, "a": State.RETRYING}
    sim.at(NOW + timedelta(seconds=10))
    assert sim.step().actions == (RequeueTaskRun(first.id),)
    assert sim.run_of("a").id == first.id and sim.queued() == ["a"]
    sim.attempt("a", State.FAILED)  # the second and last attempt
    sim.step()
    assert sim.states() == {"seq": State.FAILED, "a": State.FAILED} and sim.run_of("a").attempts == 2
    assert sim.state == State.FAILED


def test_errors_run_between_attempts_of_an_inherited_retry_and_are_cleared_before_the_next():
    sim = Sim(seq_flow(errors=True))
    sim.step()
    sim.attempt("a", State.FAILED)
    sim.step()
    assert sim.queued() == ["h"] and sim.states()["seq"] == State.RUNNING
    handler = sim.run_of("h")
    sim.finish("h")
    assert sim.step().actions == ()  # the retry is not due yet, and the Sequential waits for it
    sim.at(NOW + timedelta(seconds=10))
    assert sim.step().actions == (DiscardTaskRuns((handler.id,)), RequeueTaskRun(sim.run_of("a").id))
    assert sim.states() == {"seq": State.RUNNING, "a": State.QUEUED}
    sim.attempt("a", State.SUCCESS)
    sim.step()
    assert sim.states() == {"seq": State.SUCCESS, "a": State.SUCCESS} and sim.state == State.SUCCESS


def test_a_due_retry_waits_for_the_errors_its_failure_started_with_no_wake_time_meanwhile():
    sim = Sim(seq_flow(errors=True))
    sim.step()
    sim.attempt("a", State.FAILED)
    sim.step()
    sim.at(NOW + timedelta(seconds=30))
    result = sim.step()
    assert result.actions == () and result.wake_at is None  # h's end advances the execution
    sim.finish("h")
    assert [type(a) for a in sim.step().actions] == [DiscardTaskRuns, RequeueTaskRun]


def test_a_childs_own_retry_keeps_its_flowables_errors_waiting():
    sim = Sim(seq_flow(child_retry="        retry:\n" + RETRY_10S.replace("      ", "          "), errors=True))
    sim.step()
    sim.attempt("a", State.FAILED)
    assert sim.step().actions == ()
    assert sim.states() == {"seq": State.RUNNING, "a": State.RETRYING}


# ---- the state table -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "current,target",
    [
        (State.SUCCESS, State.RUNNING),
        (State.FAILED, State.SUCCESS),
        (State.QUEUED, State.SUCCESS),
        (State.KILLED, State.QUEUED),
    ],
)
def test_illegal_moves_are_refused(current, target):
    with pytest.raises(IllegalTransition):
        check_transition("x", current, target)


def test_legal_moves_pass():
    assert check_transition("x", State.QUEUED, State.RUNNING) == State.RUNNING
    assert check_transition("x", State.RETRYING, State.QUEUED) == State.QUEUED


def test_a_pause_with_a_delay_pauses_the_execution_until_its_time_then_runs_its_tasks():
    sim = Sim(
        flow(
            "  - id: p\n    type: io.kestra.plugin.core.flow.Pause\n    delay: PT10S\n    tasks:\n"
            "      - id: inside\n        type: io.kestra.plugin.core.log.Log\n        message: x\n"
        )
    )
    result = sim.step()
    assert sim.states() == {"p": State.PAUSED} and sim.state == State.PAUSED
    assert result.wake_at == NOW + timedelta(seconds=10)
    assert sim.step().actions == ()  # nothing to do before the time
    sim.snapshot = ExecutionSnapshot(**{**sim.snapshot.__dict__, "now": NOW + timedelta(seconds=10)})
    sim.step()
    assert sim.state == State.RUNNING and sim.states() == {"p": State.RUNNING, "inside": State.QUEUED}
    sim.finish("inside")
    sim.step()
    assert sim.states()["p"] == State.SUCCESS and sim.state == State.SUCCESS


def test_an_execution_is_not_paused_while_other_work_runs():
    sim = Sim(
        flow(
            "  - id: par\n    type: io.kestra.plugin.core.flow.Parallel\n    tasks:\n"
            "      - id: p\n        type: io.kestra.plugin.core.flow.Pause\n"
            "      - id: busy\n        type: io.kestra.plugin.core.log.Log\n        message: x\n"
        )
    )
    sim.step()
    assert sim.states()["p"] == State.PAUSED and sim.state == State.RUNNING  # busy is still queued
    sim.finish("busy")
    sim.step()
    assert sim.state == State.PAUSED
