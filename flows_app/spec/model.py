"""The frozen flow spec: what a validated flow YAML means, ready for the planner."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any, TypeVar

from .errors import Path, SpecWarning

T = TypeVar("T")


def derived(spec: Any, name: str, compute: Callable[[], T]) -> T:
    """A value computed once from a frozen (and cached) spec and kept on it: the planner asks on every round
    what never changes for a revision (its Exit tasks, who holds whom)."""
    found: T | None = spec.__dict__.get(name)
    if found is None:
        found = compute()
        object.__setattr__(spec, name, found)
    return found


@dataclass(frozen=True)
class InputSpec:
    """One declared input of a flow (parsed and checked by spec/inputs.py)."""

    id: str
    type: str
    required: bool = True
    defaults: Any = None
    description: str | None = None
    display_name: str | None = None
    validator: str | None = None
    values: tuple[Any, ...] | None = None
    item_type: str | None = None
    min: Any = None
    max: Any = None
    allow_custom_value: bool = False
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class RetrySpec:
    type: str  # constant | exponential | random
    interval: timedelta | None = None
    max_interval: timedelta | None = None
    min_interval: timedelta | None = None
    delay_factor: float | None = None
    max_duration: timedelta | None = None
    max_attempts: int | None = None
    warning_on_retry: bool = False
    behavior: str = "RETRY_FAILED_TASK"


@dataclass(frozen=True)
class TaskSpec:
    id: str
    type: str  # the plugin's canonical type name
    properties: Mapping[str, Any]  # plugin properties as written (children removed), rendered at run time
    branches: Mapping[str, tuple[TaskSpec, ...]] = field(default_factory=dict)  # "tasks", "errors", "cases.A", ...
    description: str | None = None
    disabled: bool = False
    timeout: timedelta | None = None
    retry: RetrySpec | None = None
    allow_failure: bool = False
    allow_warning: bool = False
    log_level: str | None = None
    log_to_file: bool = False  # Kestra's logToFile: the task run's log goes to a file in internal storage
    worker_group: str | None = None
    run_if: str | None = None
    path: Path = ()

    def walk(self) -> Iterator[TaskSpec]:
        yield self
        for children in self.branches.values():
            for child in children:
                yield from child.walk()


@dataclass(frozen=True)
class TriggerSpec:
    id: str
    type: str  # Kestra's current name of its type
    properties: Mapping[str, Any]  # as written
    disabled: bool = False
    spec: Any = None  # the type's checked properties: a triggers.ScheduleSpec, FlowTriggerSpec, WebhookSpec


@dataclass(frozen=True)
class ConcurrencySpec:
    """At most `limit` executions of the flow run at once; `behavior` says what becomes of one more:
    QUEUE (it waits, in order), CANCEL (it ends CANCELLED) or FAIL (it ends FAILED)."""

    limit: int
    behavior: str = "QUEUE"


@dataclass(frozen=True)
class FlowSpec:
    id: str
    namespace: str
    tasks: tuple[TaskSpec, ...]
    errors: tuple[TaskSpec, ...] = ()
    finally_tasks: tuple[TaskSpec, ...] = ()  # `finally`: run once `tasks` (and `errors`) are done, whatever the state
    after_execution: tuple[TaskSpec, ...] = ()  # `afterExecution`: run once the execution's final state is known
    revision: int | None = None
    description: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    inputs: tuple[InputSpec, ...] = ()
    variables: Mapping[str, Any] = field(default_factory=dict)
    outputs: tuple[Mapping[str, Any], ...] = ()
    triggers: tuple[TriggerSpec, ...] = ()
    disabled: bool = False
    retry: RetrySpec | None = None
    task_defaults: tuple[Mapping[str, Any], ...] = ()
    concurrency: ConcurrencySpec | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # accepted Kestra keys Tern does not act on yet
    warnings: tuple[SpecWarning, ...] = ()  # what the flow says that Tern does not do (yet): `extra`, ignored keys

    def walk(self) -> Iterator[TaskSpec]:
        for task in self.tasks + self.errors + self.finally_tasks + self.after_execution:
            yield from task.walk()

    def task(self, task_id: str) -> TaskSpec:
        return self.task_index[task_id]

    @property
    def task_index(self) -> Mapping[str, TaskSpec]:
        index = self.__dict__.get("_task_index")
        if index is None:
            index = {t.id: t for t in self.walk()}
            object.__setattr__(self, "_task_index", index)
        return index
