"""Switch, If, AllowFailure and Dag: the flowable tasks that choose which children run, or in what order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from flows_app.engine.vocabulary import State, to_text, truthy
from plugins_app.base import (
    DAG,
    LIST,
    MAP,
    ChildRun,
    FlowableError,
    FlowablePlugin,
    Properties,
    active,
    branch,
    finally_next,
    finally_state,
    prop,
    resolve_children_state,
    runs_of,
    sequential_next,
)

Issue = tuple[tuple[Any, ...], str]  # (path relative to the task, message), as the flow parser reports them


# ---- Switch -------------------------------------------------------------------------------------


class Switch(FlowablePlugin):
    """Run the tasks of the case whose key equals the rendered `value`, else the `defaults`."""

    type = "io.kestra.plugin.core.flow.Switch"
    aliases = ("io.kestra.core.tasks.flows.Switch",)
    child_fields = {"cases": MAP, "defaults": LIST, "errors": LIST, "finally": LIST}
    required_children = frozenset()  # either may be left out, not both: see check()
    outputs = {"value": "The rendered `value`.", "defaults": "Whether the `defaults` branch was taken."}
    example = """
- id: route
  type: io.kestra.plugin.core.flow.Switch
  value: "{{ inputs.kind }}"
  cases:
    CSV:
      - id: csv
        type: io.kestra.plugin.core.log.Log
        message: a CSV file
  defaults:
    - id: other
      type: io.kestra.plugin.core.log.Log
      message: "something else: {{ inputs.kind }}"
"""

    class Properties(Properties):
        value: Any = prop(description="The value compared with the keys of `cases`.")

    @classmethod
    def check(cls, raw: Mapping[str, Any]) -> list[Issue]:
        if not raw.get("cases") and not raw.get("defaults"):
            return [((), "a Switch needs `cases` or `defaults` (or both)")]
        return []

    def start(self, ctx):
        value = to_text(ctx.props().value)
        chosen = _case(ctx.task, value)
        return {"value": value, "defaults": chosen is None and bool(branch(ctx.task, "defaults"))}

    def next_children(self, ctx):
        return _sequence_next(ctx, self._tasks(ctx))

    def resolve_state(self, ctx):
        return _sequence_state(ctx, self._tasks(ctx))

    @staticmethod
    def _tasks(ctx) -> list:
        """The branch chosen at start, from the value stored then (rendering again could give another)."""
        value = str(ctx.run.outputs.get("value", ""))
        chosen = _case(ctx.task, value)
        if chosen is not None:
            return branch(ctx.task, chosen)
        if not branch(ctx.task, "defaults"):
            raise FlowableError(f"no case matches the value '{value}' and there are no defaults")
        return branch(ctx.task, "defaults")


def _sequence_next(ctx, tasks: list) -> list[ChildRun]:
    """`tasks` one after another, `errors` after a failure, then `finally` (Switch, If, AllowFailure)."""
    errors = branch(ctx.task, "errors")
    return sequential_next(tasks, errors, ctx.children) or finally_next(
        resolve_children_state(tasks, errors, ctx.children), branch(ctx.task, "finally"), ctx.children
    )


def _sequence_state(ctx, tasks: list) -> State | None:
    done = resolve_children_state(tasks, branch(ctx.task, "errors"), ctx.children)
    return finally_state(done, branch(ctx.task, "finally"), ctx.children)


def _case(task, value: str) -> str | None:
    """The branch name ("cases.<key>") whose key reads as `value`."""
    for name in task.branches:
        if name.startswith("cases.") and _key_text(name[len("cases.") :]) == value:
            return name
    return None


def _key_text(key: str) -> str:
    """YAML reads `true:`, `false:` and `null:` keys as Python values; Kestra keeps them as written."""
    return {"True": "true", "False": "false", "None": "null"}.get(key, key)


# ---- If -----------------------------------------------------------------------------------------


class If(FlowablePlugin):
    """Run `then` when `condition` renders true (not blank, false, 0 or null), else `else`."""

    type = "io.kestra.plugin.core.flow.If"
    aliases = ("io.kestra.core.tasks.flows.If",)
    child_fields = {"then": LIST, "else": LIST, "errors": LIST, "finally": LIST}
    required_children = frozenset({"then"})
    outputs = {"evaluationResult": "The condition's truth."}
    example = """
