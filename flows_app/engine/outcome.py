"""What a finished attempt of a runnable task becomes: its end state, or a retry at a stored time."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flows_app.spec.model import FlowSpec, RetrySpec, TaskSpec

from .retry import next_attempt_at
from .states import State


@dataclass(frozen=True)
class Decision:
    state: State
    next_attempt_at: datetime | None = None  # set when state is RETRYING


def retry_policy(flow: FlowSpec, task: TaskSpec) -> RetrySpec | None:
    """The task's own retry, else the flow's (when it retries failed tasks in place)."""
    if task.retry is not None:
        return task.retry
    if flow.retry is not None and flow.retry.behavior.upper() == "RETRY_FAILED_TASK":
        return flow.retry
    return None


def decide(flow: FlowSpec, task: TaskSpec, attempt_state: State, attempts: int, retryable: bool,
           first_started: datetime | None, now: datetime) -> Decision:
    """`attempts` counts the attempt that just ended."""
    policy = retry_policy(flow, task)
    if attempt_state == State.FAILED:
        at = next_attempt_at(policy, attempts, first_started, now) if retryable else None
        if at is not None:
            return Decision(State.RETRYING, at)
        if not task.allow_failure:
            return Decision(State.FAILED)
        attempt_state = State.WARNING  # allowed to fail: a warning, which allowWarning may clear below
    if attempt_state == State.SUCCESS and attempts > 1 and policy is not None and policy.warning_on_retry:
        attempt_state = State.WARNING
    if attempt_state == State.WARNING and task.allow_warning:
        return Decision(State.SUCCESS)
    return Decision(attempt_state)
