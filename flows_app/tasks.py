"""Thin Celery tasks: ids in, a service call, nothing else. The database says what is true."""
from __future__ import annotations

from orchestrator.celery import app


@app.task(name="tern.advance_execution")
def advance_execution(execution_id: str) -> None:
    from flows_app.services.executions import advance_execution as advance

    advance(execution_id)


# How many task runs in a row a worker thread runs without going back to the queue (then it hands the
# next one back, so one long sequence cannot hold a thread for ever).
MAX_IN_TURN = 100


@app.task(name="tern.run_task_run", bind=True)
def run_task_run(self, task_run_id: str) -> None:
    """Run a task run; then, while the next step of its execution is exactly one task run on this
    worker's queue, run that one too (see CeleryDispatcher.keeping_one)."""
    from flows_app import dispatch
    from flows_app.services.taskruns import run_task_run as run
    from orchestrator import celery

    dispatcher = dispatch.get()
    if not isinstance(dispatcher, dispatch.CeleryDispatcher):
        run(task_run_id)
        return
    queue = (self.request.delivery_info or {}).get("routing_key") or "tern"
    queues = (queue, celery.worker_queue) if celery.worker_queue else (queue,)
    next_id: str | None = task_run_id
    for _ in range(MAX_IN_TURN):
        with dispatcher.keeping_one(*queues) as slot:
            run(next_id)
        next_id = slot.kept
        if next_id is None:
            return
    run_task_run.apply_async((next_id,), queue=slot.kept_queue)


@app.task(name="tern.run_task_run_in_chord", ignore_result=False)
def run_task_run_in_chord(task_run_id: str) -> None:
    """A chord header must keep a result for Celery to count it; never raises, so the body always runs."""
    from flows_app.services.taskruns import run_task_run as run

    try:
        run(task_run_id, advance=False)
    except Exception:  # the run is recorded as failed by the reaper; the chord must still close
        import logging

        logging.getLogger("tern.tasks").exception("task run %s crashed", task_run_id)


@app.task(name="tern.tick")
def tick() -> None:
    """The scheduler's housekeeping: re-advance executions with work due, reap task runs of dead workers."""
    from flows_app.services.housekeeping import tick as do_tick

    do_tick()


@app.task(name="tern.noop", ignore_result=False)
def noop(value=None):
    """Passes its value on: `make bench` measures the bare Celery hop with a chain of these."""
    return value
