"""The pure planner: given an execution's snapshot, the ordered small steps that move it forward.

`plan()` runs the steps in order; the first that has something to do returns its actions, they are
applied to an in-memory copy of the snapshot, and the steps run again from the top until none has
anything left. Same snapshot in, same decisions out: any worker may advance any execution.

The steps live here; creating runs in children.py, applying actions in memory in applying.py, the
`afterExecution` step in after_execution.py, retries inside flowables in flowable_retries.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flows_app.spec.model import TaskSpec
from plugins_app.base import (
    FlowableError,
    StartSubflow,
    Suspend,
    active,
    finally_next,
    finally_state,
    resolve_children_state,
    sequential_next,
)

from .actions import Action, DiscardTaskRuns, Plan, RequeueTaskRun, RestartTaskRun, SetExecutionState, SetTaskRunState
from .after_execution import handle_after_execution
from .applying import apply
from .children import (
    FlowableRun,
    NewId,
    allowed_state,
    create_child,
    flowable_of,
    is_flowable,
    new_run_id,
    render_flow_outputs,
)
from .flowable_retries import as_rules_see_them, child_retrying, ended_recovery, next_wake, waits_for_recovery
from .outcome import decide
from .properties import PropertyError
from .snapshot import ExecutionSnapshot, RunState
from .states import State
from .templating import TemplateError
from .variables import exit_state, in_after_execution

MAX_ROUNDS = 10_000  # a safety net: each round creates or ends at least one run


def plan(snapshot: ExecutionSnapshot, new_id: NewId = new_run_id) -> Plan:
    if snapshot.held and snapshot.state != State.KILLING:
        return Plan((), None)  # paused by hand: what runs finishes, nothing new starts, no timer fires
    steps: Sequence[Callable[[ExecutionSnapshot, NewId], list[Action]]] = (
        handle_start,
        handle_kill,
        handle_exit_before_after_execution,
        handle_wakes,
        handle_resumed,
        handle_due_retries,
        handle_flowables,
        handle_root,
        handle_after_execution,
        handle_paused,
    )
    actions: list[Action] = []
    current = snapshot
    for _ in range(MAX_ROUNDS):
        found: list[Action] = []
        for step in steps:
            found = step(current, new_id)
            if found:
                break
        if not found:
            break
        actions.extend(found)
        current = apply(current, found)
    return Plan(tuple(actions), next_wake(current))


# ---- the steps -----------------------------------------------------------------------------------


def handle_start(snapshot: ExecutionSnapshot, new_id: NewId) -> list[Action]:
    """A new execution, or one that waited for a slot of its flow's concurrency limit (the services let it
    through the gate before they plan), starts."""
    if snapshot.state in (State.CREATED, State.QUEUED):
        return [SetExecutionState(State.RUNNING)]
    return []


def handle_kill(snapshot: ExecutionSnapshot, new_id: NewId) -> list[Action]:
    """A KILLING execution: stop what has not started, let running work see the kill, end KILLED — after its
    afterExecution tasks, if it has any (handle_after_execution runs them; the kill leaves them alone)."""
    if snapshot.state != State.KILLING:
        return []
    flow = snapshot.flow
    actions: list[Action] = []
    for run in snapshot.runs:
        if _after_a_kill(snapshot, run):
            continue
        if run.state in (State.CREATED, State.QUEUED, State.RETRYING, State.PAUSED) or (
            run.state == State.RUNNING
            and is_flowable(snapshot, run)
            and all(c.state.is_terminal for c in snapshot.children(run.id))
        ):
            actions.append(SetTaskRunState(run.id, State.KILLED))
    if actions or active(flow.after_execution):
        return actions
    if all(r.state.is_terminal for r in snapshot.runs):
        return [SetExecutionState(State.KILLED)]
    return []


def _after_a_kill(snapshot: ExecutionSnapshot, run: RunState) -> bool:
    """In a KILLING execution only the afterExecution tasks move on (wakes, retries, flowables' children)."""
    return in_after_execution(snapshot.flow.task(run.task_id))


def handle_exit(snapshot: ExecutionSnapshot, new_id: NewId) -> list[Action]:
    """An Exit task ended: the execution ends in its state (KILLED goes through the kill). Waiting runs
    end KILLED, running flowables in the Exit's state; running runnables are left to finish."""
    state = exit_state(snapshot) if snapshot.state in (State.RUNNING, State.PAUSED) else None
    if state is None:
        return []
    if state == State.KILLED:
        return [SetExecutionState(State.KILLING)]
    actions: list[Action] = []
    for run in snapshot.runs:
        if run.state in (State.CREATED, State.QUEUED, State.RETRYING, State.PAUSED):
            actions.append(SetTaskRunState(run.id, State.KILLED))
        elif run.state == State.RUNNING and is_flowable(snapshot, run):
            actions.append(SetTaskRunState(run.id, state))
    return actions + [SetExecutionState(state)]


def handle_wakes(snapshot: ExecutionSnapshot, new_id: NewId) -> list[Action]:
    """Paused runs whose timer is due: their plugin says whether they go on or end."""
    if snapshot.state not in (State.RUNNING, State.PAUSED, State.KILLING):
        return []
    actions: list[Action] = []
    for run in snapshot.runs:
        if snapshot.state == State.KILLING and not _after_a_kill(snapshot, run):
            continue
        if run.state == State.PAUSED and run.next_attempt_at is not None and run.next_attempt_at <= snapshot.now:
            task = snapshot.flow.task(run.task_id)
            state = flowable_of(task).on_wake(FlowableRun(snapshot, task, run))
            actions.append(SetTaskRunState(run.id, allowed_state(task, state)))
    return actions


def handle_resumed(snapshot: ExecutionSnapshot, new_id: NewId) -> list[Action]:
    """A PAUSED execution goes on once something can run again, or once nothing is paused any more
    (a pause that timed out: the flow then goes on to its `errors` or its end)."""
    if snapshot.state != State.PAUSED:
        return []
    if _has_active_work(snapshot) or not any(r.state == State.PAUSED for r in snapshot.runs):
        return [SetExecutionState(State.RUNNING)]
    return []


def handle_paused(snapshot: ExecutionSnapshot, new_id: NewId) -> list[Action]:
    """A RUNNING execution whose only unfinished work is paused runs is PAUSED."""
    if snapshot.state != State.RUNNING or _has_active_work(snapshot):
        return []
    if any(r.state == State.PAUSED for r in snapshot.runs):
        return [SetExecutionState(State.PAUSED)]
    return []


def _has_active_work(snapshot: ExecutionSnapshot) -> bool:
    """Work that moves without anyone's action: queued, running or retrying runnables, and running
    flowables with no unfinished child (a Pause just woken, about to start its tasks). The newest runs
    are looked at first: that is where the work is, in a long execution."""
    for run in reversed(snapshot.runs):
        if run.state in (State.QUEUED, State.RETRYING, State.CREATED):
            return True
        if run.state == State.RUNNING:
            if not is_flowable(snapshot, run):
                return True
            if all(child.state.is_terminal for child in snapshot.children(run.id)):
                return True
    return False


def handle_due_retries(snapshot: ExecutionSnapshot, new_id: NewId) -> list[Action]:
    """Retries whose time has come: a runnable is queued again, a childless flowable (Subflow) starts afresh.

    A retry its task inherits from its flowable first waits for the recovery its failure started (the
    flowable's `errors` and `finally`), then clears their ended runs: the next attempt starts afresh."""
    if snapshot.state not in (State.RUNNING, State.KILLING):
        return []
    actions: list[Action] = []
    cleared: set[str] = set()
    for run in snapshot.runs:
        if snapshot.state == State.KILLING and not _after_a_kill(snapshot, run):
            continue
        if run.state != State.RETRYING or run.next_attempt_at is None or run.next_attempt_at > snapshot.now:
            continue
        if waits_for_recovery(snapshot, run):
            continue
        discard = ended_recovery(snapshot, run, cleared)
        if discard:
            cleared.update(discard)
            actions.append(DiscardTaskRuns(discard))
        if not is_flowable(snapshot, run):
            actions.append(RequeueTaskRun(run.id))
            continue
        task = snapshot.flow.task(run.task_id)
        try:
            started = flowable_of(task).start(FlowableRun(snapshot, task, run))
        except (FlowableError, PropertyError, TemplateError) as exc:
            actions.append(SetTaskRunState(run.id, allowed_state(task, State.FAILED), message=str(exc)))
            continue
        if isinstance(started, StartSubflow):
            actions.append(RestartTaskRun(run.id, subflow=started))
        elif isinstance(started, Suspend):  # only childless flowables (Subflow) are retried: none suspends
            actions.append(RestartTaskRun(run.id, outputs=dict(started.outputs)))
        else:
            actions.append(RestartTaskRun(run.id, outputs=dict(started or {})))
    return actions


def handle_flowables(snapshot: ExecutionSnapshot, new_id: NewId) -> list[Action]:
    """Each running flowable says which children start now, or, when none, its own end state."""
    if snapshot.state not in (State.RUNNING, State.KILLING):
        return []
    actions: list[Action] = []
    for run in snapshot.runs:
        if run.state != State.RUNNING or not is_flowable(snapshot, run):
            continue
        if snapshot.state == State.KILLING and not _after_a_kill(snapshot, run):
            continue
        task = snapshot.flow.task(run.task_id)
        ctx = FlowableRun(snapshot, task, run)
        ctx.children = as_rules_see_them(snapshot, task, ctx.children)
        plugin = flowable_of(task)
        try:
            children = plugin.next_children(ctx)
            if children:
                actions.extend(create_child(snapshot, child, run, new_id) for child in children)
                continue
            state = plugin.resolve_state(ctx)
        except (FlowableError, PropertyError, TemplateError) as exc:
            actions.append(SetTaskRunState(run.id, allowed_state(task, State.FAILED), message=str(exc)))
            continue
        if state is not None and not child_retrying(snapshot, run):
            actions.append(_end_or_retry(snapshot, task, run, state))
    return actions


def _end_or_retry(snapshot: ExecutionSnapshot, task: TaskSpec, run: RunState, state: State) -> Action:
    """A flowable without children of its own (Subflow) is retried by its policy, like a runnable. One with
    children ends, as in Kestra: its `retry` was spent by its failing children, each retried in place."""
    childless = not flowable_of(task).child_fields
    if state == State.FAILED and childless:
        decision = decide(snapshot.flow, task, State.FAILED, max(run.attempts, 1), True, run.started_at, snapshot.now)
        if decision.state == State.RETRYING:
            return SetTaskRunState(run.id, State.RETRYING, next_attempt_at=decision.next_attempt_at)
        return SetTaskRunState(run.id, decision.state)
    return SetTaskRunState(run.id, allowed_state(task, state))


def handle_root(snapshot: ExecutionSnapshot, new_id: NewId) -> list[Action]:
    """The flow itself is a sequence of `tasks` with `errors`, then its `finally`; when they are done, the
    execution ends, in the state of its tasks (a flow with afterExecution tasks: see handle_after_execution)."""
    if snapshot.state != State.RUNNING or exit_state(snapshot) is not None:  # an Exit held for afterExecution
        return []
    flow, top = snapshot.flow, snapshot.children(None)
    children = sequential_next(flow.tasks, flow.errors, top)
    done = None if children else resolve_children_state(flow.tasks, flow.errors, top)
    children = children or finally_next(done, flow.finally_tasks, top)
    if children:
        return [create_child(snapshot, child, None, new_id) for child in children]
    state = finally_state(done, flow.finally_tasks, top)
    if state is None or active(flow.after_execution):
        return []
    if not flow.outputs:
        return [SetExecutionState(state)]
    try:
        outputs = render_flow_outputs(snapshot)
    except (TemplateError, ValueError) as exc:
        return [SetExecutionState(State.FAILED, message=f"flow outputs: {exc}")]
    return [SetExecutionState(state, outputs=outputs)]


def handle_exit_before_after_execution(snapshot: ExecutionSnapshot, new_id: NewId) -> list[Action]:
    """handle_exit; but in a flow with afterExecution tasks an Exit does not end the execution at once: they
    run first (handle_after_execution, the Exit's state is the one they see) and the Exit leaves them alone."""
    actions = handle_exit(snapshot, new_id)
    flow = snapshot.flow
    if not actions or not active(flow.after_execution):
        return actions

    def held(action: Action) -> bool:
        if isinstance(action, SetExecutionState):
            return action.state.is_terminal
        if isinstance(action, SetTaskRunState):
            return in_after_execution(flow.task(snapshot.run(action.task_run_id).task_id))
        return False

    return [a for a in actions if not held(a)]
