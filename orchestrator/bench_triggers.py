"""`make bench`'s trigger figures: how long after its tick a scheduled execution starts (a real Celery Beat
and worker, a seconds-level schedule), how many executions a backfill creates per second, and for a Redis
list RealtimeTrigger in a real `tern triggers` process: how long after its push a message's execution starts,
and how many executions it starts per second under a burst of BURST messages."""

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
MESSAGES = 30  # realtime messages measured one by one
BURST = 10_000

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


REALTIME = """id: bench-realtime
namespace: bench
tasks:
  - id: one
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ trigger.value }}}}"
triggers:
  - id: list
    type: io.kestra.plugin.redis.list.RealtimeTrigger
    url: {url}
    key: {key}
"""


def start_tern(command: str, env: dict[str, str], directory: Path) -> subprocess.Popen:
    """A `tern <command>` process, its output in <command>.log."""
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", command],
        cwd=ROOT,
        env=env,
        stdout=(directory / f"{command}.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def trigger_figures(env: dict[str, str], directory: Path, wait_for) -> dict[str, float]:
    figures = tick_to_start(env, directory, wait_for)
    figures["backfill_executions_created_per_s"] = round(backfill_rate(), 1)
    figures.update(realtime_figures(env, directory, wait_for))
    return figures


def realtime_figures(env: dict[str, str], directory: Path, wait_for) -> dict[str, float]:
    """Push to start, message by message (median and p95 of the execution's start − the push), then the
    executions per second `tern triggers` creates while BURST messages wait in the list."""
    from flows_app.models import Execution
    from flows_app.services.flows import save_flow, set_disabled
    from plugins_app.buses.redis import connect

    url, key = env["REDIS_URL"], f"bench-realtime-{time.time_ns()}"
    flow = save_flow(REALTIME.format(url=url, key=key)).flow
    client = connect(url)  # the embedded Redis's URL is Celery's redis+socket://
    process = start_tern("triggers", env, directory)
    try:
        client.rpush(key, "warm-up")
        wait_for(lambda: Execution.objects.filter(flow=flow, started_at__isnull=False).exists(), 60, "warm-up", 0.05)
        delays = []
        for n in range(MESSAGES):
            pushed = datetime.now(UTC)
            client.rpush(key, f"m{n}")
            value = f"m{n}"
            wait_for(
                lambda v=value: Execution.objects.filter(
                    flow=flow, trigger__value=v, started_at__isnull=False
                ).exists(),
                30,
                f"message {n}'s execution",
                0.005,
            )
            execution = Execution.objects.get(flow=flow, trigger__value=value)
            delays.append((execution.started_at - pushed).total_seconds() * 1000)
        before = Execution.objects.filter(flow=flow).count()
        pipe = client.pipeline(transaction=False)
        for n in range(BURST):
            pipe.rpush(key, f"b{n}")
        began = time.perf_counter()
        pipe.execute()
        wait_for(lambda: Execution.objects.filter(flow=flow).count() >= before + BURST, 600, "the burst", 0.1)
        burst_seconds = time.perf_counter() - began
    finally:
        process.terminate()
        process.wait(timeout=30)
        set_disabled(flow, True)
        client.delete(key)
    delays.sort()
    return {
        "realtime_message_to_start_ms_median": round(statistics.median(delays), 1),
        "realtime_message_to_start_ms_p95": round(delays[int(len(delays) * 0.95) - 1], 1),
        "realtime_burst_executions_created_per_s": round(BURST / burst_seconds, 1),
    }


def tick_to_start(env: dict[str, str], directory: Path, wait_for) -> dict[str, float]:
    """Median and p95 of (the execution's start − its tick), over TICKS ticks of a schedule that ticks each second."""
    from flows_app.models import Execution
    from flows_app.services.flows import save_flow, set_disabled

    flow = save_flow(EVERY_SECOND).flow
    scheduler = start_tern("scheduler", env, directory)
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
