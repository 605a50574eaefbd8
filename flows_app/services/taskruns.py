"""Running one task run: claim it, render its properties, call its plugin, record the attempt's outcome."""

from __future__ import annotations

import json
import shutil
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.db.models import F
from django.utils import timezone

from flows_app.engine import budget
from flows_app.engine.masking import mask_value, secret_values
from flows_app.engine.outcome import decide
from flows_app.engine.output_size import OutputsTooLarge, as_json
from flows_app.engine.properties import PropertyError, render_properties
from flows_app.engine.states import State
from flows_app.engine.templating import RenderStopped, TemplateError, render_value
from flows_app.engine.variables import build_variables, in_after_execution, mentions_other_runs
from flows_app.events import ReadyRun
from flows_app.models import Execution, LogEntry, TaskRun
from flows_app.spec.durations import format_duration
from plugins_app.base import PluginError, TaskResult
from plugins_app.context import TaskRunContext
from plugins_app.registry import get_plugin

from . import workdirs
from .executions import Keep, advance_execution
from .flows import spec_of_revision
from .kv import KeyMissing, NamespaceKV
from .logfiles import LogFile
from .logs import FLUSH_SECONDS, LogSink, log_now
from .secret_inputs import secret_values as secret_input_values
from .snapshots import load_chain, load_snapshot, revision_checksum
from .storage import StorageError, storage, task_run_parts
from .transitions import claim_task_run, move_task_run


@dataclass
class Attempt:
    state: State
    outputs: Mapping[str, Any] = field(default_factory=dict)  # as stored once through `_as_stored`
    retryable: bool = True
    labels: Mapping[str, str] | None = None
    log_file: str | None = None  # the kestra:/// URI of the file its log went on in, if it did


RUNNABLE_IN = frozenset({State.CREATED, State.RUNNING, State.PAUSED})  # execution states a task may start in


@dataclass(frozen=True)
class Ran:
    """A task run was run. `kept`: the next one, accepted by the caller's `keep`, for it to run now."""

    kept: ReadyRun | None = None


def run_task_run(task_run_id: str, advance: bool = True, keep: Keep | None = None) -> Ran | None:
    """Run a queued task run once. Returns None when there was nothing to do (already claimed or gone).

    `advance`: record its end and advance the execution in one transaction (False inside a chord, whose
    body advances once for all). `keep`: see `advance_execution`.
    """
    # the run, its execution and the flow revision's checksum in one query: this is every task's first step
    run = (
        TaskRun.objects.select_related("execution")
        .filter(id=task_run_id)
        .annotate(revision_checksum=F("execution__flow_revision__checksum"))
        .first()
    )
    if run is None or run.state != State.QUEUED or not _may_start(run):
        return None  # claimed, gone, or its execution is being killed or has ended: nothing starts there
    if not claim_task_run(run):
        return None
    execution = run.execution
    execution.revision_checksum = run.revision_checksum
    heartbeat = Heartbeat(run.id, run.claim)
    heartbeat.start()
    try:
        return Ran(_run_claimed(run, execution, advance, heartbeat, keep))
    finally:
        heartbeat.stop()


def _run_claimed(
    run: TaskRun, execution: Execution, advance: bool, heartbeat: Heartbeat, keep: Keep | None
) -> ReadyRun | None:
    snapshot = _snapshot_for(execution, run)
    task = snapshot.flow.task(run.task_id)
    flow = snapshot.flow
    log_file = LogFile(flow.namespace, flow.id, execution.id, task.id, run.id, len(run.attempts))
    sink = LogSink(
        execution.id,
        run.id,
        run.task_id,
        attempt=len(run.attempts),
        min_level=task.log_level,
        log_file=log_file,
        to_file=task.log_to_file,
    )
    heartbeat.sink = sink
    for value in secret_input_values(flow, snapshot.inputs):  # SECRET inputs: masked as secrets are
        sink.add_secret(value)
    started = time.monotonic()
    shared = workdirs.sharing_parent(snapshot, snapshot.run(run.id))  # a WorkingDirectory's child
    if shared is not None:
        workdir = workdirs.directory_of(execution.id, shared.id)
    else:
        workdir = settings.TERN["WORK_DIR"] / execution.id / f"{run.id}-{len(run.attempts)}"
    deadline = started + task.timeout.total_seconds() if task.timeout else None
    try:
        with budget.task_scope(deadline, _timeout_text(task), _stop_check(task, run)):  # renders stop with the task
            attempt = _as_stored(task, _execute(snapshot, task, run, sink, workdir, deadline, shared), sink)
    finally:
        sink.close()
        if shared is None and workdir.exists():
            shutil.rmtree(workdir, ignore_errors=True)
    attempt.log_file = log_file.uri
    return record_attempt(run, snapshot.flow, task, attempt, advance, keep)