- id: big-enough
  type: io.kestra.plugin.core.flow.If
  condition: "{{ outputs.count.value > 10 }}"
  then:
    - id: yes
      type: io.kestra.plugin.core.log.Log
      message: big
  else:
    - id: no
      type: io.kestra.plugin.core.log.Log
      message: small
"""

    class Properties(Properties):
        condition: Any = prop(None, description="Rendered, then false when blank, `false`, `0`, `-0` or null.")

    def start(self, ctx):
        return {"evaluationResult": truthy(ctx.props().condition)}

    def next_children(self, ctx):
        return _sequence_next(ctx, self._tasks(ctx))

    def resolve_state(self, ctx):
        # With no `else` and a false condition there is nothing to run: SUCCESS at once (after `finally`).
        return _sequence_state(ctx, self._tasks(ctx))

    @staticmethod
    def _tasks(ctx) -> list:
        return branch(ctx.task, "then" if ctx.run.outputs.get("evaluationResult") else "else")


# ---- AllowFailure -------------------------------------------------------------------------------


class AllowFailure(FlowablePlugin):
    """Run child tasks one after another; if one fails, the block stops and ends WARNING, and the flow goes on."""

    type = "io.kestra.plugin.core.flow.AllowFailure"
    aliases = ("io.kestra.core.tasks.flows.AllowFailure",)
    child_fields = {"tasks": LIST, "errors": LIST, "finally": LIST}
    example = """
- id: best-effort
  type: io.kestra.plugin.core.flow.AllowFailure
  tasks:
    - id: flaky
      type: io.kestra.plugin.scripts.shell.Commands
      commands: ["exit 1"]
"""

    def next_children(self, ctx):
        return _sequence_next(ctx, branch(ctx.task, "tasks"))

    def resolve_state(self, ctx):
        state = _sequence_state(ctx, branch(ctx.task, "tasks"))
        return State.WARNING if state == State.FAILED else state  # a kill stays a kill


# ---- Dag ----------------------------------------------------------------------------------------


class DagTask(BaseModel):
    """One entry of a Dag's `tasks`: the task, and the ids of the tasks that must succeed before it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: dict[str, Any] | str  # the task as written (or only its id)
    dependsOn: list[str] = []


