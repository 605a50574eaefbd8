"""Real parts: a real Redis and real Celery worker processes, on the test database (SQLite or PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def wait_until(condition, timeout: float = 30, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not met within {timeout} s")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """The machine's Redis (a database of its own), or an embedded one when there is none."""
    from orchestrator.embedded_redis import EmbeddedRedis, client, reachable

    url = os.environ.get("TERN_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
    if reachable(url):
        client(url).flushdb()
        yield url
        return
    embedded = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield embedded.start()
    embedded.stop()


def database_url() -> str:
    """The URL of the test database pytest-django created, for the worker processes."""
    from django.db import connection

    config = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{config['NAME']}"
    user = config.get("USER") or ""
    password = f":{config['PASSWORD']}" if config.get("PASSWORD") else ""
    host = config.get("HOST") or "127.0.0.1"
    port = config.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{config['NAME']}"


class Workers:
    """Start and stop real `tern worker` processes for a test."""

    def __init__(self, redis_url: str, tmp_path: Path, extra_env: dict[str, str]):
        self.redis_url, self.tmp_path, self.extra_env = redis_url, tmp_path, extra_env
        self.processes: list[subprocess.Popen] = []

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env.update(
            DATABASE_URL=database_url(),
            REDIS_URL=self.redis_url,
            TERN_DATA_DIR=str(self.tmp_path),
            TERN_DB_CONN_MAX_AGE="60",
            TERN_HEARTBEAT_SECONDS="1",
            TERN_API_WAIT_SECONDS="60",
            **self.extra_env,
        )
        return env

    def start(self, queues: str = "tern", concurrency: int = 8, wait: bool = True) -> subprocess.Popen:
        """`wait`: until it answers a ping (not for a worker that may die on its first task)."""
        log = open(self.tmp_path / f"worker-{len(self.processes)}.log", "w")  # noqa: SIM115  (the worker's, while it lives)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "orchestrator.celery",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                str(concurrency),
                "--queues",
                queues,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "WARNING",
                "--hostname",
                f"w{len(self.processes)}@%h",
            ],
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        if wait:
            self._wait_ready(f"w{len(self.processes) - 1}@")
        return process

    def _wait_ready(self, prefix: str) -> None:
        from orchestrator.celery import app

        def answered():
            replies = app.control.ping(timeout=0.5) or []
            return any(name.startswith(prefix) for reply in replies for name in reply)

        wait_until(answered, timeout=30, interval=0.1, what=f"worker {prefix} ready")

    def kill(self, process: subprocess.Popen) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebServer:
    """A real `tern web` process (uvicorn) on the test database, at `url`."""

    def __init__(self, workers: Workers):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log = open(workers.tmp_path / "web.log", "w")  # noqa: SIM115  (the server's, while it lives)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "web", "--port", str(self.port)],
            cwd=ROOT,
            env=workers.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self._answers, timeout=30, interval=0.1, what="tern web answering")

    def _answers(self) -> bool:
        import httpx

        if self.process.poll() is not None:
            raise RuntimeError(f"tern web exited with {self.process.returncode}")
        try:
            return httpx.get(self.url + "/api/v1/main/flows/search", timeout=1).status_code == 401
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def web_server(celery_runtime):
    """`tern web` and one worker, both real processes, on the test database and Redis."""
    celery_runtime.start()
    server = WebServer(celery_runtime)
    yield server
    server.stop()


def _forget_connections(app) -> None:
    app._pool = None  # what Celery does after a fork: the next use builds new pools, for the broker named now
    app.__dict__.get("amqp") and setattr(app.amqp, "_producer_pool", None)


@pytest.fixture
def celery_runtime(transactional_db, redis_url, tmp_path, settings):
    """This process sends through Celery to the test Redis; `workers.start()` adds real worker processes."""
    from flows_app import dispatch
    from orchestrator.celery import app

    settings.TERN = {**settings.TERN, "HEARTBEAT_TIMEOUT": 3, "WORK_DIR": tmp_path / "work"}
    app.conf.broker_url = redis_url
    app.conf.result_backend = redis_url
    _forget_connections(app)  # an earlier test may have used the app with another broker (its pool would stay)
    extra: dict[str, str] = {}
    workers = Workers(redis_url, tmp_path, extra)
    with dispatch.using(dispatch.CeleryDispatcher()):
        yield workers
    workers.stop_all()
    app.control.purge()
