"""Flow triggers: a flow runs when executions of other flows end (Kestra's `io.kestra.plugin.core.trigger.Flow`).

`on_execution_ended` hears each end once it commits; the housekeeping tick's `sweep` looks again at the
executions that ended since each trigger's cursor (its `TriggerState.next_date`), for an end whose event a
dying worker never delivered. Both go through `consider`, and a second look at one end starts nothing:

1. an execution of the trigger's own flow never triggers it (Kestra's rule against recursion);
2. the execution's state must be one of the trigger's `states` (by default any final one), and its
   `conditions` must hold;
3. under the trigger state's row lock, each precondition counts the execution once (`PreconditionWindow.seen`),
   and the trigger fires when the execution counted and every precondition is met inside its window;
4. the execution starts with the key `flow:<trigger state>:<ending execution>`: at most one per end.

A start the flow refuses (its inputs, a template that fails) is the trigger's error, logged on
"tern.triggers": nothing here raises into the worker that ended the execution.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from flows_app.engine.conditions import EndedExecution, HasRetryAttempt, Not, Or, execution_conditions_hold
from flows_app.engine.preconditions import Met, Preconditions, Progress, Window, met_by, record, reset
from flows_app.engine.states import TERMINAL
from flows_app.engine.templating import TemplateError, is_template, render, render_value
from flows_app.engine.variables import build_variables
from flows_app.engine.vocabulary import truthy
from flows_app.events import ExecutionEnded
from flows_app.models import Execution, FlowRevision, PreconditionWindow, TaskRun, TriggerState
from flows_app.services.flows import spec_of_revision
from flows_app.services.snapshots import load_snapshot
from flows_app.services.starting import FlowDisabled, start_execution
from flows_app.spec.triggers import FLOW_TRIGGER, FlowTriggerSpec

logger = logging.getLogger("tern.triggers")

REFRESH = 1.0  # seconds a process trusts its list of enabled Flow triggers (its own changes forget it at once)
LAG = timedelta(seconds=30)  # an end commits within this: the sweep looks no nearer to now
PER_SWEEP = 500  # ended executions looked at by one sweep: a long catch-up goes on at the next tick
FORGET = timedelta(hours=1)  # a precondition forgets an execution it counted this long before the cursor
FINAL = tuple(s.value for s in TERMINAL)  # a trigger without `states` hears every final state (Kestra's)


# ---- the enabled Flow triggers, as this process knows them ------------------------------------------------


@dataclass(frozen=True)
class Listener:
    state_pk: int
    flow_pk: int
    trigger_id: str
    revision_pk: int  # its flow's latest revision, whose spec says what the trigger is
    checksum: str
    name: str = ""  # namespace.flow.trigger, for messages


_lock = threading.Lock()
_cached: tuple[float, tuple[Listener, ...]] | None = None
_generation = 0  # moves on each change of a trigger state in this process: a read begun before is not kept


def listeners() -> tuple[Listener, ...]:
    """The enabled Flow triggers: with none, an execution's end costs a clock read (and a query a second)."""
    global _cached
    cached = _cached
    if cached is not None and time.monotonic() - cached[0] < REFRESH:
        return cached[1]
    generation, read_at = _generation, time.monotonic()
    rows = list(
        TriggerState.objects.filter(type=FLOW_TRIGGER[0], enabled=True).values_list(
            "pk", "flow_id", "trigger_id", "flow__revision", "flow__namespace", "flow__flow_id"
        )
    )
    found: tuple[Listener, ...] = ()
    if rows:
        latest = FlowRevision.objects.filter(flow_id__in={row[1] for row in rows}, revision=F("flow__revision"))
        revisions = {
            (f, n): (pk, checksum) for f, n, pk, checksum in latest.values_list("flow_id", "revision", "pk", "checksum")
        }
        found = tuple(
            Listener(pk, flow_pk, trigger_id, *revisions[(flow_pk, number)], f"{namespace}.{flow_id}.{trigger_id}")
            for pk, flow_pk, trigger_id, number, namespace, flow_id in rows
            if (flow_pk, number) in revisions
        )
    with _lock:
        if generation == _generation:
            _cached = (read_at, found)
    return found


def forget_listeners(**_: Any) -> None:
    global _cached, _generation
    with _lock:
        _cached, _generation = None, _generation + 1


