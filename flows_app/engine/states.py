"""The states of executions and task runs, and the one table of legal moves between them."""

from __future__ import annotations

from enum import Enum


class State(str, Enum):
    CREATED = "CREATED"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    RETRYING = "RETRYING"
    SUCCESS = "SUCCESS"
    WARNING = "WARNING"
    FAILED = "FAILED"
    KILLING = "KILLING"
    KILLED = "KILLED"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"  # never started: refused by its flow's concurrency limit (behavior CANCEL)

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @property
    def is_failure(self) -> bool:
        return self in (State.FAILED, State.KILLED)

    @property
    def is_success(self) -> bool:
        """Ended in a way that lets the next task start."""
        return self in (State.SUCCESS, State.WARNING, State.SKIPPED)


TERMINAL = frozenset({State.SUCCESS, State.WARNING, State.FAILED, State.KILLED, State.SKIPPED, State.CANCELLED})

_S = State
ALLOWED: dict[State, frozenset[State]] = {
    _S.CREATED: frozenset(
        {_S.QUEUED, _S.RUNNING, _S.PAUSED, _S.SKIPPED, _S.WARNING, _S.FAILED, _S.KILLING, _S.KILLED, _S.CANCELLED}
    ),
    _S.QUEUED: frozenset({_S.RUNNING, _S.SKIPPED, _S.FAILED, _S.KILLING, _S.KILLED, _S.CANCELLED}),
    # RUNNING -> QUEUED: a runnable whose worker died, resubmitted to another worker
    _S.RUNNING: frozenset(
        {_S.QUEUED, _S.PAUSED, _S.RETRYING, _S.SUCCESS, _S.WARNING, _S.FAILED, _S.KILLING, _S.KILLED}
    ),
    _S.PAUSED: frozenset({_S.RUNNING, _S.SUCCESS, _S.WARNING, _S.FAILED, _S.KILLING, _S.KILLED}),
    _S.RETRYING: frozenset({_S.QUEUED, _S.RUNNING, _S.FAILED, _S.KILLING, _S.KILLED}),
    _S.KILLING: frozenset({_S.KILLED, _S.FAILED}),
    _S.SUCCESS: frozenset(),
    _S.WARNING: frozenset(),
    _S.FAILED: frozenset(),
    _S.KILLED: frozenset(),
    _S.SKIPPED: frozenset(),
    _S.CANCELLED: frozenset(),
}


# Reopening what has ended — only an operator's restart, replay or change of a task run's state does it (see
# services/restarts.py): the execution and the flowables around the restarted run run again, a failed run
# waits for a new attempt, and a run's end state is set by hand. Nothing else may take these moves.
# An execution reopened beyond its flow's concurrency limit waits QUEUED for a slot.
REOPENING: dict[State, frozenset[State]] = {
    _S.FAILED: frozenset({_S.RUNNING, _S.QUEUED, _S.RETRYING, _S.SUCCESS, _S.WARNING}),
    _S.KILLED: frozenset({_S.RUNNING, _S.QUEUED, _S.RETRYING, _S.SUCCESS, _S.WARNING, _S.FAILED}),
    _S.WARNING: frozenset({_S.RUNNING, _S.QUEUED, _S.SUCCESS, _S.FAILED}),
    _S.SUCCESS: frozenset({_S.RUNNING, _S.QUEUED, _S.WARNING, _S.FAILED}),
}


class IllegalTransition(Exception):
    def __init__(self, what: str, current: State, target: State):
        super().__init__(f"{what}: cannot move from {current} to {target}")
        self.current, self.target = current, target


def check_transition(what: str, current: State | str, target: State | str, reopening: bool = False) -> State:
    """The one door: raise IllegalTransition unless `current -> target` is in the table (or, `reopening`,
    in the table of reopening moves)."""
    current, target = State(current), State(target)
    allowed = REOPENING.get(current, frozenset()) if reopening else ALLOWED[current]
    if target not in allowed:
        raise IllegalTransition(what, current, target)
    return target
