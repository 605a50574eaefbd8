"""What a plugin is: typed properties, and either `run(props, ctx)` (runnable) or child rules (flowable).

Pure: no Django, no Celery. Plugins reach the world only through the context they are handed.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from flows_app.engine.vocabulary import State, TaskSpec


class PluginError(Exception):
    """A task failed for a reason the user can read; `retryable` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool = True, outputs: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.outputs = dict(outputs or {})


class Properties(BaseModel):
    """A plugin's properties. Unknown keys are errors, as in Kestra."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, arbitrary_types_allowed=True)


def prop(
    default: Any = ..., *, description: str = "", dynamic: bool = True, alias: str | None = None, **kwargs: Any
) -> Any:
    """Declare a property. `dynamic` properties are rendered as templates before the plugin sees them."""
    extra: dict[str, Any] = {"dynamic": dynamic}
    return Field(default, description=description, alias=alias, json_schema_extra=extra, **kwargs)


PropertiesModel = Properties  # for annotations inside Plugin, where `Properties` names its own class attribute


def dynamic_fields(properties: type[Properties]) -> frozenset[str]:
    names = set()
    for name, info in properties.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if extra.get("dynamic", True):
            names.add(info.alias or name)
    return frozenset(names)


@dataclass(frozen=True)
class TaskResult:
    """What a runnable returns when a dict of outputs is not enough: a WARNING end, say."""

    outputs: Mapping[str, Any] = field(default_factory=dict)
    state: State = State.SUCCESS
    labels: Mapping[str, str] | None = None  # labels to set on the execution (the Labels task)


class KVStore(Protocol):
    """The KV store as a task sees it: its flow's namespace unless another is named."""

    def get(self, key: str, namespace: str | None = None, error_on_missing: bool = False) -> Any: ...
    def put(
        self, key: str, value: Any, namespace: str | None = None, ttl: Any = None, overwrite: bool = True
    ) -> None: ...  # ttl: a timedelta
    def delete(self, key: str, namespace: str | None = None, error_on_missing: bool = False) -> bool: ...


class RunContext(Protocol):
    """Everything a runnable plugin may touch (plugins_app/context.py implements it; the engine fills it)."""

    task_id: str
    task_run_id: str
    execution_id: str
    attempt: int
    kv: KVStore
    # internal storage: (a path or bytes, a file name) -> its kestra:/// URI; and a URI -> the local file
    storage_put: Callable[[Any, str], str] | None
    storage_path: Callable[[str], Any] | None

    @property
    def working_dir(self) -> Any: ...  # pathlib.Path, one directory per task run (or the shared one)
    @property
    def timeout(self) -> float | None: ...  # seconds left before the task must stop

    def render(self, value: Any) -> Any: ...
    def log(self, level: str, message: str) -> None: ...
    def should_stop(self) -> bool: ...