post_save.connect(forget_listeners, sender=TriggerState, dispatch_uid="tern.flow_triggers.saved")
post_delete.connect(forget_listeners, sender=TriggerState, dispatch_uid="tern.flow_triggers.deleted")


# ---- the live path and the sweep --------------------------------------------------------------------------


def on_execution_ended(event: ExecutionEnded) -> None:
    found = listeners()
    if found:
        consider(event.execution_id, found)


def sweep(now: datetime | None = None) -> int:
    """The housekeeping tick's part: the executions that ended since each enabled Flow trigger's cursor, up to
    LAG ago, are considered again (the unique start key makes a second look harmless); the cursors move on.
    A trigger looks no further back than its state's last change, so one enabled again does not hear what
    ended while it was disabled. Returns how many executions it started."""
    now = now or timezone.now()
    upto = now - LAG
    rows = TriggerState.objects.filter(type=FLOW_TRIGGER[0], enabled=True).values_list("pk", "next_date", "updated_at")
    cursors = {pk: max(cursor, changed) if cursor else changed for pk, cursor, changed in rows}
    due = {pk: cursor for pk, cursor in cursors.items() if cursor < upto}
    if not due:
        return 0
    ended = list(
        Execution.objects.filter(ended_at__gt=min(due.values()), ended_at__lte=upto)
        .order_by("ended_at", "id")
        .values_list("id", "ended_at")[: PER_SWEEP + 1]
    )
    if len(ended) > PER_SWEEP:  # the rest next time, from the first instant not looked at whole
        rest = ended[PER_SWEEP][1]
        ended = [row for row in ended[:PER_SWEEP] if row[1] < rest] or ended[:PER_SWEEP]
        upto = ended[-1][1]
    forget_listeners()
    by_state = {listener.state_pk: listener for listener in listeners()}
    started = 0
    for execution_id, ended_at in ended:
        hearing = [by_state[pk] for pk, cursor in due.items() if cursor < ended_at and pk in by_state]
        if hearing:
            started += consider(execution_id, hearing)
    TriggerState.objects.filter(pk__in=list(due)).update(next_date=upto)  # no save(): updated_at stays
    return started


def consider(execution_id: str, hearing: tuple[Listener, ...] | list[Listener]) -> int:
    """Each trigger in `hearing` looks at the execution that ended (if it is still ended: a restarted one is
    looked at when it ends again); returns how many executions started. Never raises."""
    try:
        execution = Execution.objects.select_related("flow").defer("flow__source").filter(id=execution_id).first()
    except Exception:
        logger.exception("Flow triggers: execution %s could not be read", execution_id)
        return 0
    if execution is None or execution.state not in FINAL or execution.ended_at is None:
        return 0
    ending = Ending(execution)
    started = 0
    for listener in hearing:
        if listener.flow_pk == execution.flow_id:
            continue  # Kestra: a flow's own executions never trigger it
        try:
            started += _consider_one(listener, ending)
        except Exception:  # one trigger's failure must not stop the others, nor reach the ending's worker
            logger.exception("Flow trigger %s failed on execution %s", listener.name, execution_id)
    return started


# ---- one trigger, one ending --------------------------------------------------------------------------------


