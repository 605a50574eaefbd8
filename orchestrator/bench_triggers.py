"""`make bench`'s trigger figures: how long after its tick a scheduled execution starts (a real Celery Beat
and worker, a seconds-level schedule), and how many executions a backfill creates per second."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICKS = 30  # scheduled executions measured
BACKFILL_TICKS = 2000

EVERY_SECOND = """id: bench-tick
namespace: bench
tasks:
  - id: one
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.date }}"
triggers:
  - id: second
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * * *"
    withSeconds: true
"""
HOURLY = """id: bench-backfill
namespace: bench
tasks:
  - id: one
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.date }}"
triggers:
  - id: hourly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 * * * *"
"""


def trigger_figures(env: dict[str, str], directory: Path, wait_for) -> dict[str, float]:
    figures = tick_to_start(env, directory, wait_for)
    figures["backfill_executions_created_per_s"] = round(backfill_rate(), 1)
    return figures


def tick_to_start(env: dict[str, str], directory: Path, wait_for) -> dict[str, float]:
    """Median and p95 of (the execution's start − its tick), over TICKS ticks of a schedule that ticks each second."""
    from flows_app.models import Execution
    from flows_app.services.flows import save_flow, set_disabled

    flow = save_flow(EVERY_SECOND).flow
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "scheduler"],
        cwd=ROOT,
        env=env,
        stdout=(directory / "scheduler.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        begun = datetime.now(UTC) + timedelta(seconds=2)  # past the scheduler's start-up

        def measured():
            return Execution.objects.filter(flow=flow, created_at__gte=begun, started_at__isnull=False).count() >= TICKS

        wait_for(measured, 120, "scheduled executions", 0.2)
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)
        set_disabled(flow, True)
    delays = sorted(
        (
            execution.started_at - datetime.fromisoformat(execution.trigger["date"].replace("Z", "+00:00"))
        ).total_seconds()
        * 1000
        for execution in Execution.objects.filter(flow=flow, created_at__gte=begun, started_at__isnull=False)
    )[:TICKS]
    return {
        "tick_to_start_ms_median": round(statistics.median(delays), 1),
        "tick_to_start_ms_p95": round(delays[int(len(delays) * 0.95) - 1], 1),
    }


def backfill_rate() -> float:
    """Executions a backfill of BACKFILL_TICKS hourly ticks creates per second, with no bound on those in flight
    (the worker runs them meanwhile, as it would)."""
    from django.conf import settings

    from flows_app.models import Backfill, TriggerState
    from flows_app.services.flows import save_flow, spec_of
    from flows_app.triggers.backfill_runs import advance
    from flows_app.triggers.backfills import start_backfill

    flow = save_flow(HOURLY).flow
    state = TriggerState.objects.get(flow=flow)
    schedule = spec_of(flow.revisions.get(revision=flow.revision)).triggers[0].spec
    end = datetime(2026, 1, 1, tzinfo=UTC)
    backfill = start_backfill(state, schedule, end - timedelta(hours=BACKFILL_TICKS - 1), end)
    bound = settings.TERN["BACKFILL_MAX_IN_FLIGHT"]
    settings.TERN["BACKFILL_MAX_IN_FLIGHT"] = 10**9
    try:
        started = time.perf_counter()
        while Backfill.objects.get(pk=backfill.pk).state == Backfill.RUNNING:
            advance(backfill.pk)
        seconds = time.perf_counter() - started
    finally:
        settings.TERN["BACKFILL_MAX_IN_FLIGHT"] = bound
    return Backfill.objects.get(pk=backfill.pk).started / seconds
