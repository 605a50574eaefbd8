"""The only sender of work: one interface, two implementations.

`CeleryDispatcher` (the server) sends the planner's decisions as Celery messages over Redis.
`InlineDispatcher` (`tern flow test`, `TERN_DISPATCHER=inline`) carries them out in this process:
advances on one loop thread, task runs on a thread pool.
"""
from __future__ import annotations

import heapq
import itertools
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterator, Protocol

from django.conf import settings
from django.db import connections
from django.utils import module_loading, timezone


@dataclass(frozen=True)
class Batch:
    """Task runs to start now. `join`: they are all the children of one fan-in parent (a Parallel), so
    nothing can happen until every one has ended — one advance after the last is enough (a chord)."""

    task_run_ids: tuple[str, ...]
    queue: str = "tern"
    join: bool = False


@dataclass
class KeepSlot:
    """Room for one task run that the current worker thread runs next itself, instead of sending it.

    `queues`: those this worker serves that the run may come from (the delivery's queue, and the
    worker's own queue); `kept_queue` is where to send the kept run if the thread hands it back."""

    queues: tuple[str, ...]
    kept: str | None = None
    kept_queue: str = ""

    def take(self, batches: list[Batch]) -> bool:
        if self.kept is not None or len(batches) != 1:
            return False
        batch = batches[0]
        if len(batch.task_run_ids) != 1 or batch.queue not in self.queues:
            return False
        self.kept, self.kept_queue = batch.task_run_ids[0], batch.queue
        return True


class Dispatcher(Protocol):
    def advance(self, execution_id: str, at: datetime | None = None) -> None:
        """Have the execution advanced, now or at `at` (a retry's time)."""

    def run_task_runs(self, execution_id: str, batches: list[Batch]) -> None:
        """Have these queued task runs run (called after the commit that queued them)."""

    def task_run_ended(self, execution_id: str, record: Callable[[], None]) -> None:
        """A worker ended a task run: `record` stores that; then the execution must be advanced."""

    def execution_ended(self, execution_id: str) -> None:
        """The execution reached a final state (flow triggers listen here)."""


class CeleryDispatcher:
    """Planner decisions as Celery messages: one per task run, a `group` for several, a `chord` to join.

    A worker that just ended a task run may keep the next one for itself (`keeping_one`): when the next
    step of the execution is exactly one task run on the worker's own queue, sending it through Redis to
    a worker that then reads it back would only add a hop. That is how sequential tasks go fast.
    """

    def __init__(self):
        self.local = threading.local()  # one keep slot per worker thread

    @contextmanager
    def keeping_one(self, *queues: str) -> Iterator["KeepSlot"]:
        slot = KeepSlot(queues)
        self.local.slot = slot
        try:
            yield slot
        finally:
            self.local.slot = None

    def advance(self, execution_id: str, at: datetime | None = None) -> None:
        from flows_app.tasks import advance_execution

        if at is not None and at > timezone.now():
            advance_execution.apply_async((execution_id,), eta=at)
        else:
            advance_execution.apply_async((execution_id,))

    def run_task_runs(self, execution_id: str, batches: list[Batch]) -> None:
        from celery import chord, group

        from flows_app.tasks import advance_execution, run_task_run, run_task_run_in_chord

        slot = getattr(self.local, "slot", None)
        if slot is not None and slot.take(batches):
            return
        for batch in batches:
            ids = batch.task_run_ids
            if batch.join and len(ids) > 1:
                header = [run_task_run_in_chord.si(i).set(queue=batch.queue) for i in ids]
                chord(header)(advance_execution.si(execution_id).set(queue="tern"))
            elif len(ids) > 1:
                group(run_task_run.si(i).set(queue=batch.queue) for i in ids).apply_async()
            else:
                run_task_run.apply_async((ids[0],), queue=batch.queue)

    def task_run_ended(self, execution_id: str, record: Callable[[], None]) -> None:
        """Record and advance right here, in one transaction under the execution's row lock: no Celery
        hop and one commit per task; racing workers still decide one at a time."""
        from flows_app.services.executions import advance_execution

        advance_execution(execution_id, first=record)

    def execution_ended(self, execution_id: str) -> None:
        pass  # flow triggers listening to ends are evaluated here by the triggers issue


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

    def run_task_runs(self, execution_id: str, batches: list[Batch]) -> None:
        for batch in batches:
            for task_run_id in batch.task_run_ids:
                with self.lock:
                    self.running += 1
                self.pool.submit(self._run, execution_id, task_run_id)

    def task_run_ended(self, execution_id: str, record: Callable[[], None]) -> None:
        from django.db import transaction

        with transaction.atomic():
            record()
        self.advance(execution_id)  # the loop's thread does every advance: one writer at a time

    def execution_ended(self, execution_id: str) -> None:
        self.items.put(("ended", execution_id))

    # -- the loop --
    def _run(self, execution_id: str, task_run_id: str) -> None:
        try:
            from flows_app.services.taskruns import run_task_run

            run_task_run(task_run_id)
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
        from flows_app.services.executions import advance_execution

        deadline = None if timeout is None else timezone.now().timestamp() + timeout
        idle_rounds = 0
        while True:
            kind = self._handle_next()
            state = Execution.objects.filter(id=execution_id).values_list("state", flat=True).first()
            with self.lock:
                idle = self.running == 0 and self.items.empty()
                waiting = bool(self.timers)
            if idle and state in ("SUCCESS", "WARNING", "FAILED", "KILLED", "PAUSED") and not waiting:
                return state
            if kind == "idle" and idle and not waiting:
                # Nothing in flight and nothing due, yet not ended: re-advance once, as the scheduler's
                # tick would; a second idle round with no progress means the execution is stuck.
                idle_rounds += 1
                if idle_rounds > 2:
                    raise RuntimeError(f"execution {execution_id} is stuck in state {state}")
                advance_execution(execution_id)
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
                import logging

                logging.getLogger("tern.dispatch").exception("inline dispatcher: %s", exc)
            finally:
                connections.close_all()

    def _handle_next(self) -> str:
        """Take one work item (waiting at most until the next timer) and carry it out; returns its kind."""
        from flows_app.services.executions import advance_execution

        try:
            kind, payload = self.items.get(timeout=self._next_wait())
        except queue.Empty:
            kind, payload = "idle", ""
        if kind == "crash":
            raise RuntimeError(payload)
        if kind == "advance":
            advance_execution(payload)
        for due in self._due_timers():
            advance_execution(due)
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
