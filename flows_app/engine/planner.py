"""The pure planner: given an execution's snapshot, the ordered small steps that move it forward.

`plan()` runs the steps in order; the first that has something to do returns its actions, they are
applied to an in-memory copy of the snapshot, and the steps run again from the top until none has
anything left. Same snapshot in, same decisions out: any worker may advance any execution.

A flow's `afterExecution` tasks run once its final state is known. Kestra runs them in an execution already
ended; here the execution stays RUNNING while they run (workers start nothing in an ended execution, and the
states table has no move out of an end), the state it ends in is read again from the runs each time
(`variables.final_state`: what they see as `execution.state`), and it moves to that state, once, when the last
of them has ended: ExecutionEnded (flow triggers, a waiting parent) comes then, after them.
"""
from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence

from flows_app.spec.inputs import InputSpec
from flows_app.spec.model import TaskSpec
from plugins_app.base import (
    ChildRun,
    FlowableError,
    FlowablePlugin,
    StartSubflow,
    Suspend,
    active,
    all_ended,
    each_in_turn,
    finally_next,
    finally_state,
    resolve_children_state,
    runs_of,
    sequential_next,
)
from plugins_app.registry import get_plugin

from .actions import (
    Action,
    CreateTaskRun,
    DiscardTaskRuns,
    Plan,
    RequeueTaskRun,
    RestartTaskRun,
    SetExecutionOutputs,
    SetExecutionState,
    SetTaskRunState,
)
from .inputs import InputValueError, coerce_value
from .outcome import decide, inherits_retry, recovery_tasks
from .properties import PropertyError, render_properties
from .snapshot import ExecutionSnapshot, RunState
from .states import State
from .templating import TemplateError, render_value, truthy
from .variables import (
    build_variables,
    exit_state,
    final_state,
    in_after_execution,
    mentions_other_runs,
    tasks_end_state,
)

MAX_ROUNDS = 10_000  # a safety net: each round creates or ends at least one run

NewId = Callable[[], str]


def new_run_id() -> str:
    return uuid.uuid4().hex