def _snapshot_for(execution: Execution, run: TaskRun):
    """The execution as the task's templates need it: its own run and parents (cheap, whatever the
    execution's size), or every run when the task — or the WorkingDirectory it runs in — mentions them."""
    flow = spec_of_revision(execution.flow_revision_id, revision_checksum(execution))
    if mentions_other_runs(flow.task(run.task_id)):
        return load_snapshot(execution)  # decided before walking the parents: they would be read again
    chain = load_snapshot(execution, runs=load_chain(run))
    shared = workdirs.sharing_parent(chain, chain.run(run.id))
    if shared is not None and mentions_other_runs(chain.flow.task(shared.task_id)):
        return load_snapshot(execution)
    return chain


def _timeout_text(task) -> str:
    return format_duration(task.timeout) if task.timeout else ""


def _stop_check(task, run: TaskRun):
    """Whether the task must stop: its execution is being killed (but for afterExecution tasks)."""
    return (lambda: False) if in_after_execution(task) else (lambda: _is_killing(run.execution_id))


def _execute(snapshot, task, run: TaskRun, sink: LogSink, workdir, deadline: float | None, shared=None) -> Attempt:
    plugin_cls = get_plugin(task.type)
    run_view = snapshot.run(run.id)
    variables = build_variables(snapshot, task, run_view)
    if shared is not None:
        variables["workerTaskrun"] = workdirs.worker_taskrun(shared)
    variables["render"] = lambda text: render_value(text, variables)
    variables["errorLogs"] = lambda: _error_logs(run.execution_id)
    store = NamespaceKV(snapshot.flow.namespace)
    variables["kv"] = store.function
    files = storage()
    variables["read"] = files.read
    parts = task_run_parts(snapshot.flow.namespace, snapshot.flow.id, run.execution_id, task.id, run.id)
    try:
        props = render_properties(plugin_cls, task, variables)
    except PropertyError as exc:
        sink.emit("ERROR", str(exc))
        return Attempt(State.FAILED)
    except RenderStopped as exc:
        sink.emit("ERROR", f"task '{task.id}': {exc}")
        return Attempt(State.FAILED)
    ctx = TaskRunContext(
        task_id=task.id,
        task_run_id=run.id,
        execution_id=run.execution_id,
        attempt=len(run.attempts),
        work_root=workdir,
        renderer=lambda value: render_value(value, variables),
        logger=sink.task_line,
        masker=sink.add_secret,
        stop_check=_stop_check(task, run),
        deadline=deadline,
        kv=store,
        storage_put=lambda source, name: files.put(parts, name, source),
        storage_path=files.path_of,
    )
    try:
        if shared is not None:
            workdirs.open_directory(snapshot, shared)
        result = plugin_cls().run(props, ctx)
        if shared is not None:
            workdirs.after_child(snapshot, shared, workdir)
    except PluginError as exc:
        sink.emit("ERROR", str(exc))
        return Attempt(State.FAILED, exc.outputs, exc.retryable)
    except (TemplateError, RenderStopped) as exc:
        sink.emit("ERROR", f"task '{task.id}': {exc}")
        return Attempt(State.FAILED)
    except (KeyMissing, StorageError, PropertyError) as exc:
        sink.emit("ERROR", str(exc))
        return Attempt(State.FAILED, retryable=False)
    except Exception as exc:  # a plugin bug must fail its task, not the worker
        sink.emit("ERROR", f"task '{task.id}' failed: {type(exc).__name__}: {exc}")
        sink.emit("DEBUG", traceback.format_exc())
        return Attempt(State.FAILED)
    if deadline is not None and time.monotonic() > deadline:
        sink.emit("ERROR", f"Timeout after {_timeout_text(task)}")
        return Attempt(State.FAILED)
    if isinstance(result, TaskResult):
        return Attempt(State(result.state), dict(result.outputs), labels=result.labels)
    return Attempt(State.SUCCESS, dict(result or {}))


def _as_stored(task, attempt: Attempt, sink: LogSink) -> Attempt:
    """The attempt with its outputs as stored: JSON types only, masked with the task's secrets (SECRET_*
    values, SECRET inputs, its mask lines); or a failed attempt when they are over the size limit, and
    nothing of them is stored."""
    try:
        text = as_json(attempt.outputs, f"the outputs of task '{task.id}'")
    except OutputsTooLarge as exc:
        sink.emit("ERROR", str(exc))
        return Attempt(State.FAILED, retryable=False)
    attempt.outputs = mask_value(json.loads(text), sink.secrets)
    return attempt