class Plugin:
    """Base of every plugin. Subclasses set `type`, `aliases`, `Properties` and a docstring."""

    type: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    Properties: ClassVar[builtins.type[PropertiesModel]] = PropertiesModel
    outputs: ClassVar[Mapping[str, str]] = {}
    example: ClassVar[str] = ""

    @classmethod
    def title(cls) -> str:
        return (cls.__doc__ or cls.__name__).strip().splitlines()[0]

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON Schema of a task of this type: its properties, its outputs, and its type names."""
        schema: dict[str, Any] = cls.Properties.model_json_schema(by_alias=True)
        schema["title"] = cls.type
        schema["description"] = (cls.__doc__ or "").strip()
        schema.setdefault("properties", {})["type"] = {"enum": [cls.type, *cls.aliases]}
        schema["required"] = sorted({"type", *schema.get("required", [])})
        schema["x-outputs"] = dict(cls.outputs)
        children = getattr(cls, "child_fields", None)
        if children:
            schema["x-children"] = dict(children)
        return schema


class RunnablePlugin(Plugin):
    """Work done by a worker: `run` returns JSON-serialisable outputs or a TaskResult."""

    def run(self, props: Any, ctx: RunContext) -> Mapping[str, Any] | TaskResult:
        raise NotImplementedError


# ---- flowable plugins -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildRun:
    """A child task run a flowable wants created now; `value` is the loop value it runs for."""

    task: TaskSpec
    value: str | None = None


class RunView(Protocol):
    """A read-only task run as the planner sees it."""

    @property
    def id(self) -> str: ...
    @property
    def task_id(self) -> str: ...
    @property
    def parent_id(self) -> str | None: ...
    @property
    def value(self) -> str | None: ...  # the loop value it runs for
    @property
    def state(self) -> State: ...
    @property
    def attempts(self) -> int: ...
    @property
    def outputs(self) -> Mapping[str, Any]: ...


class FlowableContext(Protocol):
    """Everything a flowable may use (the planner's FlowableRun implements it): its task, its own run, its
    direct children's runs — the only runs it looks at —, the execution's labels, the planner's clock, and
    its properties rendered with the execution's variables."""

    @property
    def task(self) -> TaskSpec: ...
    @property
    def run(self) -> RunView: ...
    @property
    def children(self) -> Sequence[RunView]: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def now(self) -> Any: ...  # datetime: the planner's clock

    def render(self, value: Any) -> Any: ...
    def props(self) -> Any: ...


class WorkspaceContext(Protocol):
    """What a flowable that `shares_directory` is handed when its directory opens on a worker, after each
    child, and when it ends (implemented in flows_app/services/workdirs.py)."""

    @property
    def task(self) -> TaskSpec: ...
    @property
    def run(self) -> RunView: ...
    @property
    def directory(self) -> Any: ...  # pathlib.Path: the directory its children share, on this worker

    def props(self) -> Any: ...
    def log(self, level: str, message: str) -> None: ...
    def storage_put(self, source: Any, name: str) -> str: ...  # (path or bytes, file name) -> kestra:/// URI
    def storage_path(self, uri: str) -> Any: ...  # an internal storage URI -> the local file
    def kept(self, name: str) -> tuple[Any, float] | None: ...  # a file kept for this task, with its age in s
    def keep(self, name: str, data: bytes) -> None: ...  # kept between executions, for this task
    def forget(self, name: str) -> None: ...
    def set_outputs(self, outputs: Mapping[str, Any]) -> None: ...  # merged into the flowable run's outputs


@dataclass(frozen=True)
class Suspend:
    """What a flowable's `start` returns to pause its run: until `until` (then the planner asks its
    `on_wake`), or, with no `until`, until someone resumes the execution."""

    outputs: Mapping[str, Any] = field(default_factory=dict)
    until: Any = None  # datetime


@dataclass(frozen=True)
class StartSubflow:
    """What a flowable's `start` returns to have the engine start another flow's execution for it.

    The engine records the outcome in the run's outputs: `executionId` once started (or `error`), then,
    when the child ends and `wait` is set, `state` and `outputs`."""

    namespace: str
    flow_id: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    wait: bool = True
    revision: int | None = None
    outputs: Mapping[str, Any] = field(default_factory=dict)  # templates rendered in the child's context


@dataclass(frozen=True)
class StartSubflowBatches(StartSubflow):
    """ForEachItem's request: split the internal storage file `items` into batches (of `rows` lines, of
    about `size` bytes, or into `partitions` parts) and start one child execution per batch. `inputs` are
    templates, rendered per batch with `taskrun.items` (the batch's URI) and `taskrun.iteration` (1, 2...).

    The engine records `numberOfBatches`, `iterations` (children by state) and `uri` (a JSON-lines file of
    the children's outputs) in the run's outputs."""

    items: str = ""
    rows: int | None = None
    size: int | None = None
    partitions: int | None = None
    separator: str = "\n"


class FlowableError(Exception):
    """A flowable cannot go on (bad loop value, no Switch case): its task run fails with this message."""


# How a flowable's property holds child tasks: a list of tasks, a map of name -> list of tasks, or a list
# of `{task: <task>, dependsOn: [ids]}` (Dag: the tasks become the branch, the field stays a property too).
LIST, MAP, DAG = "list", "map", "dag"


class FlowablePlugin(Plugin):
    """Orchestrates child tasks. The planner asks it which children run next and what its own state is."""

    # property name -> LIST or MAP; these properties are parsed as task specs, not plugin properties
    child_fields: ClassVar[Mapping[str, str]] = {"tasks": LIST, "errors": LIST}
    required_children: ClassVar[frozenset[str]] = frozenset({"tasks"})  # must hold at least one task
    # True when, once all its `tasks` have started together, nothing can happen before every one has
    # ended (Parallel): the runtime then joins them with one advance instead of one per child.
    fan_in: ClassVar[bool] = False
    # True when the children run one after another in one directory on one worker (WorkingDirectory): the
    # engine makes the directory, routes the children to the worker holding it, and calls the hooks below.
    shares_directory: ClassVar[bool] = False

    @classmethod
    def check(cls, raw: Mapping[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
        """Checks the generic parser cannot make (Switch needs cases or defaults, a Dag has no cycle):
        (path relative to the task, message) pairs; [] when the task as written is fine."""
        return []

    def start(self, ctx: FlowableContext) -> Mapping[str, Any] | Suspend | StartSubflow:
        """Called once when the task run is created; its result becomes the run's outputs (a Suspend
        pauses the run)."""
        return {}

    def on_wake(self, ctx: FlowableContext) -> State:
        """A paused run's time has come: RUNNING to go on with its children, or an end state."""
        return State.RUNNING

    def next_children(self, ctx: FlowableContext) -> list[ChildRun]:
        raise NotImplementedError

    def resolve_state(self, ctx: FlowableContext) -> State | None:
        """The run's end state once its children are done, or None while it goes on."""
        raise NotImplementedError

    # -- for `shares_directory` flowables --
    def open_directory(self, ctx: WorkspaceContext) -> None:
        """The directory was just made on this worker, before its first child runs here."""

    def after_child(self, ctx: WorkspaceContext) -> None:
        """A child ended in the directory."""

    def close_directory(self, ctx: WorkspaceContext, state: State) -> None:
        """The flowable ended in `state`; the directory is removed after this."""


# ---- shared child rules (Kestra's FlowableUtils, in small functions) ---------------------------


def active(tasks: Sequence[TaskSpec] | None) -> list[TaskSpec]:
    """Disabled tasks are left out, as if not written."""
    return [t for t in (tasks or ()) if not t.disabled]


def runs_of(
    tasks: Sequence[TaskSpec], children: Sequence[RunView], value: str | None = None, by_value: bool = False
) -> list[RunView]:
    ids = {t.id for t in tasks}
    return [r for r in children if r.task_id in ids and (not by_value or r.value == value)]


def _failed(runs: Sequence[RunView]) -> bool:
    return any(r.state.is_failure for r in runs)


def sequential_next(
    tasks: Sequence[TaskSpec],
    errors: Sequence[TaskSpec],
    children: Sequence[RunView],
    value: str | None = None,
    by_value: bool = False,
) -> list[ChildRun]:
    """One task after another; on a failure, the `errors` tasks one after another."""
    tasks, errors = active(tasks), active(errors)
    main = runs_of(tasks, children, value, by_value)
    if _failed(main):
        return _next_in_order(errors, runs_of(errors, children, value, by_value), value)
    return _next_in_order(tasks, main, value)


def _next_in_order(tasks: Sequence[TaskSpec], runs: Sequence[RunView], value: str | None) -> list[ChildRun]:
    if any(not r.state.is_terminal for r in runs):
        return []
    if runs and not all(r.state.is_success for r in runs):
        return []
    started = {r.task_id for r in runs}
    for task in tasks:
        if task.id not in started:
            return [ChildRun(task, value)]
    return []


def parallel_next(
    tasks: Sequence[TaskSpec],
    errors: Sequence[TaskSpec],
    children: Sequence[RunView],
    concurrent: int = 0,
    value: str | None = None,
    by_value: bool = False,
) -> list[ChildRun]:
    """Up to `concurrent` tasks at once (0: all); on a failure no new task starts, then `errors` run in order."""
    tasks, errors = active(tasks), active(errors)
    main = runs_of(tasks, children, value, by_value)
    if _failed(main):
        if any(not r.state.is_terminal for r in main):
            return []
        return _next_in_order(errors, runs_of(errors, children, value, by_value), value)
    started = {r.task_id for r in main}
    running = sum(1 for r in main if not r.state.is_terminal)
    free = len(tasks) if concurrent <= 0 else max(concurrent - running, 0)
    todo = [t for t in tasks if t.id not in started]
    return [ChildRun(t, value) for t in todo[:free]]


def resolve_children_state(
    tasks: Sequence[TaskSpec],
    errors: Sequence[TaskSpec],
    children: Sequence[RunView],
    value: str | None = None,
    by_value: bool = False,
) -> State | None:
    """None while work remains; else the worst end state, FAILED whenever a task failed (errors ran or not)."""
    tasks, errors = active(tasks), active(errors)
    main = runs_of(tasks, children, value, by_value)
    handlers = runs_of(errors, children, value, by_value)
    if any(not r.state.is_terminal for r in main + handlers):
        return None
    if _failed(main):
        if errors and len({r.task_id for r in handlers}) < len(errors) and not _failed(handlers):
            return None  # error handlers still to run
        return State.KILLED if any(r.state == State.KILLED for r in main) else State.FAILED
    if len({r.task_id for r in main}) < len(tasks):
        return None
    return _ended_state(main)


def _ended_state(runs: Sequence[RunView]) -> State:
    states = [r.state for r in runs]
    return State.WARNING if State.WARNING in states else State.SUCCESS


# `finally` (Kestra 0.21): once a flowable's tasks and errors are done, its `finally` tasks run one after another,
# each whatever the end of the one before; the flowable then ends in the state its tasks and errors gave it.


def each_in_turn(
    tasks: Sequence[TaskSpec], children: Sequence[RunView], value: str | None = None, by_value: bool = False
) -> list[ChildRun]:
    """The next of `tasks` once the one before has ended, however it ended: all of them run (`finally`,
    `afterExecution`)."""
    tasks = active(tasks)
    runs = runs_of(tasks, children, value, by_value)
    if any(not r.state.is_terminal for r in runs):
        return []
    started = {r.task_id for r in runs}
    return [ChildRun(task, value) for task in tasks if task.id not in started][:1]


def all_ended(
    tasks: Sequence[TaskSpec], children: Sequence[RunView], value: str | None = None, by_value: bool = False
) -> bool:
    """Every one of `tasks` (disabled ones left out) has run and ended."""
    tasks = active(tasks)
    runs = runs_of(tasks, children, value, by_value)
    return all(r.state.is_terminal for r in runs) and len({r.task_id for r in runs}) == len(tasks)


def finally_next(
    done: State | None,
    finally_tasks: Sequence[TaskSpec],
    children: Sequence[RunView],
    value: str | None = None,
    by_value: bool = False,
) -> list[ChildRun]:
    """Once the tasks and errors are done (`done`: the state they end in, None while they run), the `finally` tasks."""
    return [] if done is None else each_in_turn(finally_tasks, children, value, by_value)


def finally_state(
    done: State | None,
    finally_tasks: Sequence[TaskSpec],
    children: Sequence[RunView],
    value: str | None = None,
    by_value: bool = False,
) -> State | None:
    """`done` once the `finally` tasks have all ended too: their own ends do not change it (Kestra resolves a
    flowable's state from its tasks)."""
    if done is None or not all_ended(finally_tasks, children, value, by_value):
        return None
    return done


def branch(task: TaskSpec, name: str) -> list[TaskSpec]:
    """The child tasks a flowable holds under `name` ("tasks", "errors", "cases.A", ...)."""
    return list(task.branches.get(name, ()))
