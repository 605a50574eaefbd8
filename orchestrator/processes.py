"""Tern's long-running processes: `tern web` (uvicorn), `tern worker` (Celery worker), `tern scheduler` (beat),
`tern triggers` (polling and realtime triggers)."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time

SUPERVISOR_ENV = "TERN_SUPERVISOR_PID"  # set by `tern server local` for the processes it starts


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    import django

    django.setup()


def start_process() -> None:
    """What each process does first: stop signals mean a clean exit, then Django."""
    exit_cleanly_on_stop_signals()
    stop_when_orphaned()
    setup_django()


def exit_cleanly_on_stop_signals() -> None:
    """A stop signal exits 0 until uvicorn or Celery installs its graceful handlers, and after uvicorn's
    graceful shutdown too (it raises the signal again): no traceback, no death by SIGTERM."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: sys.exit(0))


def log_level() -> str:
    from django.conf import settings

    return settings.LOGGING["root"]["level"].upper()


def say(message: str) -> None:
    """One line on the real stdout: the Celery worker redirects `sys.stdout` into its logger."""
    print(message, file=sys.__stdout__, flush=True)


def run_web(host: str, port: int) -> int:
    start_process()
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    try:  # Django's system checks run here, not in Celery's processes (see skip_checks_in_celery)
        call_command("check", stdout=io.StringIO())  # warnings still reach stderr
    except SystemCheckError as exc:
        print(exc, file=sys.stderr)
        return 1
    import uvicorn

    from orchestrator.asgi import application

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started:
                say(f"web: serving http://{host}:{port}/admin/")

    # Django's ASGI handler does not speak the lifespan protocol; "off" spares a warning at each start.
    config = uvicorn.Config(application, host=host, port=port, lifespan="off", log_level=log_level().lower())
    Server(config).run()
    return 0


def skip_checks_in_celery() -> None:
    """Celery runs Django's system checks when a worker or beat starts; the URL check imports the whole web
    side (the API, DRF, drf-spectacular: some 20 MB a process). `tern web` and `migrate` run the checks."""
    os.environ.setdefault("CELERY_SKIP_CHECKS", "1")


def run_worker(queues: str, concurrency: int | None, pool: str | None, hostname: str) -> int:
    skip_checks_in_celery()
    start_process()
    from celery.signals import worker_ready
    from django.conf import settings

    from orchestrator.celery import app

    concurrency = concurrency or settings.TERN["WORKER_CONCURRENCY"]
    pool = pool or settings.TERN["WORKER_POOL"]

    @worker_ready.connect(weak=False)
    def announce(sender, **kwargs):
        say(f"worker: ready as {sender.hostname}, queues {queues}, {pool} pool of {concurrency}")

    # Gossip, mingle and heartbeats serve worker-to-worker features Tern does not use; without them a
    # worker starts faster and keeps Redis quieter. --quiet: our one line above instead of the banner.
    # `app.start`, which `app.worker_main` wraps, returns the worker's exit code.
    return (
        app.start(
            [
                "--quiet",
                "worker",
                f"--queues={queues}",
                f"--concurrency={concurrency}",
                f"--pool={pool}",
                f"--hostname={hostname}",
                f"--loglevel={log_level()}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
        )
        or 0
    )


def run_scheduler() -> int:
    skip_checks_in_celery()
    start_process()
    from celery.signals import beat_init
    from django.conf import settings
    from django.db import DatabaseError

    from flows_app.services.housekeeping import ensure_tick_schedule
    from flows_app.triggers.control import sync_missing_states
    from flows_app.triggers.schedules import recover_all_missed
    from orchestrator.celery import app

    try:
        ensure_tick_schedule()
        sync_missing_states()  # flows saved before trigger states existed
        recovered = recover_all_missed()  # ticks missed while no scheduler ran: by each trigger's policy
    except DatabaseError as exc:
        print(f"scheduler: the database is not ready (run `tern manage migrate`): {exc}", file=sys.stderr)
        return 1

    @beat_init.connect(weak=False)
    def announce(sender, **kwargs):
        say(f"scheduler: started, housekeeping tick every {settings.TERN['TICK_SECONDS']} s")
        if recovered:
            say(f"scheduler: {recovered} schedule(s) had missed ticks, recovered by their recoverMissedSchedules")

    # Schedules are database rows (TernScheduler, a DatabaseScheduler), so beat writes no schedule file; an empty
    # --pidfile keeps it from writing a pid file into the working directory.
    return (
        app.start(
            [
                "--quiet",
                "beat",
                f"--scheduler={settings.CELERY_BEAT_SCHEDULER}",
                f"--loglevel={log_level()}",
                "--pidfile=",
            ]
        )
        or 0
    )


def run_triggers() -> int:
    start_process()
    from django.db import DatabaseError

    from flows_app.triggers.runner import TriggerRunner

    runner = TriggerRunner()
    for signum in (signal.SIGINT, signal.SIGTERM):  # a graceful stop: each trigger closes, its leases given back
        signal.signal(signum, lambda *_: runner.stopping.set())
    try:
        runner.step()
    except DatabaseError as exc:
        print(f"triggers: the database is not ready (run `tern manage migrate`): {exc}", file=sys.stderr)
        return 1
    say(f"triggers: started as {runner.owner}, running {len(runner.threads)} polling or realtime trigger(s)")
    runner.run()
    return 0


def stop_when_orphaned() -> None:
    """Under `tern server local`, stop when the supervisor is gone without having stopped us (kill -9):
    a stray worker would go on taking messages with old code."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if not supervisor:
        return

    def watch() -> None:
        while os.getppid() == int(supervisor):
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)  # the same graceful stop as from the supervisor

    threading.Thread(target=watch, name="tern-orphan-watch", daemon=True).start()