class Ending:
    """The execution that ended, as a Flow trigger reads it: its facts for the conditions, and the variables of
    its own templates (Kestra renders a trigger's templates in the ending execution's context) with the new
    execution's `trigger`. Each is read once, when first needed."""

    def __init__(self, execution: Execution) -> None:
        self.execution = execution
        self.id: str = execution.id
        self.state: str = execution.state
        self.ended_at: datetime = execution.ended_at  # type: ignore[assignment]  # an ended execution has one

    def facts(self, with_attempts: bool) -> EndedExecution:
        return self._with_attempts if with_attempts else self._facts

    @cached_property
    def _facts(self) -> EndedExecution:
        e = self.execution
        return EndedExecution(e.flow.namespace, e.flow.flow_id, e.state, dict(e.labels or {}), dict(e.outputs or {}))

    @cached_property
    def _with_attempts(self) -> EndedExecution:
        runs = TaskRun.objects.filter(execution_id=self.id).values_list("attempts", flat=True)
        attempts = tuple(tuple(str(a.get("state")) for a in run or ()) for run in runs)
        facts = self._facts
        return EndedExecution(facts.namespace, facts.flow_id, facts.state, facts.labels, facts.outputs, attempts)

    def trigger(self, trigger_id: str) -> dict[str, Any]:
        """The new execution's `trigger` (Kestra's Flow.Output), with `id` and `type` as every trigger's."""
        e = self.execution
        return {
            "id": trigger_id,
            "type": FLOW_TRIGGER[0],
            "executionId": e.id,
            "namespace": e.flow.namespace,
            "flowId": e.flow.flow_id,
            "flowRevision": self._revision,
            "state": e.state,
            "outputs": dict(e.outputs or {}),
        }

    @cached_property
    def _revision(self) -> int:
        return int(FlowRevision.objects.values_list("revision", flat=True).get(pk=self.execution.flow_revision_id))

    @cached_property
    def _variables(self) -> dict[str, Any]:
        return build_variables(load_snapshot(self.execution))

    def variables(self, trigger_id: str) -> dict[str, Any]:
        return {**self._variables, "trigger": self.trigger(trigger_id)}

    def key(self, state_pk: int) -> str:
        """One start per trigger and end: a restarted execution that ends again is a new end."""
        restarts = sum(1 for entry in self.execution.histories or () if entry.get("state") == "RESTARTED")
        return f"flow:{state_pk}:{self.id}" + (f":{restarts}" if restarts else "")


def _consider_one(listener: Listener, ending: Ending) -> int:
    spec = spec_of_revision(listener.revision_pk, listener.checksum)
    trigger = next((t for t in spec.triggers if t.id == listener.trigger_id and t.type == FLOW_TRIGGER[0]), None)
    flow_trigger = trigger.spec if trigger is not None else None
    if not isinstance(flow_trigger, FlowTriggerSpec) or ending.state not in (flow_trigger.states or FINAL):
        return 0
    variables = _Lazy(ending, listener.trigger_id)
    facts = ending.facts(_needs_attempts(flow_trigger))
    try:
        if not execution_conditions_hold(
            flow_trigger.conditions, facts, render=variables.render, evaluate_expression=variables.judge
        ):
            return 0
    except Exception as exc:  # Kestra: a condition that cannot be evaluated does not hold, and is said
        _record_error(listener.state_pk, listener.name, f"execution {ending.id}: conditions: {exc}")
        return 0
    met = [
        met_by(p, facts, render=variables.render, evaluate_expression=variables.judge)
        for p in flow_trigger.preconditions
    ]
    for _, problems in met:
        for problem in problems:
            logger.warning("Flow trigger %s, execution %s: %s", listener.name, ending.id, problem)
    if flow_trigger.preconditions and not any(names for names, _ in met):
        return 0  # it counts for no precondition, so it cannot complete one: no lock taken
    with transaction.atomic():
        state = (
            TriggerState.objects.select_for_update(of=("self",))
            .select_related("flow")
            .filter(pk=listener.state_pk, enabled=True)
            .first()
        )
        if state is None:
            return 0  # disabled since this process read its triggers
        counted = [names for names, _ in met]
        if flow_trigger.preconditions and not _preconditions_fire(state, flow_trigger.preconditions, counted, ending):
            return 0
        return _start(state, flow_trigger, ending, variables)


class _Lazy:
    """Renders with the ending's variables, read only when a template needs them."""

    def __init__(self, ending: Ending, trigger_id: str) -> None:
        self.ending, self.trigger_id = ending, trigger_id

    @cached_property
    def variables(self) -> dict[str, Any]:
        return self.ending.variables(self.trigger_id)

    def render(self, text: str) -> str:
        return render(text, self.variables) if is_template(text) else text

    def judge(self, text: str) -> bool:
        return truthy(self.render(text))


def _needs_attempts(flow_trigger: FlowTriggerSpec) -> bool:
    pending: list[Any] = [*flow_trigger.conditions]
    pending += [check for p in flow_trigger.preconditions for _, check in p.checks]
    while pending:
        condition = pending.pop()
        if isinstance(condition, HasRetryAttempt):
            return True
        if isinstance(condition, (Not, Or)):
            pending.extend(condition.conditions)
    return False


