"""Thin Celery tasks: ids in, a service call, nothing else. The database says what is true."""
from __future__ import annotations

from orchestrator.celery import app


@app.task(name="tern.advance_execution")
def advance_execution(execution_id: str) -> None:
    from flows_app.services.executions import advance_execution as advance

    advance(execution_id)


@app.task(name="tern.run_task_run")
def run_task_run(task_run_id: str, advance: bool = True) -> None:
    """Inside a chord `advance` is False: the chord's body advances the execution once for all."""
    from flows_app.services.taskruns import run_task_run as run

    run(task_run_id, advance=advance)


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
