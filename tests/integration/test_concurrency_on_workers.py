"""A flow's concurrency limit across real workers: random starts, kills and restarts (a hypothesis state
machine) never run more executions at once than the limit, and the queue always drains."""

from __future__ import annotations

import itertools
from datetime import datetime

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from flows_app.engine.states import TERMINAL, State
from flows_app.models import Execution
from flows_app.services.concurrency import HOLDING
from flows_app.services.executions import kill_execution, start_execution
from flows_app.services.flows import save_flow
from flows_app.services.housekeeping import tick
from flows_app.services.restarts import CannotReopen, restart_execution

from .conftest import wait_until

LIMIT = 2
SOURCE = """id: {flow_id}
namespace: tests.concurrency
concurrency:
  limit: {limit}
inputs:
  - id: fail
    type: BOOLEAN
    defaults: false
tasks:
  - id: work
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.3S
  - id: maybe_fail
    type: io.kestra.plugin.core.execution.Fail
    runIf: "{{{{ inputs.fail }}}}"
"""
ENDED = [s.value for s in TERMINAL]
flow_ids = (f"limited_{n}" for n in itertools.count())


def most_at_once(executions) -> int:
    """The most executions that held a slot at the same moment, read from their histories."""
    moments = []
    for execution in executions:
        holding_since = None
        for entry in execution.histories:
            state, at = entry["state"], datetime.fromisoformat(entry["date"])
            if state in HOLDING and holding_since is None:
                holding_since = at
                moments.append((at, 1))
            elif state not in HOLDING and holding_since is not None:
                holding_since = None
                moments.append((at, -1))
    moments.sort(key=lambda m: (m[0], m[1]))  # an end before a start at the same instant
    return max(itertools.accumulate(delta for _, delta in moments), default=0)


class StartsKillsAndRestarts(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.flow = save_flow(SOURCE.format(flow_id=next(flow_ids), limit=LIMIT)).flow
        self.started: list[str] = []

    @rule(fail=st.booleans())
    def start(self, fail):
        self.started.append(start_execution(self.flow, {"fail": fail}).id)

    @rule(pick=st.integers(min_value=0))
    def kill(self, pick):
        if self.started:
            kill_execution(self.started[pick % len(self.started)])

    @rule(pick=st.integers(min_value=0))
    def restart(self, pick):
        if self.started:
            try:
                restart_execution(self.started[pick % len(self.started)])
            except CannotReopen:
                pass  # not FAILED or KILLED (yet): nothing to restart

    @invariant()
    def never_more_running_than_the_limit(self):
        assert Execution.objects.filter(flow=self.flow, state__in=HOLDING).count() <= LIMIT

    def teardown(self):
        def drained():
            tick()  # the scheduler's housekeeping, should a wake-up have been lost
            return not Execution.objects.filter(flow=self.flow).exclude(state__in=ENDED).exists()

        wait_until(drained, timeout=90, interval=0.3, what="every execution ended: the queue drained")
        executions = list(Execution.objects.filter(flow=self.flow))
        assert most_at_once(executions) <= LIMIT
        assert all(e.state != State.QUEUED for e in executions)


def test_random_starts_kills_and_restarts_never_exceed_the_limit(celery_runtime):
    celery_runtime.start(concurrency=4)
    celery_runtime.start(concurrency=4)
    budget = settings(
        max_examples=4,
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    run_state_machine_as_test(StartsKillsAndRestarts, settings=budget)


def test_most_at_once_counts_overlaps_from_histories():
    def execution(*entries):
        return type("E", (), {"histories": [{"state": s, "date": f"2026-01-01T00:00:0{t}+00:00"} for s, t in entries]})

    two_overlapping = [
        execution(("CREATED", 0), ("RUNNING", 1), ("SUCCESS", 4)),
        execution(("RUNNING", 2), ("FAILED", 3)),
    ]
    assert most_at_once(two_overlapping) == 2
    one_after_another = [
        execution(("RUNNING", 1), ("SUCCESS", 2)),
        execution(("QUEUED", 1), ("RUNNING", 2), ("SUCCESS", 3)),
    ]
    assert most_at_once(one_after_another) == 1