def _preconditions_fire(
    state: TriggerState, preconditions: tuple[Preconditions, ...], met: list[frozenset[str]], ending: Ending
) -> bool:
    """Must hold the state's row lock. Counts the ending in each precondition's window (saving what changed);
    True when it counted somewhere and every precondition is met, which resets those with resetOnSuccess."""
    rows = {w.precondition_id: w for w in PreconditionWindow.objects.select_for_update().filter(trigger_state=state)}
    forget = state.next_date - FORGET if state.next_date else None
    steps = [
        (p, record(p, _progress(rows.get(p.id)), ending.id, ending.ended_at, names, forget))
        for p, names in zip(preconditions, met, strict=True)
    ]
    fires = any(step.counted for _, step in steps) and all(step.complete for _, step in steps)
    for p, step in steps:
        progress = reset(step.progress) if fires and p.reset_on_success else step.progress
        _keep(state, rows.get(p.id), p.id, progress)
    gone = [key for key in rows if key not in {p.id for p in preconditions}]
    if gone:
        PreconditionWindow.objects.filter(trigger_state=state, precondition_id__in=gone).delete()
    return fires


def _progress(row: PreconditionWindow | None) -> Progress:
    if row is None:
        return Progress()
    window = Window(row.start, row.end, row.sliding) if row.start and row.end else None
    met = {name: Met(m["execution"], datetime.fromisoformat(m["ended"])) for name, m in (row.met or {}).items()}
    seen = {key: datetime.fromisoformat(moment) for key, moment in (row.seen or {}).items()}
    return Progress(window, met, seen)


def _keep(state: TriggerState, row: PreconditionWindow | None, precondition_id: str, progress: Progress) -> None:
    """Save a window's progress, when it changed."""
    if progress == _progress(row):
        return
    row = row or PreconditionWindow(trigger_state=state, precondition_id=precondition_id)
    window = progress.window
    row.start, row.end, row.sliding = (window.start, window.end, window.sliding) if window else (None, None, False)
    row.met = {name: {"execution": m.execution_id, "ended": m.ended.isoformat()} for name, m in progress.met.items()}
    row.seen = {key: moment.isoformat() for key, moment in progress.seen.items()}
    row.save()


def _start(state: TriggerState, flow_trigger: FlowTriggerSpec, ending: Ending, variables: _Lazy) -> int:
    """Must hold the state's row lock. The execution, with the ending's facts as `trigger` and the trigger's
    inputs and labels rendered; a refusal is the trigger's error."""
    trigger = ending.trigger(state.trigger_id)
    try:
        inputs = (
            render_value(dict(flow_trigger.inputs), variables.variables)
            if _templated(flow_trigger.inputs)
            else flow_trigger.inputs
        )
    except TemplateError as exc:
        _record_error(state.pk, str(state), f"execution {ending.id}: inputs: {exc}")
        return 0
    try:
        execution = start_execution(
            state.flow,
            inputs,
            labels=_labels(flow_trigger.labels, variables, state),
            trigger=trigger,
            start_key=ending.key(state.pk),
        )
    except IntegrityError:  # started already: by the live path, or by an earlier sweep
        return 0
    except (ValueError, PermissionError, FlowDisabled) as exc:  # InputsError, ReservedLabels, a disabled flow
        _record_error(state.pk, str(state), f"execution {ending.id}: {exc}")
        return 0
    TriggerState.objects.filter(pk=state.pk).update(
        last_date=timezone.now(), last_execution_id=execution.id, last_error="", error_count=0
    )
    return 1


def _templated(value: Any) -> bool:
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, Mapping):
        return any(_templated(k) or _templated(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_templated(item) for item in value)
    return False


def _labels(labels: Mapping[str, str], variables: _Lazy, state: TriggerState) -> dict[str, str]:
    """The trigger's labels, their values rendered; one that fails to render is left out (Kestra's
    LabelService.fromTrigger)."""
    rendered = {}
    for key, value in labels.items():
        try:
            rendered[key] = variables.render(value) if isinstance(value, str) else value
        except TemplateError as exc:
            logger.warning("%s: label %s left out: %s", state, key, exc)
    return rendered


def _record_error(state_pk: int, name: str, message: str) -> None:
    logger.warning("Flow trigger %s: %s", name, message)
    TriggerState.objects.filter(pk=state_pk).update(last_error=message[:2000], error_count=F("error_count") + 1)
