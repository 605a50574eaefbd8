"""EachSequential, EachParallel and ForEach: the flowables that run their child tasks once per loop value."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from flows_app.engine.vocabulary import TERMINAL, State, TaskSpec, is_template
from plugins_app.base import (
    LIST,
    ChildRun,
    FlowableError,
    FlowablePlugin,
    Properties,
    RunView,
    active,
    branch,
    finally_next,
    finally_state,
    prop,
    sequential_next,
)

# ---- loop values ---------------------------------------------------------------------------------


def loop_values(raw: Any) -> tuple[str, ...]:
    """Kestra's loop values: a list, or the JSON text of one. Items that are not text become their JSON
    text (what the children see as `taskrun.value`); a value given twice runs once; a null fails."""
    if raw is None:
        raise FlowableError("the loop value is null: expected a list or the JSON text of a list")
    if isinstance(raw, str):
        return _values_of_text(raw)
    if isinstance(raw, (list, tuple)):
        return _values_of_items(raw)
    raise FlowableError(f"the loop value must be a list or the JSON text of one, got {type(raw).__name__}")


@lru_cache(maxsize=64)
def _values_of_text(text: str) -> tuple[str, ...]:
    # cached: the planner asks for the values on every step of a loop, and a big list is costly to parse
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise FlowableError(f"the loop value is not the JSON text of a list: {exc} (got {_short(text)})") from None
    if not isinstance(items, list):
        raise FlowableError(f"the loop value must be a JSON list, got {_short(text)}")
    return _values_of_items(items)


def _values_of_items(items: Sequence[Any]) -> tuple[str, ...]:
    nulls = sum(1 for item in items if item is None)
    if nulls:
        raise FlowableError(f"found {nulls} null value(s) in the loop values {_short(json.dumps(list(items)))}")
    return tuple(dict.fromkeys(_as_text(item) for item in items))


def _as_text(item: Any) -> str:
    if isinstance(item, str):
        return item
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False)  # compact, as Kestra writes it


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


# ---- the children of one loop run, indexed once per call -----------------------------------------


@dataclass(frozen=True)
class LoopRuns:
    """The loop's child runs, read once per call (with comprehensions: this is hot for a big loop)."""

    main: list[RunView]  # runs of the `tasks`
    handlers: list[RunView]  # runs of the `errors` tasks
    started: set[tuple[str | None, str]]  # (value, task id) of the main runs
    running: int  # main runs not ended yet
    states: set[State]  # the states of the main runs

    @classmethod
    def of(cls, tasks: Sequence[TaskSpec], errors: Sequence[TaskSpec], children: Sequence[RunView]) -> LoopRuns:
        main_ids, error_ids = {t.id for t in tasks}, {t.id for t in errors}
        main = [r for r in children if r.task_id in main_ids]
        return cls(
            main=main,
            handlers=[r for r in children if r.task_id in error_ids],
            started={(r.value, r.task_id) for r in main},
            running=sum(1 for r in main if r.state not in TERMINAL),
            states={r.state for r in main},
        )

    @property
    def failed(self) -> bool:
        return State.FAILED in self.states or State.KILLED in self.states


# ---- which children start next -------------------------------------------------------------------


def next_by_value(values: Sequence[str], tasks: Sequence[TaskSpec], runs: LoopRuns, limit: int) -> list[ChildRun]:
    """The tasks run one after another for each value, at most `limit` values at once (0: all)."""
    busy = {r.value for r in runs.main if r.state not in TERMINAL}
    begun = {value for value, _ in runs.started}
    in_flight, ready, fresh = len(busy), [], []
    for value in values:
        if value in busy:
            continue
        if value not in begun:
            fresh.append(value)
            continue
        following = _following(value, tasks, runs)
        if following is not None:  # between two of its tasks: still holds its slot
            in_flight += 1
            ready.append(ChildRun(following, value))
    free = len(fresh) if limit <= 0 else max(limit - in_flight, 0)
    return ready + [ChildRun(tasks[0], value) for value in fresh[:free]]


def _following(value: str, tasks: Sequence[TaskSpec], runs: LoopRuns) -> TaskSpec | None:
    for task in tasks:
        if (value, task.id) not in runs.started:
            return task
    return None


def next_side_by_side(
    values: Sequence[str], tasks: Sequence[TaskSpec], runs: LoopRuns, concurrent: int
) -> list[ChildRun]:
    """Every (value, task) pair at once, at most `concurrent` running at a time (0: all)."""
    free = None if concurrent <= 0 else concurrent - runs.running
    found: list[ChildRun] = []
    for value in values:
        for task in tasks:
            if free is not None and len(found) >= free:
                return found
            if (value, task.id) not in runs.started:
                found.append(ChildRun(task, value))
    return found


def next_handlers(errors: Sequence[TaskSpec], runs: LoopRuns, children: Sequence[RunView]) -> list[ChildRun]:
    """After a failure: once the running children have ended, the `errors` tasks one after another."""
    if runs.running:
        return []
    return sequential_next(errors, [], children)