def _error_logs(execution_id: str) -> list[dict[str, Any]]:
    """Kestra's `errorLogs()`: the execution's ERROR lines, for messages in `errors` handlers."""
    entries = LogEntry.objects.filter(execution_id=execution_id, level="ERROR").order_by("id")
    return [
        {
            "taskId": e.task_id,
            "taskRunId": e.task_run_id,
            "level": e.level,
            "message": e.message,
            "timestamp": e.timestamp.isoformat(),
        }
        for e in entries
    ]


def _may_start(run: TaskRun) -> bool:
    """A task starts in a running execution; in one being killed, only its afterExecution tasks do."""
    state = run.execution.state
    if state in RUNNABLE_IN:
        return True
    if state != State.KILLING:
        return False
    flow = spec_of_revision(run.execution.flow_revision_id, run.revision_checksum)
    return in_after_execution(flow.task(run.task_id))


def _is_killing(execution_id: str) -> bool:
    return Execution.objects.filter(id=execution_id, state__in=[State.KILLING, State.KILLED]).exists()


class Heartbeat:
    """While a worker holds a task run it says so every few seconds (the reaper takes silence for
    death), and it flushes the run's pending log lines so live viewers see a quiet task's last words."""

    def __init__(self, task_run_id: str, claim: int):
        self.task_run_id, self.claim = task_run_id, claim
        self.sink: LogSink | None = None
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{task_run_id[:8]}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)

    def _beat(self) -> None:
        interval = settings.TERN["HEARTBEAT_SECONDS"]
        last_beat = time.monotonic()
        try:
            while not self.stopped.wait(FLUSH_SECONDS):
                if self.sink is not None:
                    self.sink.flush()
                if time.monotonic() - last_beat >= interval:
                    last_beat = time.monotonic()
                    self.beat()
        finally:
            connections.close_all()  # this thread's own connection

    def beat(self) -> bool:
        """One sign of life; False once another worker claimed the run (this one was taken for dead)."""
        return (
            TaskRun.objects.filter(id=self.task_run_id, state=State.RUNNING, claim=self.claim).update(
                heartbeat_at=timezone.now()
            )
            == 1
        )


def record_attempt(
    run: TaskRun, flow, task, attempt: Attempt, advance: bool, keep: Keep | None = None
) -> ReadyRun | None:
    """Store the attempt and decide: done, or a retry at a stored time; then advance the execution in the
    same transaction, under its row lock: one commit per task, and racing workers decide one at a time.

    Fenced: if another worker claimed the run since (this attempt's worker was taken for dead and the run
    resubmitted), the result is refused and said so."""
    now = timezone.now()
    if attempt.state == State.FAILED and not in_after_execution(task) and _is_killing(run.execution_id):
        decision_state, next_at = State.KILLED, None
    else:
        decision = decide(flow, task, attempt.state, len(run.attempts), attempt.retryable, run.started_at, now)
        decision_state, next_at = decision.state, decision.next_attempt_at
    attempts = list(run.attempts)
    attempts[-1] = {**attempts[-1], "state": attempt.state.value, "endDate": now.isoformat()}
    if attempt.log_file:
        attempts[-1]["logFile"] = attempt.log_file  # Kestra's name, in the attempt
    fields: dict[str, Any] = {"attempts": attempts, "outputs": dict(attempt.outputs)}
    if next_at is not None:
        fields["next_attempt_at"] = next_at
    fields["heartbeat_at"] = None

    def store() -> None:
        if move_task_run(run, decision_state, fenced=True, **fields):
            if attempt.labels:
                _add_labels(run.execution_id, attempt.labels)
        elif TaskRun.objects.filter(id=run.id).exclude(claim=run.claim).exists():
            log_now(
                run.execution_id,
                "WARN",
                f"a late result of '{run.task_id}' (attempt {len(run.attempts)}, "
                f"{attempt.state}) was refused: the run was sent again to another worker",
                run.id,
                run.task_id,
            )

    if advance or decision_state == State.RETRYING:
        advanced = advance_execution(run.execution_id, first=store, keep=keep)
        return advanced.kept if advanced is not None else None
    with transaction.atomic():  # inside a chord: its body advances once for all
        store()
    return None


def _add_labels(execution_id: str, labels: Mapping[str, str]) -> None:
    """Merge labels into the execution's (a task's request, recorded with the task's end)."""
    execution = Execution.objects.only("labels").get(id=execution_id)
    labels = mask_value(dict(labels), secret_values())  # rendered by the task: a secret may be in one
    Execution.objects.filter(id=execution_id).update(labels={**(execution.labels or {}), **labels})