# The DAG shape: the parser turns each entry's `task` into a child (`branches["tasks"]`) and keeps the field as
# written among the properties, where the dependencies are read; `check()` reports unknown ids and cycles.
class Dag(FlowablePlugin):
    """Run each task once all the tasks it `dependsOn` have succeeded, at most `concurrent` at once (0: no limit)."""

    type = "io.kestra.plugin.core.flow.Dag"
    aliases = ("io.kestra.core.tasks.flows.Dag",)
    child_fields = {"tasks": DAG, "errors": LIST, "finally": LIST}
    example = """
- id: build
  type: io.kestra.plugin.core.flow.Dag
  tasks:
    - task:
        id: fetch
        type: io.kestra.plugin.core.log.Log
        message: fetch
    - task:
        id: compile
        type: io.kestra.plugin.core.log.Log
        message: compile
      dependsOn: [fetch]
"""

    class Properties(Properties):
        tasks: list[DagTask] = prop(description="The tasks and their dependencies.", dynamic=False, min_length=1)
        concurrent: int = prop(0, description="How many tasks run at once; 0 means no limit.", ge=0, dynamic=False)

    @classmethod
    def check(cls, raw: Mapping[str, Any]) -> list[Issue]:
        entries = raw.get("tasks")
        if not isinstance(entries, list):
            return []  # the parser has said so already
        graph = _graph(entries)
        return _unknown_dependencies(entries, graph) + _cycle(graph)

    def next_children(self, ctx):
        """1. after a failure: no new start, then `errors` once the running ones end; 2. else the ready ones;
        3. once they and the errors are done, `finally`."""
        tasks, errors = active(branch(ctx.task, "tasks")), branch(ctx.task, "errors")
        main = runs_of(tasks, ctx.children)
        running = sum(1 for r in main if not r.state.is_terminal)
        done = resolve_children_state(tasks, errors, ctx.children)
        if done is not None:
            return finally_next(done, branch(ctx.task, "finally"), ctx.children)
        if any(r.state.is_failure for r in main):
            return [] if running else sequential_next(tasks, errors, ctx.children)
        ready = self._ready(ctx, tasks, main)
        if not ready and not running and len(main) < len(tasks):
            raise FlowableError("no task of the Dag can start: check `dependsOn`")
        limit = ctx.props().concurrent
        free = len(ready) if limit <= 0 else max(limit - running, 0)
        return [ChildRun(t) for t in ready[:free]]

    def resolve_state(self, ctx):
        done = resolve_children_state(branch(ctx.task, "tasks"), branch(ctx.task, "errors"), ctx.children)
        return finally_state(done, branch(ctx.task, "finally"), ctx.children)

    @staticmethod
    def _ready(ctx, tasks: Sequence, main: Sequence) -> list:
        """Tasks not started whose dependencies all succeeded; a disabled dependency counts as met."""
        deps = {_task_id(e.task): e.dependsOn for e in ctx.props().tasks}
        ids = {t.id for t in tasks}
        started = {r.task_id for r in main}
        succeeded = {r.task_id for r in main if r.state.is_success}
        return [
            t for t in tasks if t.id not in started and all(d in succeeded or d not in ids for d in deps.get(t.id, ()))
        ]


def _task_id(task: Mapping[str, Any] | str) -> str | None:
    if isinstance(task, str):
        return task
    value = task.get("id") if isinstance(task, Mapping) else None
    return value if isinstance(value, str) else None


def _graph(entries: list) -> dict[str, list[tuple[int, int, Any]]]:
    """Task id -> its dependencies as (entry index, dependency index, id)."""
    graph: dict[str, list[tuple[int, int, Any]]] = {}
    for i, entry in enumerate(entries):
        task_id = _task_id(entry.get("task")) if isinstance(entry, Mapping) else None
        if task_id is None:
            continue
        deps = entry.get("dependsOn") or []
        # anything but a list of ids is reported by the Properties check; skip it here
        graph[task_id] = [(i, j, d) for j, d in enumerate(deps) if isinstance(d, str)] if isinstance(deps, list) else []
    return graph


def _unknown_dependencies(entries: list, graph: Mapping[str, list[tuple[int, int, Any]]]) -> list[Issue]:
    return [
        (("tasks", i, "dependsOn", j), f"'{dep}' is not the id of a task of this Dag")
        for deps in graph.values()
        for i, j, dep in deps
        if dep not in graph
    ]


def _cycle(graph: Mapping[str, list[tuple[int, int, Any]]]) -> list[Issue]:
    """The first dependency cycle found (depth first), as one issue naming it: a -> b -> a.

    A loop, not recursion: a chain of a thousand tasks would pass Python's recursion limit."""
    done: set[str] = set()
    for start in graph:
        if start in done:
            continue
        path, on_path = [start], {start}  # the tasks being visited, outermost first
        pending = [iter(graph[start])]  # the dependencies left to visit, for each task of `path`
        while pending:
            step = next(pending[-1], None)
            if step is None:  # every dependency of path[-1] is done
                done.add(path[-1])
                on_path.discard(path.pop())
                pending.pop()
                continue
            dep = step[2]
            if dep in on_path:
                return [(("tasks",), "dependency cycle: " + " -> ".join(path[path.index(dep) :] + [dep]))]
            if dep not in done and dep in graph:
                path.append(dep)
                on_path.add(dep)
                pending.append(iter(graph[dep]))
    return []
