"""`tern server local` (what `make run` starts): prepare a laptop install, then supervise web, worker, scheduler
and triggers."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from kombu.utils.url import maybe_sanitize_url as masked

from orchestrator.embedded_redis import EmbeddedRedis, reachable
from orchestrator.processes import SUPERVISOR_ENV

STOP_TIMEOUT = 10  # seconds a process gets to stop gracefully before it is killed
POLL_SECONDS = 0.2


def prepare(flows_dir: Path, out=sys.stdout) -> None:
    """Migrate, load the example flows (invalid ones are reported and skipped), make sure an admin exists."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from flows_app.models import FlowRevision
    from flows_app.services.flows import save_flow
    from flows_app.spec.errors import FlowValidationError
    from flows_app.spec.flow import read_source

    call_command("migrate", verbosity=0, interactive=False)
    if flows_dir.is_dir():
        for path in sorted(flows_dir.glob("*.y*ml")):
            try:
                source = read_source(path)
                if FlowRevision.objects.filter(checksum=FlowRevision.checksum_of(source)).exists():
                    continue  # loaded by an earlier start: no new revision at every restart
                saved = save_flow(source)
            except FlowValidationError as exc:
                print(f"flows/{path.name}: skipped, invalid:\n{exc}", file=sys.stderr)
                continue
            if saved.created:
                print(f"loaded {saved.flow} (revision {saved.revision.revision}) from {path.name}", file=out)
    users = get_user_model().objects
    if not users.filter(is_superuser=True).exists():
        password = secrets.token_urlsafe(12)
        users.create_superuser("admin", "admin@localhost", password)
        print(
            f"\n  created the admin user — login: admin  password: {password}\n  (shown once; change it in the admin)\n",
            file=out,
        )


class StopSignals:
    """Ctrl-C and SIGTERM only raise a flag: the main loop then stops everything once, in order."""

    def __init__(self):
        self.requested = False
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum, frame) -> None:
        self.requested = True


class CannotStart(Exception):
    pass


def serve(host: str, port: int) -> int:
    """Prepare, start Redis if none is configured, run the four processes until a stop signal or until
    one of them dies; returns the exit status (0 for a requested stop)."""
    from django.conf import settings

    stop = StopSignals()
    # In a child process: migrating loads all of Django, which the supervisor need not keep in memory.
    # The child shares our process group, so a Ctrl-C meanwhile stops it too.
    prepared = subprocess.run([sys.executable, "-m", "orchestrator.cli", "server", "prepare"], stdin=subprocess.DEVNULL)
    if prepared.returncode != 0 and not stop.requested:
        print("`tern server prepare` failed; nothing was started.", file=sys.stderr)
        return 1
    try:
        redis_url, embedded = start_redis(settings.REDIS_URL, settings.DATA_DIR)
    except CannotStart as exc:
        print(exc, file=sys.stderr)
        return 1
    children: dict[str, subprocess.Popen] = {}
    dead = None
    try:
        if not stop.requested:  # else a Ctrl-C came while preparing: start nothing
            sys.stdout.flush()  # what we printed so far comes before what the children print
            env = child_env(redis_url, settings.DATA_DIR)
            for name, args in child_commands(host, port).items():
                children[name] = start_child(args, env)
            announce(host, port, children, f"embedded, {redis_url}" if embedded else f"external, {masked(redis_url)}")
            dead = supervise(children, stop)
            if dead:
                print(
                    f"`tern {dead}` exited unexpectedly (exit code {children[dead].returncode}); stopping the others.",
                    file=sys.stderr,
                    flush=True,
                )
            else:
                print("Stopping Tern…", flush=True)
    finally:
        stop_children(children)
        if embedded:
            embedded.stop()
    print("Tern stopped.", flush=True)
    return 1 if dead else 0


def start_redis(configured: str, data_dir: Path) -> tuple[str, EmbeddedRedis | None]:
    """The configured Redis if it answers; with none configured, an embedded one in the data directory."""
    if configured:
        if not reachable(configured, timeout=2):
            raise CannotStart(
                f"REDIS_URL={masked(configured)} does not answer; start that Redis, or unset "
                "REDIS_URL for an embedded one."
            )
        return configured, None
    embedded = EmbeddedRedis(data_dir / "redis")
    try:
        return embedded.start(), embedded
    except RuntimeError as exc:
        raise CannotStart(f"cannot start the embedded Redis: {exc}") from None


def child_env(redis_url: str, data_dir: Path) -> dict[str, str]:
    # DATABASE_URL passes down as it is: unset, each process finds the same SQLite file in TERN_DATA_DIR.
    return {**os.environ, "REDIS_URL": redis_url, "TERN_DATA_DIR": str(data_dir), SUPERVISOR_ENV: str(os.getpid())}


def child_commands(host: str, port: int) -> dict[str, list[str]]:
    return {
        "web": ["web", "--host", host, "--port", str(port)],
        "worker": ["worker"],
        "scheduler": ["scheduler"],
        "triggers": ["triggers"],
    }


def start_child(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    # A session of its own: a Ctrl-C in the terminal reaches the supervisor only, which stops each child once.
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", *args], env=env, stdin=subprocess.DEVNULL, start_new_session=True
    )


def announce(host: str, port: int, children: dict[str, subprocess.Popen], redis: str) -> None:
    from django.conf import settings

    started = ", ".join(f"{name} (pid {process.pid})" for name, process in children.items())
    print(
        f"\nTern is running: http://{host}:{port}/admin/  (Ctrl-C stops it)\n"
        f"  API docs   http://{host}:{port}/api/v1/docs\n"
        f"  processes  {started}\n"
        f"  data       {settings.DATA_DIR}\n"
        f"  database   {describe_database()}\n"
        f"  redis      {redis}\n",
        flush=True,
    )


def describe_database() -> str:
    from django.conf import settings

    config = settings.DATABASES["default"]
    vendor = config["ENGINE"].rsplit(".", 1)[-1]
    if vendor == "sqlite3":
        return f"SQLite, {config['NAME']}"
    return f"{vendor}, {config['NAME']} on {config.get('HOST') or 'localhost'}"


def supervise(children: dict[str, subprocess.Popen], stop: StopSignals) -> str | None:
    """Wait for a stop signal (returns None) or for a child to exit (returns its name)."""
    while not stop.requested:
        for name, process in children.items():
            if process.poll() is not None:
                return name
        time.sleep(POLL_SECONDS)
    return None


def stop_children(children: dict[str, subprocess.Popen]) -> None:
    """SIGTERM to all at once, so they stop in parallel; after STOP_TIMEOUT, SIGKILL to what remains."""
    for process in children.values():
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, process in children.items():
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop within {STOP_TIMEOUT} s: killed", file=sys.stderr, flush=True)
            os.killpg(process.pid, signal.SIGKILL)  # its whole group: a prefork worker's pool processes too
            process.wait()
