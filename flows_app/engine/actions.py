"""The steps the planner asks for: small frozen records the services carry out in one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .states import State


@dataclass(frozen=True)
class CreateTaskRun:
    id: str
    task_id: str
    parent_id: str | None
    state: State  # QUEUED for runnables, RUNNING for flowables, SKIPPED or FAILED when decided at once
    value: str | None = None
    outputs: Mapping[str, Any] = field(default_factory=dict)
    message: str | None = None  # logged at ERROR when the run is created FAILED
    wake_at: datetime | None = None  # a run created PAUSED with a timer
    subflow: Any = None  # a StartSubflow request for the services to carry out


@dataclass(frozen=True)
class SetTaskRunState:
    task_run_id: str
    state: State
    message: str | None = None
    next_attempt_at: datetime | None = None  # with RETRYING: when the run starts again


@dataclass(frozen=True)
class RequeueTaskRun:
    """A retry whose time has come: RETRYING -> QUEUED, to be sent to a worker again."""

    task_run_id: str


@dataclass(frozen=True)
class RestartTaskRun:
    """A flowable's retry whose time has come: RETRYING -> RUNNING as a new attempt, started afresh."""

    task_run_id: str
    outputs: Mapping[str, Any] = field(default_factory=dict)
    subflow: Any = None  # a StartSubflow request for the services to carry out


@dataclass(frozen=True)
class DiscardTaskRuns:
    """Ended runs of a failed attempt's recovery (its flowable's `errors`, `finally`), cleared before the next
    attempt of the retried task as Kestra's `retryTask` removes them: the flowable's rules must not count
    them again. `task_run_ids` holds their descendants too."""

    task_run_ids: tuple[str, ...]


@dataclass(frozen=True)
class SetExecutionState:
    state: State
    outputs: Mapping[str, Any] | None = None
    message: str | None = None


@dataclass(frozen=True)
class SetExecutionOutputs:
    """The flow's outputs, rendered once its tasks, errors and finally are done, kept on the execution while its
    afterExecution tasks run (they read them as `execution.outputs`); the state does not change. `message`: why
    they could not be rendered (logged at ERROR; the execution will end FAILED)."""

    outputs: Mapping[str, Any]
    message: str | None = None


Action = (
    CreateTaskRun
    | SetTaskRunState
    | RequeueTaskRun
    | RestartTaskRun
    | DiscardTaskRuns
    | SetExecutionState
    | SetExecutionOutputs
)


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    wake_at: datetime | None = None  # when the execution must be advanced again with no message (retries, pauses)

    @property
    def to_dispatch(self) -> list[str]:
        """Ids of runs that a worker must run now."""
        ids = [a.id for a in self.actions if isinstance(a, CreateTaskRun) and a.state == State.QUEUED]
        ids += [a.task_run_id for a in self.actions if isinstance(a, RequeueTaskRun)]
        return ids
