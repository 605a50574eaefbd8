"""Thin Celery tasks: ids in, a service or dispatch call, nothing else. The database says what is true.

They only receive; every message is sent by flows_app.dispatch.
"""

from __future__ import annotations

import logging

from orchestrator.celery import DEFAULT_QUEUE, app

logger = logging.getLogger("tern.housekeeping")


@app.task(name="tern.advance_execution")
def advance_execution(execution_id: str) -> None:
    from flows_app.services.executions import advance_execution as advance

    advance(execution_id)


@app.task(name="tern.run_task_run", bind=True)
def run_task_run(self, task_run_id: str) -> None:
    """Run a task run, and the next ones of its execution while they are for this worker (dispatch.run_in_turn)."""
    from flows_app import dispatch

    delivery_queue = (self.request.delivery_info or {}).get("routing_key") or DEFAULT_QUEUE
    dispatch.run_in_turn(task_run_id, delivery_queue)


@app.task(name="tern.run_task_run_in_chord", ignore_result=False)
def run_task_run_in_chord(task_run_id: str) -> None:
    """A chord header must keep a result for Celery to count it."""
    from flows_app import dispatch

    dispatch.run_chord_member(task_run_id)


@app.task(name="tern.tick")
def tick() -> None:
    """The scheduler's housekeeping: re-advance executions with work due, reap task runs of dead workers,
    start schedule ticks whose message was lost, look again at ended executions for Flow triggers, and take
    running backfills a step further."""
    from flows_app.services.housekeeping import tick as do_tick
    from flows_app.triggers.backfill_runs import advance_all
    from flows_app.triggers.flow_triggers import sweep as sweep_flow_triggers
    from flows_app.triggers.schedules import fire_overdue

    for step in (do_tick, fire_overdue, sweep_flow_triggers, advance_all):
        try:
            step()
        except Exception:  # one step's failure must not starve the others; each is tried again next tick
            logger.exception("housekeeping: %s failed", step.__name__)


@app.task(name="tern.schedule")
def schedule(trigger_state_id: int) -> None:
    """Celery Beat says a Schedule trigger's tick is due: start what is due of it."""
    from flows_app.triggers.schedules import fire

    fire(trigger_state_id)


@app.task(name="tern.noop", ignore_result=False)
def noop(value=None):
    """Passes its value on: `make bench` measures the bare Celery hop with a chain of these."""
    return value
