"""A real Celery Beat (`tern scheduler`) drives a seconds-level Schedule through a real worker: killed with
kill -9 and started again it loses no tick, and two of them at once double none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from itertools import pairwise
from statistics import median

from flows_app.models import Execution
from flows_app.services.flows import save_flow

from .conftest import ROOT, wait_until

EVERY_SECOND = """id: every_second
namespace: tests.beat
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "tick {{ trigger.date }}"
triggers:
  - id: second
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * * *"
    withSeconds: true
"""


def start_scheduler(workers, name: str) -> subprocess.Popen:
    log = open(workers.tmp_path / f"scheduler-{name}.log", "w")  # noqa: SIM115  (the scheduler's, while it lives)
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "scheduler"],
        cwd=ROOT,
        env=workers.env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
    process.wait(timeout=15)


def tick_dates() -> list[datetime]:
    dates = Execution.objects.filter(flow__flow_id="every_second").values_list("trigger", flat=True)
    return sorted(datetime.fromisoformat(t["date"].replace("Z", "+00:00")) for t in dates)


def ticks_reach(moment: datetime):
    return lambda: (dates := tick_dates()) and dates[-1] >= moment


def test_beat_killed_and_restarted_loses_no_tick_and_two_beats_double_none(celery_runtime):
    celery_runtime.start(concurrency=4)
    save_flow(EVERY_SECOND)
    first = start_scheduler(celery_runtime, "first")
    schedulers = [first]
    try:
        wait_until(lambda: len(tick_dates()) >= 5, timeout=60, what="five ticks from the first scheduler")
        stop(first, signal.SIGKILL)
        killed_at = datetime.now().astimezone()
        # Down for three seconds: their ticks are late, not missed (TERN_SCHEDULE_GRACE_SECONDS is 10).
        wait_until(lambda: datetime.now().astimezone() > killed_at + timedelta(seconds=3), what="three seconds down")
        schedulers = [start_scheduler(celery_runtime, "again"), start_scheduler(celery_runtime, "second")]
        target = datetime.now().astimezone() + timedelta(seconds=8)
        wait_until(ticks_reach(target), timeout=60, what="ticks eight seconds past the restart")
    finally:
        for process in schedulers:
            stop(process)
    dates = tick_dates()
    assert len(dates) == len(set(dates)), "a tick started twice"
    gaps = [(a, b) for a, b in pairwise(dates) if b - a != timedelta(seconds=1)]
    assert gaps == [], f"ticks lost between {gaps}"
    assert dates[-1] >= target
    # Each execution was created soon after its tick while the first scheduler ran.
    delays = []
    for execution in Execution.objects.filter(flow__flow_id="every_second"):
        tick = datetime.fromisoformat(execution.trigger["date"].replace("Z", "+00:00"))
        if tick < killed_at - timedelta(seconds=1):
            delays.append((execution.created_at - tick).total_seconds())
    assert delays and median(delays) < 1.0, sorted(delays)
    assert min(delays) >= 0, "an execution started before its tick"
    wait_until(
        lambda: not Execution.objects.filter(flow__flow_id="every_second").exclude(state="SUCCESS").exists(),
        timeout=60,
        what="every scheduled execution ended",
    )