def loop_state(
    values: Sequence[str], tasks: Sequence[TaskSpec], errors: Sequence[TaskSpec], runs: LoopRuns
) -> State | None:
    """None while work remains; FAILED (KILLED) once a child failed and the handlers ran; else the worst end."""
    if runs.running or any(not r.state.is_terminal for r in runs.handlers):
        return None
    if runs.failed:
        handler_failed = any(r.state.is_failure for r in runs.handlers)
        if len({r.task_id for r in runs.handlers}) < len(errors) and not handler_failed:
            return None  # error handlers still to run
        return State.KILLED if State.KILLED in runs.states else State.FAILED
    if len(runs.started) < len(values) * len(tasks):
        return None
    return State.WARNING if State.WARNING in runs.states else State.SUCCESS


# ---- the plugins ---------------------------------------------------------------------------------


class Loop(FlowablePlugin):
    """Shared rules of the loops; subclasses say where the values are and how children are released. `errors`
    and `finally` run once for the loop, not once per value."""

    child_fields = {"tasks": LIST, "errors": LIST, "finally": LIST}
    values_field = "value"

    def values(self, ctx) -> tuple[str, ...]:
        return loop_values(getattr(loop_props(ctx, self.Properties), self.values_field))

    def release(self, values: Sequence[str], tasks: Sequence[TaskSpec], runs: LoopRuns, ctx) -> list[ChildRun]:
        raise NotImplementedError

    def next_children(self, ctx):
        values, (tasks, errors) = self.values(ctx), _branches(ctx)
        runs = LoopRuns.of(tasks, errors, ctx.children)
        done = loop_state(values, tasks, errors, runs)
        if done is not None:
            return finally_next(done, branch(ctx.task, "finally"), ctx.children)
        if runs.failed:
            return next_handlers(errors, runs, ctx.children)
        if not tasks:
            return []
        return self.release(values, tasks, runs, ctx)

    def resolve_state(self, ctx):
        tasks, errors = _branches(ctx)
        done = loop_state(self.values(ctx), tasks, errors, LoopRuns.of(tasks, errors, ctx.children))
        return finally_state(done, branch(ctx.task, "finally"), ctx.children)


def loop_props(ctx, properties: type[Properties]) -> Any:
    """The loop's properties, rendered only when one holds a template: rendering builds every variable,
    the outputs of every run included, and the planner asks a big loop for its values on every step.
    Properties without templates were already checked when the flow was loaded."""
    raw = ctx.task.properties
    if any(_has_template(value) for value in raw.values()):
        return ctx.props()
    return properties.model_validate(raw)


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, dict):
        return any(_has_template(k) or _has_template(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_template(item) for item in value)
    return False


def _branches(ctx) -> tuple[list[TaskSpec], list[TaskSpec]]:
    return active(branch(ctx.task, "tasks")), active(branch(ctx.task, "errors"))


class EachSequential(Loop):
    """For each value of a list, run the child tasks one after another; values one after another."""

    type = "io.kestra.plugin.core.flow.EachSequential"
    aliases = ("io.kestra.core.tasks.flows.EachSequential",)
    example = """
- id: each
  type: io.kestra.plugin.core.flow.EachSequential
  value: ["a", "b", {"key": "c"}]
  tasks:
    - id: show
      type: io.kestra.plugin.core.debug.Return
      format: "{{ taskrun.value }}"
"""

    class Properties(Properties):
        value: Any = prop(
            description="The values: a list, or the JSON text of a list. Each child sees its "
            "value as `taskrun.value` (an object as its JSON text)."
        )

    def release(self, values, tasks, runs, ctx):
        return next_by_value(values, tasks, runs, limit=1)


class EachParallel(Loop):
    """For each value of a list, run every child task, all side by side; at most `concurrent` at once."""

    type = "io.kestra.plugin.core.flow.EachParallel"
    aliases = ("io.kestra.core.tasks.flows.EachParallel",)
    example = """
- id: each
  type: io.kestra.plugin.core.flow.EachParallel
  value: '["a", "b", "c"]'
  concurrent: 2
  tasks:
    - id: show
      type: io.kestra.plugin.core.debug.Return
      format: "{{ taskrun.value }}"
"""

    class Properties(EachSequential.Properties):
        concurrent: int = prop(
            0, dynamic=False, ge=0, description="How many child task runs at once, all values together; 0 means all."
        )

    def release(self, values, tasks, runs, ctx):
        return next_side_by_side(values, tasks, runs, loop_props(ctx, self.Properties).concurrent)


class ForEach(Loop):
    """For each value of a list, run the child tasks one after another; `concurrencyLimit` values at once."""

    type = "io.kestra.plugin.core.flow.ForEach"
    values_field = "values"
    example = """
- id: for_each
  type: io.kestra.plugin.core.flow.ForEach
  values: ["value 1", "value 2", "value 3"]
  concurrencyLimit: 2
  tasks:
    - id: before
      type: io.kestra.plugin.core.log.Log
      message: "{{ taskrun.value }}"
    - id: after
      type: io.kestra.plugin.core.debug.Return
      format: "done with {{ taskrun.value }}"
"""

    class Properties(Properties):
        values: Any = prop(
            description="The values: a list, or the JSON text of a list. Each child sees its "
            "value as `taskrun.value` (an object as its JSON text)."
        )
        concurrencyLimit: int = prop(
            1,
            dynamic=False,
            ge=0,
            description="How many values run at once; 1 (default) one after another, 0 all at once.",
        )

    def release(self, values, tasks, runs, ctx):
        return next_by_value(values, tasks, runs, limit=loop_props(ctx, self.Properties).concurrencyLimit)
