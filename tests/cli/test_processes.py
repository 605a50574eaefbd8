"""`tern web`, `tern worker` and `tern scheduler` as real processes: each becomes ready and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MACHINE_REDIS = "redis://127.0.0.1:6379/15"  # a database of its own: the integration tests use 13
START_TIMEOUT = 60  # two shared cores: a cold Django + Celery start can take a while


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, timeout: float = START_TIMEOUT, what: str = "condition", process=None):
    """Poll `condition` until it is truthy; fail early if `process` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process exited ({process.returncode}) before: {what}")
        time.sleep(0.1)
    raise TimeoutError(f"{what}: not within {timeout} s")


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None  # not listening yet


def tern_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a `tern` process on its own data directory; no settings leak from this one."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE") and not k.startswith("PYTEST")
    }
    env.update(TERN_DATA_DIR=str(tmp_path), **extra)
    return env


def start_tern(args: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen, signum: int = signal.SIGTERM, timeout: float = 20) -> int:
    """Send `signum` and return the exit code; a process still there after `timeout` is killed, and fails."""
    if process.poll() is None:
        process.send_signal(signum)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise AssertionError(f"{process.args} did not stop within {timeout} s") from None


@pytest.fixture(scope="session")
def broker_url(tmp_path_factory):
    """The machine's Redis (database 15, emptied), or an embedded one when there is none."""
    from orchestrator.embedded_redis import EmbeddedRedis, client, reachable

    if reachable(MACHINE_REDIS):
        client(MACHINE_REDIS).flushdb()
        yield MACHINE_REDIS
        client(MACHINE_REDIS).flushdb()
        return
    embedded = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield embedded.start()
    embedded.stop()


@pytest.fixture(scope="module")
def database_url(tmp_path_factory) -> str:
    """A migrated SQLite database, shared by the tests of this module."""
    directory = tmp_path_factory.mktemp("db")
    url = f"sqlite:///{directory / 'tern.sqlite3'}"
    subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "manage", "migrate", "--verbosity=0"],
        cwd=ROOT,
        env=tern_env(directory, DATABASE_URL=url),
        check=True,
        timeout=120,
    )
    return url


def test_worker_answers_a_ping_on_its_queue_and_stops_on_sigterm(broker_url, tmp_path):
    from celery import Celery

    name = f"test-{uuid.uuid4().hex[:8]}@tern"
    # A queue of its own: this worker must not take messages meant for anyone else on this Redis.
    worker = start_tern(
        ["worker", "--queues", f"tern.test-{uuid.uuid4().hex[:8]}", "--concurrency", "2", "--hostname", name],
        tern_env(tmp_path, REDIS_URL=broker_url),
        tmp_path / "worker.log",
    )
    client = Celery(broker=broker_url)
    try:
        wait_until(
            lambda: client.control.ping(destination=[name], timeout=1), what=f"{name} answers a ping", process=worker
        )
    finally:
        code = stop(worker)
        client.close()
    log = (tmp_path / "worker.log").read_text()
    assert code == 0, log
    assert f"worker: ready as {name}" in log and "threads pool of 2" in log


def test_scheduler_creates_the_housekeeping_tick_writes_no_files_and_stops_on_sigterm(
    broker_url, database_url, tmp_path
):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    # A tick an hour away: the scheduler sends nothing to the shared Redis during the test.
    env = tern_env(tmp_path, REDIS_URL=broker_url, DATABASE_URL=database_url, TERN_TICK_SECONDS="3600")
    scheduler = start_tern(["scheduler"], env, tmp_path / "scheduler.log", cwd=cwd)
    database = database_url.removeprefix("sqlite:///")

    def tick_row():
        with sqlite3.connect(database) as db:
            return db.execute(
                "SELECT task, enabled FROM django_celery_beat_periodictask WHERE name = 'tern housekeeping tick'"
            ).fetchone()

    try:
        assert wait_until(tick_row, what="the tick's PeriodicTask row", process=scheduler) == ("tern.tick", 1)
        wait_until(
            lambda: "scheduler: started" in (tmp_path / "scheduler.log").read_text(),
            process=scheduler,
            what="the scheduler started",
        )
    finally:
        code = stop(scheduler)
    assert code == 0, (tmp_path / "scheduler.log").read_text()
    assert list(cwd.iterdir()) == []  # no celerybeat-schedule, no pid file


def test_web_serves_the_admin_login_and_its_static_files_and_stops_on_sigterm(database_url, tmp_path):
    port = free_port()
    web = start_tern(["web", "--port", str(port)], tern_env(tmp_path, DATABASE_URL=database_url), tmp_path / "web.log")
    try:
        assert (
            wait_until(lambda: http_status(f"http://127.0.0.1:{port}/admin/login/"), process=web, what="the login page")
            == 200
        )
        assert http_status(f"http://127.0.0.1:{port}/static/admin/css/base.css") == 200
    finally:
        code = stop(web)
    assert code == 0, (tmp_path / "web.log").read_text()


def test_web_leaves_static_files_to_a_front_server_when_told_to(database_url, tmp_path):
    port = free_port()
    env = tern_env(tmp_path, DATABASE_URL=database_url, TERN_PORT=str(port), TERN_SERVE_STATIC="false")
    web = start_tern(["web"], env, tmp_path / "web.log")
    try:
        assert (
            wait_until(lambda: http_status(f"http://127.0.0.1:{port}/admin/login/"), process=web, what="the login page")
            == 200
        )
        assert http_status(f"http://127.0.0.1:{port}/static/admin/css/base.css") == 404
    finally:
        code = stop(web, signal.SIGINT)  # a Ctrl-C, as in a terminal
    assert code == 0, (tmp_path / "web.log").read_text()


def test_a_bad_tern_port_fails_the_commands_that_listen_and_no_other(monkeypatch, capsys):
    from orchestrator.cli import build_parser

    monkeypatch.setenv("TERN_PORT", "eighty")
    assert build_parser().parse_args(["flow", "validate", "flows/hello.yml"]).files == [Path("flows/hello.yml")]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["web"])
    assert "argument --port: invalid int value: 'eighty'" in capsys.readouterr().err
