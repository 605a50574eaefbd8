"""A read-only picture of one execution, as the planner sees it."""

from __future__ import annotations

from collections.abc import KeysView, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from flows_app.spec.model import FlowSpec

from .states import State


@dataclass(frozen=True)
class RunState:
    """One task run: the planner's view of a TaskRun row."""

    id: str
    task_id: str
    parent_id: str | None
    state: State
    value: str | None = None  # the loop value this run is for (set by loop flowables)
    attempts: int = 0
    outputs: Mapping[str, Any] = field(default_factory=dict)
    order: int = 0  # creation order within the execution
    started_at: datetime | None = None
    next_attempt_at: datetime | None = None

    def evolve(self, **changes: Any) -> RunState:
        return replace(self, **changes)


@dataclass(frozen=True)
class ExecutionSnapshot:
    id: str
    flow: FlowSpec
    state: State
    runs: tuple[RunState, ...]
    now: datetime
    inputs: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    start_date: datetime | None = None
    trigger: Mapping[str, Any] | None = None
    outputs: Mapping[str, Any] = field(default_factory=dict)
    held: bool = False  # paused by hand (the API's pause): nothing moves but a kill until it is resumed

    def run(self, run_id: str) -> RunState:
        return self._by_id()[run_id]

    def run_ids(self) -> KeysView[str]:
        return self._by_id().keys()

    def children(self, parent_id: str | None) -> list[RunState]:
        return self._by_parent().get(parent_id, [])

    def _by_id(self) -> dict[str, RunState]:
        cached = self.__dict__.get("_by_id_cache")
        if cached is None:
            cached = {r.id: r for r in self.runs}
            object.__setattr__(self, "_by_id_cache", cached)
        return cached

    def _by_parent(self) -> dict[str | None, list[RunState]]:
        cached = self.__dict__.get("_by_parent_cache")
        if cached is None:
            cached = {}
            for r in sorted(self.runs, key=lambda r: r.order):
                cached.setdefault(r.parent_id, []).append(r)
            object.__setattr__(self, "_by_parent_cache", cached)
        return cached

    def ancestors(self, run: RunState) -> list[RunState]:
        """The run's parents, nearest first."""
        chain, parent_id = [], run.parent_id
        while parent_id is not None:
            parent = self.run(parent_id)
            chain.append(parent)
            parent_id = parent.parent_id
        return chain

    def loop_values(self, run: RunState) -> tuple[str, ...]:
        """The loop values on the way down to this run, outermost first (keys of `outputs.task[v1][v2]`).

        Only a loop's direct children carry a value, so each loop on the way adds one key, even when an
        inner loop runs over the same values as an outer one."""
        return tuple(r.value for r in reversed([run] + self.ancestors(run)) if r.value is not None)

    def with_runs(self, runs: tuple[RunState, ...], state: State | None = None) -> ExecutionSnapshot:
        return replace(self, runs=runs, state=state or self.state)
