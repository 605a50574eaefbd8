"""The only sender of work. It hears the engine's events and carries them out: one interface, two ways.

`CeleryDispatcher` (the server) routes ready task runs to queues and sends them as Celery messages over
Redis: one message per run, a `group` for several, a `chord` whose body is one advance to join a fan-in.
`InlineDispatcher` (`tern flow test`, `TERN_DISPATCHER=inline`) carries them out in this process:
task runs on a thread pool (each records its end and advances its execution, as a worker does), the
other advances and the timers on one loop thread.

Routing is decided here, from the facts the services give (`ReadyRun`): a task's worker group picks its
queue (`tern.<group>`), a run pinned to a worker (a WorkingDirectory's child) goes to that worker's own
queue. The services know no queue and no Celery.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from django.conf import settings
from django.db import connections
from django.utils import module_loading, timezone

from flows_app.events import (
    ExecutionCreated,
    ExecutionEnded,
    ExecutionStateChanged,
    LogLinesWritten,
    ReadyRun,
    TaskRunsReady,
    TaskRunStateChanged,
    WakeUpSet,
)
from flows_app.services import executions, taskruns
from orchestrator import celery
from orchestrator.celery import app

logger = logging.getLogger("tern.dispatch")

# How many task runs in a row a worker thread runs without going back to the queue (then it hands the
# next one back, so one long sequence cannot hold a thread for ever).
MAX_IN_TURN = 100


@dataclass(frozen=True)
class Batch:
    """Task runs sent together to one queue. `join`: all the children of one fan-in parent, so nothing can
    happen before every one has ended: one advance after the last is enough (a chord)."""

    task_run_ids: tuple[str, ...]
    queue: str
    join: bool = False


def batches(ready: TaskRunsReady) -> list[Batch]:
    """The ready runs (but the kept one) by parent and queue; a group holding every ready child of a parent
    that joins them is joined."""
    groups: dict[tuple[str | None, str], list[ReadyRun]] = {}
    per_parent: dict[str | None, int] = {}
    for run in ready.runs:
        if run.task_run_id != ready.kept:
            groups.setdefault((run.parent_id, queue_of(run)), []).append(run)
            per_parent[run.parent_id] = per_parent.get(run.parent_id, 0) + 1
    return [
        Batch(
            tuple(r.task_run_id for r in runs),
            queue_name,
            join=len(runs) > 1 and len(runs) == per_parent[parent_id] and all(r.joined for r in runs),
        )
        for (parent_id, queue_name), runs in groups.items()
    ]


def queue_of(run: ReadyRun) -> str:
    """The queue a ready run is sent to: its pinned worker's own queue, else its worker group's."""
    if run.pinned_worker:
        return celery.direct_queue(run.pinned_worker)
    return celery.queue_for(run.worker_group)


class Dispatcher(Protocol):
    def advance(self, execution_id: str, at: datetime | None = None) -> None:
        """Have the execution advanced, now or at `at` (a retry's time)."""

    def send(self, ready: TaskRunsReady) -> None:
        """Have these queued task runs run (called after the commit that queued them), but `ready.kept`."""

    def ended(self, event: ExecutionEnded) -> None:
        """The execution reached a final state."""

    def logs_written(self, event: LogLinesWritten) -> None:
        """Log lines were stored: live viewers may be told."""

    def changed(self, event: ExecutionStateChanged | TaskRunStateChanged) -> None:
        """An execution or one of its task runs changed state: whoever waits on it or follows it may be told."""


# ---- the subscribers (listed in events.SUBSCRIBERS): each hands its event to the dispatcher in use ----


def on_execution_created(event: ExecutionCreated) -> None:
    get().advance(event.execution_id)


def on_wake_up(event: WakeUpSet) -> None:
    get().advance(event.execution_id, event.at)


def on_task_runs_ready(event: TaskRunsReady) -> None:
    get().send(event)


def on_execution_ended(event: ExecutionEnded) -> None:
    get().ended(event)


def on_state_changed(event: ExecutionStateChanged | TaskRunStateChanged) -> None:
    get().changed(event)


def on_log_lines(event: LogLinesWritten) -> None:
    get().logs_written(event)


# ---- Celery ------------------------------------------------------------------------------------


# Said per message, not only by the task (CELERY_TASK_IGNORE_RESULT): a process that sends by name without the
# task imported (the web) would otherwise subscribe to each message's result channel, which nobody reads.
NO_RESULT = {"ignore_result": True}


class CeleryDispatcher:
    """Events as Celery messages: one per task run, a `group` for several, a `chord` to join them."""

    def advance(self, execution_id: str, at: datetime | None = None) -> None:
        signature = app.signature("tern.advance_execution", args=(execution_id,), immutable=True, **NO_RESULT)
        if at is not None and at > timezone.now():
            signature.apply_async(eta=at)
        else:
            signature.apply_async()

    def send(self, ready: TaskRunsReady) -> None:
        from celery import chord, group

        for batch in batches(ready):
            ids = batch.task_run_ids
            if batch.join:
                header = [_run_signature(i, batch.queue, "tern.run_task_run_in_chord") for i in ids]
                chord(header)(
                    app.signature(
                        "tern.advance_execution", args=(ready.execution_id,), immutable=True, queue=celery.DEFAULT_QUEUE
                    )
                )
            elif len(ids) > 1:
                group(_run_signature(i, batch.queue) for i in ids).apply_async()
            else:
                _run_signature(ids[0], batch.queue).apply_async()

    def ended(self, event: ExecutionEnded) -> None:
        pass  # flow triggers listening to ends subscribe to ExecutionEnded themselves (triggers issue)

    def logs_written(self, event: LogLinesWritten) -> None:
        from flows_app import live

        live.publish(event)

    def changed(self, event: ExecutionStateChanged | TaskRunStateChanged) -> None:
        from flows_app import live

        live.publish_change(event)


def run_in_turn(task_run_id: str, delivery_queue: str) -> None:
    """A worker's `run_task_run` message: run it; then, while the next step of its execution is exactly one
    task run for a queue this worker serves, run that one too — sending it through Redis to a worker that
    reads it back would only add a hop. That is how sequential tasks go fast."""
    serves = (delivery_queue, celery.worker_queue) if celery.worker_queue else (delivery_queue,)

    def keep(run: ReadyRun) -> bool:
        return queue_of(run) in serves

    current = task_run_id
    for _ in range(MAX_IN_TURN):
        ran = taskruns.run_task_run(current, keep=keep)
        if ran is None or ran.kept is None:
            return
        kept, current = ran.kept, ran.kept.task_run_id
    _run_signature(current, queue_of(kept)).apply_async()  # its turn is over: the next one goes by Redis


def _run_signature(task_run_id: str, queue_name: str, task: str = "tern.run_task_run"):
    options = {} if task == "tern.run_task_run_in_chord" else NO_RESULT  # a chord counts its members' results
    return app.signature(task, args=(task_run_id,), queue=queue_name, immutable=True, **options)


def run_chord_member(task_run_id: str) -> None:
    """A chord header's run: recorded without an advance (the chord's body advances once for all); it never
    raises, so the body always runs."""
    try:
        taskruns.run_task_run(task_run_id, advance=False)
    except Exception:  # the run is recorded as failed by the reaper; the chord must still close
        logger.exception("task run %s crashed", task_run_id)


def bare_hops(hops: int) -> None:
    """A chain of `hops` no-op tasks, waited for: `make bench` measures the bare Celery hop with it."""
    from celery import chain

    noop = app.signature("tern.noop")
    chain(noop.clone(args=(0,)), *[noop.clone() for _ in range(hops - 1)]).apply_async().get(timeout=60)


# ---- in this process -----------------------------------------------------------------------------


class InlineDispatcher:
    """Work items go on a local queue; `run_until_done` carries them out until the execution ends."""

    def __init__(self, threads: int = 8):
        self.items: queue.Queue[tuple[str, str]] = queue.Queue()
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tern-task")
        self.timers: list[tuple[datetime, int, str]] = []
        self.counter = itertools.count()
        self.running = 0
        self.lock = threading.Lock()

    # -- the Dispatcher interface (called from any thread) --
    def advance(self, execution_id: str, at: datetime | None = None) -> None:
        if at is not None and at > timezone.now():
            with self.lock:
                heapq.heappush(self.timers, (at, next(self.counter), execution_id))
            self.items.put(("wake", execution_id))  # let the loop recompute its wait
        else:
            self.items.put(("advance", execution_id))

    def send(self, ready: TaskRunsReady) -> None:
        for run in ready.runs:
            if run.task_run_id != ready.kept:
                with self.lock:
                    self.running += 1
                self.pool.submit(self._run, ready.execution_id, run.task_run_id)

    def ended(self, event: ExecutionEnded) -> None:
        self.items.put(("ended", event.execution_id))

    def logs_written(self, event: LogLinesWritten) -> None:
        pass  # no live viewers in this process: `tern flow test` subscribes to the lines itself

    def changed(self, event: ExecutionStateChanged | TaskRunStateChanged) -> None:
        pass  # nobody follows a `tern flow test` execution over Redis

    # -- the loop --
    def _run(self, execution_id: str, task_run_id: str) -> None:
        try:
            taskruns.run_task_run(task_run_id)
        except Exception as exc:  # surfaced by the loop: a crash must not hang `tern flow test`
            self.items.put(("crash", f"{type(exc).__name__}: {exc}"))
        finally:
            connections.close_all()  # this thread's connection; tests and PostgreSQL need it closed
            with self.lock:
                self.running -= 1
            self.items.put(("done", execution_id))

    def run_until_done(self, execution_id: str, timeout: float | None = None) -> str:
        """Carry out work until the execution ends (or pauses with nothing due); returns its state."""
        from flows_app.models import Execution

        deadline = None if timeout is None else timezone.now().timestamp() + timeout
        idle_rounds = 0
        while True:
            kind = self._handle_next()
            state = Execution.objects.filter(id=execution_id).values_list("state", flat=True).first()
            with self.lock:
                idle = self.running == 0 and self.items.empty()
                waiting = bool(self.timers)
            if idle and state in ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "PAUSED") and not waiting:
                return state
            if kind == "idle" and idle and not waiting:
                # Nothing in flight and nothing due, yet not ended: re-advance once, as the scheduler's
                # tick would; a second idle round with no progress means the execution is stuck.
                idle_rounds += 1
                if idle_rounds > 2:
                    raise RuntimeError(f"execution {execution_id} is stuck in state {state}")
                executions.advance_execution(execution_id)
            else:
                idle_rounds = 0
            if deadline is not None and timezone.now().timestamp() > deadline:
                raise TimeoutError(f"execution {execution_id} still {state} after {timeout} s")

    def run_forever(self, stop: threading.Event) -> None:
        """Serve every execution until `stop` is set (`tern server local` runs this on a thread)."""
        while not stop.is_set():
            try:
                self._handle_next()
            except Exception as exc:  # keep serving the other executions; the failure is logged
                logger.exception("inline dispatcher: %s", exc)
            finally:
                connections.close_all()

    def _handle_next(self) -> str:
        """Take one work item (waiting at most until the next timer) and carry it out; returns its kind."""
        try:
            kind, payload = self.items.get(timeout=self._next_wait())
        except queue.Empty:
            kind, payload = "idle", ""
        if kind == "crash":
            raise RuntimeError(payload)
        if kind == "advance":
            executions.advance_execution(payload)
        for due in self._due_timers():
            executions.advance_execution(due)
        return kind

    def _next_wait(self) -> float | None:
        with self.lock:
            if not self.timers:
                return 0.2 if self.running == 0 else None
            return max((self.timers[0][0] - timezone.now()).total_seconds(), 0)

    def _due_timers(self) -> list[str]:
        due, now = [], timezone.now()
        with self.lock:
            while self.timers and self.timers[0][0] <= now:
                due.append(heapq.heappop(self.timers)[2])
        return list(dict.fromkeys(due))

    def close(self) -> None:
        self.pool.shutdown(wait=True)


# ---- which dispatcher ----------------------------------------------------------------------------

_current: Dispatcher | None = None


def get() -> Dispatcher:
    """The dispatcher in use: set by `using()`/`set_default()`, else the one settings name."""
    global _current
    if _current is None:
        _current = from_settings()
    return _current


def from_settings() -> Dispatcher:
    name = settings.TERN["DISPATCHER"]
    if name == "celery":
        return CeleryDispatcher()
    if name == "inline":
        return InlineDispatcher(threads=settings.TERN["INLINE_THREADS"])
    return module_loading.import_string(name)()


def set_default(dispatcher: Dispatcher) -> None:
    global _current
    _current = dispatcher


@contextmanager
def using(dispatcher: Dispatcher) -> Iterator[Dispatcher]:
    global _current
    previous, _current = _current, dispatcher
    try:
        yield dispatcher
    finally:
        _current = previous
