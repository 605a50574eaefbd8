"""What a finished attempt of a runnable task becomes: its end state, or a retry at a stored time.

A task's retry policy is Kestra's: its own `retry`, else that of the nearest flowable around it that has
one, else the flow's (`behavior: RETRY_FAILED_TASK`). A flowable is never retried as a whole: its `retry`
is the one its failing runnable descendants (and Subflows) use, each retried in place, on its own task run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from flows_app.spec.model import FlowSpec, RetrySpec, TaskSpec, derived

from .retry import next_attempt_at
from .states import State

# The branches of a flowable that run once its tasks failed (or ended): when a child is retried by a policy
# it only inherits, their runs of the failed attempt are cleared before the next (Kestra's `retryTask`).
RECOVERY_BRANCHES = ("errors", "finally")


@dataclass(frozen=True)
class Decision:
    state: State
    next_attempt_at: datetime | None = None  # set when state is RETRYING


def retry_policy(flow: FlowSpec, task: TaskSpec) -> RetrySpec | None:
    """The task's own retry, else its nearest flowable's, else the flow's (when it retries failed tasks in
    place): Kestra's ExecutorService, `searchForParentRetry`."""
    if task.retry is not None:
        return task.retry
    parent = parents(flow).get(task.id)
    while parent is not None:
        if parent.retry is not None:
            return parent.retry
        parent = parents(flow).get(parent.id)
    if flow.retry is not None and flow.retry.behavior.upper() == "RETRY_FAILED_TASK":
        return flow.retry
    return None


def inherits_retry(flow: FlowSpec, task: TaskSpec) -> bool:
    """Whether the task is retried by a policy not its own (a flowable's around it, or the flow's)."""
    return task.retry is None and retry_policy(flow, task) is not None


def decide(
    flow: FlowSpec,
    task: TaskSpec,
    attempt_state: State,
    attempts: int,
    retryable: bool,
    first_started: datetime | None,
    now: datetime,
) -> Decision:
    """`attempts` counts the attempt that just ended.

    As Kestra's worker does, only the task's own policy holds an allowed failure back for a retry, and only
    its own `warningOnRetry` turns a late success into a warning."""
    policy = retry_policy(flow, task)
    if attempt_state == State.FAILED:
        may_retry = retryable and not (task.allow_failure and task.retry is None)
        at = next_attempt_at(policy, attempts, first_started, now) if may_retry else None
        if at is not None:
            return Decision(State.RETRYING, at)
        if not task.allow_failure:
            return Decision(State.FAILED)
        attempt_state = State.WARNING  # allowed to fail: a warning, which allowWarning may clear below
    if attempt_state == State.SUCCESS and attempts > 1 and task.retry is not None and task.retry.warning_on_retry:
        attempt_state = State.WARNING
    if attempt_state == State.WARNING and task.allow_warning:
        return Decision(State.SUCCESS)
    return Decision(attempt_state)


# ---- where a task sits (read from the spec once, kept on it) -------------------------------------------


def parents(flow: FlowSpec) -> Mapping[str, TaskSpec]:
    """Task id -> the flowable task holding it in one of its branches (top-level tasks have none)."""
    return derived(
        flow,
        "_parent_tasks",
        lambda: {child.id: task for task in flow.walk() for children in task.branches.values() for child in children},
    )


def recovery_task_ids(flow: FlowSpec) -> frozenset[str]:
    """The tasks whose runs may be cleared when a retry starts: those in a recovery branch of a flowable one
    of whose children inherits a retry, and everything below them."""
    return derived(
        flow,
        "_recovery_task_ids",
        lambda: frozenset(
            t.id
            for task in flow.walk()
            if recovery_tasks(flow, task)
            for name in RECOVERY_BRANCHES
            for child in task.branches.get(name, ())
            for t in child.walk()
        ),
    )


def recovery_tasks(flow: FlowSpec, task: TaskSpec) -> frozenset[str]:
    """The ids of the flowable's recovery-branch tasks when one of its other children inherits a retry
    (then a failed attempt of that child lets them run before its next one); else none."""
    cache: dict[str, frozenset[str]] = derived(flow, "_recovery_tasks", dict)
    found = cache.get(task.id)
    if found is None:
        recovery = {child.id for name in RECOVERY_BRANCHES for child in task.branches.get(name, ())}
        retried = any(
            inherits_retry(flow, child)
            for name, children in task.branches.items()
            if name not in RECOVERY_BRANCHES
            for child in children
        )
        found = cache[task.id] = frozenset(recovery) if retried else frozenset()
    return found
