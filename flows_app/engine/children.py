"""Creating task runs: a child of a flowable (or of the flow) as the planner starts it, and the context a
flowable plugin is handed."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, cast

from flows_app.spec.model import InputSpec, TaskSpec
from plugins_app.base import ChildRun, FlowableError, FlowablePlugin, StartSubflow, Suspend
from plugins_app.registry import get_plugin

from .actions import CreateTaskRun
from .applying import apply
from .inputs import InputValueError, coerce_value
from .output_size import as_json
from .properties import PropertyError, render_properties
from .snapshot import ExecutionSnapshot, RunState
from .states import State
from .templating import TemplateError, render_value, truthy
from .variables import build_variables, mentions_other_runs

NewId = Callable[[], str]


def new_run_id() -> str:
    return uuid.uuid4().hex


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
            return CreateTaskRun(
                run_id, task.id, parent_id, allowed_state(task, State.FAILED), child.value, message=f"runIf: {exc}"
            )
    plugin = get_plugin(task.type)
    if not issubclass(plugin, FlowablePlugin):
        return CreateTaskRun(run_id, task.id, parent_id, State.QUEUED, child.value)
    run = RunState(
        run_id,
        task.id,
        parent_id,
        State.RUNNING,
        child.value,
        attempts=1,
        order=len(snapshot.runs),
        started_at=snapshot.now,
    )
    started = apply(snapshot, [CreateTaskRun(run_id, task.id, parent_id, State.RUNNING, child.value)])
    try:
        outputs = plugin().start(FlowableRun(started, task, run))
    except (FlowableError, PropertyError, TemplateError) as exc:
        return CreateTaskRun(
            run_id, task.id, parent_id, allowed_state(task, State.FAILED), child.value, message=str(exc)
        )
    if isinstance(outputs, StartSubflow):
        return CreateTaskRun(run_id, task.id, parent_id, State.RUNNING, child.value, subflow=outputs)
    if isinstance(outputs, Suspend):
        return CreateTaskRun(
            run_id, task.id, parent_id, State.PAUSED, child.value, outputs=dict(outputs.outputs), wake_at=outputs.until
        )
    return CreateTaskRun(run_id, task.id, parent_id, State.RUNNING, child.value, outputs=dict(outputs or {}))


class FlowableRun:
    """The FlowableContext handed to a flowable plugin."""

    def __init__(self, snapshot: ExecutionSnapshot, task: TaskSpec, run: RunState):
        self._snapshot, self.task, self.run = snapshot, task, run
        self.children = snapshot.children(run.id)
        self._props: Any = None

    @property
    def now(self) -> datetime:
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
    as_json(outputs, "the flow's outputs")  # refused over the limit
    return outputs


def flowable_of(task: TaskSpec) -> FlowablePlugin:
    """The plugin of a task known to be flowable (is_flowable)."""
    return cast("type[FlowablePlugin]", get_plugin(task.type))()


def is_flowable(snapshot: ExecutionSnapshot, run: RunState) -> bool:
    return issubclass(get_plugin(snapshot.flow.task(run.task_id).type), FlowablePlugin)


def allowed_state(task: TaskSpec, state: State) -> State:
    """allowFailure turns a failure into WARNING; allowWarning turns a warning into SUCCESS."""
    if state == State.FAILED and task.allow_failure:
        state = State.WARNING
    if state == State.WARNING and task.allow_warning:
        state = State.SUCCESS
    return state
