"""A flow's `afterExecution` tasks: run once its final state is known; they cannot change it.

Kestra runs them in an execution already ended. Here the execution stays RUNNING while they run (workers
start nothing in an ended execution, and the states table has no move out of an end); the state it is about
to end in is read again from the runs each time (`variables.final_state`: what they see as
`execution.state`), and it moves to that state once, when the last of them has ended: ExecutionEnded (flow
triggers, a waiting parent) comes then, after them.
"""

from __future__ import annotations

from dataclasses import replace

from plugins_app.base import active, all_ended, each_in_turn, runs_of

from .actions import Action, SetExecutionOutputs, SetExecutionState
from .children import NewId, create_child, render_flow_outputs
from .snapshot import ExecutionSnapshot
from .states import State
from .templating import TemplateError
from .variables import final_state, in_after_execution, tasks_end_state


def handle_after_execution(snapshot: ExecutionSnapshot, new_id: NewId) -> list[Action]:
    """Once the flow's tasks, errors and finally are done (or an Exit ended them), its afterExecution tasks one
    after another, whatever each one's end; the flow's outputs are kept on the execution before the first
    starts (its `execution.outputs`). When the last has ended, the execution ends in the state they saw."""
    flow = snapshot.flow
    if not active(flow.after_execution) or not _tasks_over(snapshot):
        return []
    # a killed execution has no outputs: its tasks did not all run
    view, problem = (snapshot, None) if snapshot.state == State.KILLING else _with_flow_outputs(snapshot)
    top = view.children(None)
    children = each_in_turn(flow.after_execution, top)
    if children:
        first = not runs_of(flow.after_execution, top)
        kept: list[Action] = (
            [SetExecutionOutputs(dict(view.outputs), message=problem)]
            if first and flow.outputs and snapshot.state != State.KILLING
            else []
        )
        return kept + [create_child(view, child, None, new_id) for child in children]
    if not all_ended(flow.after_execution, top):
        return []
    return [SetExecutionState(final_state(view) or State.FAILED)]


def _tasks_over(snapshot: ExecutionSnapshot) -> bool:
    """The flow's tasks, errors and finally are done; in a killed execution, once all that ran has stopped."""
    if snapshot.state == State.KILLING:
        flow = snapshot.flow
        return all(r.state.is_terminal for r in snapshot.runs if not in_after_execution(flow.task(r.task_id)))
    return snapshot.state == State.RUNNING and tasks_end_state(snapshot) is not None


def _with_flow_outputs(snapshot: ExecutionSnapshot) -> tuple[ExecutionSnapshot, str | None]:
    """The snapshot with the flow's outputs: those the execution kept, else rendered now (none, and why, when
    they cannot be: the execution then ends FAILED, as in handle_root)."""
    if not snapshot.flow.outputs or snapshot.outputs:
        return snapshot, None
    try:
        return replace(snapshot, outputs=render_flow_outputs(snapshot)), None
    except (TemplateError, ValueError) as exc:
        return snapshot, f"flow outputs: {exc}"