def plan(snapshot: ExecutionSnapshot, new_id: NewId = new_run_id) -> Plan:
    steps: Sequence[Callable[[ExecutionSnapshot, NewId], list[Action]]] = (
        handle_start, handle_kill, handle_exit_before_after_execution, handle_wakes, handle_resumed,
        handle_due_retries, handle_flowables, handle_root, handle_after_execution, handle_paused,
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
    return Plan(tuple(actions), _next_wake(current))


# ---- the steps -----------------------------------------------------------------------------------

def handle_start(snapshot: ExecutionSnapshot, new_id: NewId) -> list[Action]:
    if snapshot.state == State.CREATED:
        return [SetExecutionState(State.RUNNING)]
    return []


def handle_kill(snapshot: ExecutionSnapshot, new_id: NewId) -> list[Action]:
    """A KILLING execution: stop what has not started, let running work see the kill, end KILLED."""
    if snapshot.state != State.KILLING:
        return []
    actions: list[Action] = []
    for run in snapshot.runs:
        if run.state in (State.CREATED, State.QUEUED, State.RETRYING, State.PAUSED):
            actions.append(SetTaskRunState(run.id, State.KILLED))
        elif run.state == State.RUNNING and _is_flowable(snapshot, run):
            if all(c.state.is_terminal for c in snapshot.children(run.id)):
                actions.append(SetTaskRunState(run.id, State.KILLED))
    if actions:
        return actions
    if all(r.state.is_terminal for r in snapshot.runs):
        return [SetExecutionState(State.KILLED)]
    return []


def handle_exit(snapshot: ExecutionSnapshot, new_id: NewId) -> list[Action]:
    """An Exit task ended: the execution ends in its state (KILLED goes through the kill). Waiting runs
    end KILLED, running flowables in the Exit's state; running runnables are left to finish."""
    if snapshot.state not in (State.RUNNING, State.PAUSED) or not _exit_tasks(snapshot.flow):
        return []
    exit_ids = _exit_tasks(snapshot.flow)
    exits = [r for r in snapshot.runs if r.task_id in exit_ids and r.state == State.SUCCESS and "state" in r.outputs]
    if not exits:
        return []
    state = State(exits[0].outputs["state"])
    if state == State.KILLED:
        return [SetExecutionState(State.KILLING)]
    actions: list[Action] = []
    for run in snapshot.runs:
        if run.state in (State.CREATED, State.QUEUED, State.RETRYING, State.PAUSED):
            actions.append(SetTaskRunState(run.id, State.KILLED))
        elif run.state == State.RUNNING and _is_flowable(snapshot, run):
            actions.append(SetTaskRunState(run.id, state))
    return actions + [SetExecutionState(state)]


def _exit_tasks(flow) -> frozenset[str]:
    """The ids of the flow's Exit tasks (most flows have none: the step is then free). Kept on the spec."""
    ids = flow.__dict__.get("_exit_task_ids")
    if ids is None:
        ids = frozenset(t.id for t in flow.walk() if getattr(get_plugin(t.type), "ends_execution", False))
        object.__setattr__(flow, "_exit_task_ids", ids)
    return ids


def handle_wakes(snapshot: ExecutionSnapshot, new_id: NewId) -> list[Action]:
    """Paused runs whose timer is due: their plugin says whether they go on or end."""
    if snapshot.state not in (State.RUNNING, State.PAUSED):
        return []
    actions: list[Action] = []
    for run in snapshot.runs:
        if run.state == State.PAUSED and run.next_attempt_at is not None and run.next_attempt_at <= snapshot.now:
            task = snapshot.flow.task(run.task_id)
            state = get_plugin(task.type)().on_wake(FlowableRun(snapshot, task, run))
            actions.append(SetTaskRunState(run.id, _allowed(task, state)))
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
            if not _is_flowable(snapshot, run):
                return True
            if all(child.state.is_terminal for child in snapshot.children(run.id)):
                return True
    return False


def handle_due_retries(snapshot: ExecutionSnapshot, new_id: NewId) -> list[Action]:
    """Retries whose time has come: a runnable is queued again, a childless flowable (Subflow) starts afresh.

    A retry its task inherits from its flowable first waits for the recovery its failure started (the
    flowable's `errors` and `finally`), then clears their ended runs: the next attempt starts afresh."""
    if snapshot.state != State.RUNNING:
        return []
    actions: list[Action] = []
    cleared: set[str] = set()
    for run in snapshot.runs:
        if run.state != State.RETRYING or run.next_attempt_at is None or run.next_attempt_at > snapshot.now:
            continue
        if _waits_for_recovery(snapshot, run):
            continue
        discard = _ended_recovery(snapshot, run, cleared)
        if discard:
            cleared.update(discard)
            actions.append(DiscardTaskRuns(discard))
        if not _is_flowable(snapshot, run):
            actions.append(RequeueTaskRun(run.id))
            continue
        task = snapshot.flow.task(run.task_id)
        try:
            started = get_plugin(task.type)().start(FlowableRun(snapshot, task, run))
        except (FlowableError, PropertyError, TemplateError) as exc:
            actions.append(SetTaskRunState(run.id, _allowed(task, State.FAILED), message=str(exc)))
            continue
        if isinstance(started, StartSubflow):
            actions.append(RestartTaskRun(run.id, subflow=started))
        else:
            actions.append(RestartTaskRun(run.id, outputs=dict(started or {})))
    return actions


def handle_flowables(snapshot: ExecutionSnapshot, new_id: NewId) -> list[Action]:
    """Each running flowable says which children start now, or, when none, its own end state."""
    if snapshot.state != State.RUNNING:
        return []
    actions: list[Action] = []
    for run in snapshot.runs:
        if run.state != State.RUNNING or not _is_flowable(snapshot, run):
            continue
        task = snapshot.flow.task(run.task_id)
        ctx = FlowableRun(snapshot, task, run)
        ctx.children = _as_its_rules_see_them(snapshot, task, ctx.children)
        plugin = get_plugin(task.type)()
        try:
            children = plugin.next_children(ctx)
            if children:
                actions.extend(create_child(snapshot, child, run, new_id) for child in children)
                continue
            state = plugin.resolve_state(ctx)
        except (FlowableError, PropertyError, TemplateError) as exc:
            actions.append(SetTaskRunState(run.id, _allowed(task, State.FAILED), message=str(exc)))
            continue
        if state is not None and not _child_retrying(snapshot, run):
            actions.append(_end_or_retry(snapshot, task, run, state))
    return actions


def _end_or_retry(snapshot: ExecutionSnapshot, task: TaskSpec, run: RunState, state: State) -> Action:
    """A flowable without children of its own (Subflow) is retried by its policy, like a runnable. One with
    children ends, as in Kestra: its `retry` was spent by its failing children, each retried in place."""
    childless = not get_plugin(task.type).child_fields
    if state == State.FAILED and childless:
        decision = decide(snapshot.flow, task, State.FAILED, max(run.attempts, 1), True, run.started_at, snapshot.now)
        if decision.state == State.RETRYING:
            return SetTaskRunState(run.id, State.RETRYING, next_attempt_at=decision.next_attempt_at)
        return SetTaskRunState(run.id, decision.state)
    return SetTaskRunState(run.id, _allowed(task, state))


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


# ---- afterExecution ------------------------------------------------------------------------------
# Kestra runs a flow's `afterExecution` tasks once the execution has its final state. Here the execution
# stays RUNNING while they run (workers start nothing in an ended execution, and the end is announced once,
# when it is reached), and the state it is about to end in is read again from the runs each time: they see
# it as `execution.state` (variables.final_state). Their own ends do not change it.

def handle_after_execution(snapshot: ExecutionSnapshot, new_id: NewId) -> list[Action]:
    """Once the flow's tasks, errors and finally are done (or an Exit ended them), its afterExecution tasks one
    after another, whatever each one's end; the flow's outputs are kept on the execution before the first
    starts (its `execution.outputs`). When the last has ended, the execution ends in the state they saw."""
    flow = snapshot.flow
    if snapshot.state != State.RUNNING or not active(flow.after_execution) or tasks_end_state(snapshot) is None:
        return []
    view, problem = _with_flow_outputs(snapshot)
    top = view.children(None)
    children = each_in_turn(flow.after_execution, top)
    if children:
        first = not runs_of(flow.after_execution, top)
        kept: list[Action] = [SetExecutionOutputs(dict(view.outputs), message=problem)] if first and flow.outputs else []
        return kept + [create_child(view, child, None, new_id) for child in children]
    if not all_ended(flow.after_execution, top):
        return []
    return [SetExecutionState(final_state(view) or State.FAILED)]


def _with_flow_outputs(snapshot: ExecutionSnapshot) -> tuple[ExecutionSnapshot, str | None]:
    """The snapshot with the flow's outputs: those the execution kept, else rendered now (none, and why, when
    they cannot be: the execution then ends FAILED, as in handle_root)."""
    if not snapshot.flow.outputs or snapshot.outputs:
        return snapshot, None
    try:
        return replace(snapshot, outputs=render_flow_outputs(snapshot)), None
    except (TemplateError, ValueError) as exc:
        return snapshot, f"flow outputs: {exc}"


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


# ---- creating runs -------------------------------------------------------------------------------

def create_child(snapshot: ExecutionSnapshot, child: ChildRun, parent: RunState | None, new_id: NewId) -> CreateTaskRun:
    """A new run: SKIPPED when its `runIf` is false, RUNNING for a flowable (started here), else QUEUED."""
    task, run_id = child.task, new_id()
    parent_id = parent.id if parent else None
    if task.run_if is not None:
        try:
            variables = build_variables(snapshot, task, parent=parent, value=child.value)
            if not truthy(render_value(task.run_if, variables)):
                return CreateTaskRun(run_id, task.id, parent_id, State.SKIPPED, child.value)
        except TemplateError as exc:
            return CreateTaskRun(run_id, task.id, parent_id, _allowed(task, State.FAILED), child.value,
                                 message=f"runIf: {exc}")
    plugin = get_plugin(task.type)
    if not issubclass(plugin, FlowablePlugin):
        return CreateTaskRun(run_id, task.id, parent_id, State.QUEUED, child.value)
    run = RunState(run_id, task.id, parent_id, State.RUNNING, child.value, attempts=1,
                   order=len(snapshot.runs), started_at=snapshot.now)
    started = apply(snapshot, [CreateTaskRun(run_id, task.id, parent_id, State.RUNNING, child.value)])
    try:
        outputs = plugin().start(FlowableRun(started, task, run))
    except (FlowableError, PropertyError, TemplateError) as exc:
        return CreateTaskRun(run_id, task.id, parent_id, _allowed(task, State.FAILED), child.value, message=str(exc))
    if isinstance(outputs, StartSubflow):
        return CreateTaskRun(run_id, task.id, parent_id, State.RUNNING, child.value, subflow=outputs)
    if isinstance(outputs, Suspend):
        return CreateTaskRun(run_id, task.id, parent_id, State.PAUSED, child.value, outputs=dict(outputs.outputs),
                             wake_at=outputs.until)
    return CreateTaskRun(run_id, task.id, parent_id, State.RUNNING, child.value, outputs=dict(outputs or {}))


class FlowableRun:
    """The FlowableContext handed to a flowable plugin."""

    def __init__(self, snapshot: ExecutionSnapshot, task: TaskSpec, run: RunState):
        self._snapshot, self.task, self.run = snapshot, task, run
        self.children = snapshot.children(run.id)
        self._props: Any = None

    @property
    def now(self):
        return self._snapshot.now

    @property
    def labels(self) -> Mapping[str, str]:
        return self._snapshot.labels

    def variables(self) -> dict[str, Any]:
        return build_variables(self._snapshot, self.task, self.run, with_outputs=mentions_other_runs(self.task))

    def render(self, value: Any) -> Any:
        return render_value(value, self.variables())

    def props(self) -> Any:
        if self._props is None:
            self._props = render_properties(get_plugin(self.task.type), self.task, self.variables())
        return self._props


def render_flow_outputs(snapshot: ExecutionSnapshot) -> dict[str, Any]:
    """Each flow output rendered, then typed as an input of its `type` is (`INT` "3" -> 3)."""
    variables = build_variables(snapshot)
    outputs = {}
    for item in snapshot.flow.outputs:
        value = render_value(item["value"], variables)
        try:
            outputs[item["id"]] = coerce_value(InputSpec(id=item["id"], type=str(item.get("type") or "STRING")), value)
        except InputValueError as exc:
            raise ValueError(f"output '{item['id']}': {exc}") from None
    return outputs


def _is_flowable(snapshot: ExecutionSnapshot, run: RunState) -> bool:
    return issubclass(get_plugin(snapshot.flow.task(run.task_id).type), FlowablePlugin)


def _allowed(task: TaskSpec, state: State) -> State:
    """allowFailure turns a failure into WARNING; allowWarning turns a warning into SUCCESS."""
    if state == State.FAILED and task.allow_failure:
        state = State.WARNING
    if state == State.WARNING and task.allow_warning:
        state = State.SUCCESS
    return state


# ---- retries inside flowables ----------------------------------------------------------------------
# Kestra's way: a flowable is not retried; a failed runnable (or Subflow) inside it is, in place, by the
# nearest `retry` around it. When that retry is not the task's own, its flowable's recovery branches
# (`errors`, `finally`) run between the attempts, and are cleared before the next one.

def _as_its_rules_see_them(snapshot: ExecutionSnapshot, task: TaskSpec, children: list[RunState]) -> list[RunState]:
    """A child waiting for a retry it inherits counts as failed for its flowable's rules, so that the
    flowable's `errors` run (Kestra's `hasFailedNoRetry` knows a task's own retry only); a child waiting
    for its own retry is simply not done yet."""
    if not recovery_tasks(snapshot.flow, task):
        return children
    flow = snapshot.flow
    return [c.evolve(state=State.FAILED) if c.state == State.RETRYING and inherits_retry(flow, flow.task(c.task_id))
            else c for c in children]


def _child_retrying(snapshot: ExecutionSnapshot, run: RunState) -> bool:
    """A flowable does not end while one of its children waits for a retry."""
    return any(child.state == State.RETRYING for child in snapshot.children(run.id))


def _recovery_of(snapshot: ExecutionSnapshot, run: RunState) -> list[RunState]:
    """The runs of the recovery branches of the flowable around `run`, when `run` inherits its retry (and
    is not in one of them itself)."""
    if run.parent_id is None:
        return []
    flow, parent = snapshot.flow, snapshot.run(run.parent_id)
    ids = recovery_tasks(flow, flow.task(parent.task_id))
    if not ids or run.task_id in ids or not inherits_retry(flow, flow.task(run.task_id)):
        return []
    return [r for r in snapshot.children(parent.id) if r.task_id in ids]


def _waits_for_recovery(snapshot: ExecutionSnapshot, run: RunState) -> bool:
    """A due retry waits while the recovery its failure started still runs (a paused one excepted: an
    approval there must not hold the retry forever)."""
    return any(not r.state.is_terminal and r.state != State.PAUSED for r in _recovery_of(snapshot, run))


def _ended_recovery(snapshot: ExecutionSnapshot, run: RunState, cleared: set[str]) -> tuple[str, ...]:
    """The ended recovery runs to clear before `run`'s next attempt, with everything below them."""
    found: list[str] = []
    todo = [r for r in _recovery_of(snapshot, run) if r.state.is_terminal and r.id not in cleared]
    while todo:
        current = todo.pop()
        found.append(current.id)
        todo.extend(snapshot.children(current.id))
    return tuple(found)


def _next_wake(snapshot: ExecutionSnapshot) -> datetime | None:
    """When to advance the execution with no message: the earliest retry or pause timer. A due retry that
    waits for a recovery is left out: the recovery's end advances the execution."""
    waits = [r.next_attempt_at for r in snapshot.runs
             if r.state in (State.RETRYING, State.PAUSED) and r.next_attempt_at
             and not (r.state == State.RETRYING and r.next_attempt_at <= snapshot.now
                      and _waits_for_recovery(snapshot, r))]
    return min(waits) if waits else None


# ---- applying actions to a snapshot (in memory) ----------------------------------------------------

def apply(snapshot: ExecutionSnapshot, actions: Sequence[Action]) -> ExecutionSnapshot:
    runs = {r.id: r for r in snapshot.runs}
    state, order = snapshot.state, max((r.order for r in snapshot.runs), default=-1) + 1  # gaps: cleared runs
    for action in actions:
        if isinstance(action, CreateTaskRun):
            runs[action.id] = RunState(action.id, action.task_id, action.parent_id, action.state, action.value,
                                       attempts=1 if action.state in (State.RUNNING, State.PAUSED) else 0,
                                       outputs=action.outputs, order=order, started_at=snapshot.now,
                                       next_attempt_at=action.wake_at)
            order += 1
        elif isinstance(action, SetTaskRunState):
            runs[action.task_run_id] = runs[action.task_run_id].evolve(state=action.state,
                                                                       next_attempt_at=action.next_attempt_at)
        elif isinstance(action, RestartTaskRun):
            run = runs[action.task_run_id]
            runs[action.task_run_id] = run.evolve(state=State.RUNNING, attempts=run.attempts + 1,
                                                  outputs=action.outputs, next_attempt_at=None)
        elif isinstance(action, RequeueTaskRun):
            runs[action.task_run_id] = runs[action.task_run_id].evolve(state=State.QUEUED, next_attempt_at=None)
        elif isinstance(action, DiscardTaskRuns):
            for run_id in action.task_run_ids:
                runs.pop(run_id, None)
        elif isinstance(action, SetExecutionState):
            state = action.state
    return snapshot.with_runs(tuple(sorted(runs.values(), key=lambda r: r.order)), state)
