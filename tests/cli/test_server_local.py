"""`tern server local` (what `make run` starts): it prepares everything, runs web, worker, scheduler and triggers, and
leaves nothing running when it stops."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from .test_processes import MACHINE_REDIS, free_port, http_status, start_tern, stop, tern_env, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds leftover processes in /proc")


def processes_of(data_dir: Path) -> list[int]:
    """Processes started for this data directory: by their environment (TERN_DATA_DIR, passed down to the
    children) or by their command line (the embedded Redis's socket path)."""
    marks = (f"TERN_DATA_DIR={data_dir}\0".encode(), f"{data_dir}/".encode())
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ, cmdline = (proc / "environ").read_bytes(), (proc / "cmdline").read_bytes()
        except OSError:  # gone meanwhile, or not ours
            continue
        if marks[0] in environ or marks[1] in cmdline:
            found.append(int(proc.name))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


def child_pids(log: str) -> dict[str, int]:
    return {name: int(pid) for name, pid in re.findall(r"(web|worker|scheduler|triggers) \(pid (\d+)\)", log)}


class LocalServer:
    """One `tern server local` on a data directory of its own; whatever it leaves is killed at the end."""

    def __init__(self, tmp_path: Path, **env: str):
        self.data_dir, self.port = tmp_path, free_port()
        self.log_path = tmp_path / "server.log"
        self.process = start_tern(
            ["server", "local"], tern_env(tmp_path, TERN_PORT=str(self.port), **env), self.log_path
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self) -> dict[str, int]:
        """Wait until the admin answers and the worker and the scheduler say they are up; returns the
        children's pids."""
        wait_until(lambda: http_status(self.url("/admin/login/")) == 200, process=self.process, what="the admin")
        wait_until(
            lambda: (
                "worker: ready" in self.log and "scheduler: started" in self.log and "triggers: started" in self.log
            ),
            process=self.process,
            what="worker, scheduler and triggers ready",
        )
        return child_pids(self.log)

    def kill_leftovers(self) -> None:
        for pid in processes_of(self.data_dir):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def local_server(tmp_path):
    servers: list[LocalServer] = []

    def start(**env: str) -> LocalServer:
        servers.append(LocalServer(tmp_path, **env))
        return servers[-1]

    yield start
    for server in servers:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
        server.kill_leftovers()


def test_it_embeds_redis_serves_the_admin_with_the_example_flows_and_stops_cleanly_on_ctrl_c(local_server, tmp_path):
    server = local_server()
    pids = server.wait_ready()
    assert set(pids) == {"web", "worker", "scheduler", "triggers"}
    assert http_status(server.url("/static/admin/css/base.css")) == 200
    with sqlite3.connect(tmp_path / "tern.sqlite3") as db:
        assert db.execute("SELECT 1 FROM flows_app_flow WHERE namespace = 'prod' AND flow_id = 'hello'").fetchone()
    assert processes_of(tmp_path)  # the children and the embedded Redis, found the way the check below looks

    # A Ctrl-C in a terminal goes to the whole foreground process group.
    os.killpg(server.process.pid, signal.SIGINT)
    assert server.process.wait(timeout=30) == 0, server.log
    log = server.log
    assert re.search(r"login: admin\s+password: \S+", log)
    assert "loaded prod.hello" in log
    assert f"redis      embedded, redis+socket://{tmp_path / 'redis' / 'redis.sock'}" in log
    assert f"database   SQLite, {tmp_path / 'tern.sqlite3'}" in log
    assert log.count("Tern stopped.") == 1
    assert processes_of(tmp_path) == []


def test_it_uses_the_configured_redis_and_starts_none(local_server, tmp_path):
    from celery import Celery

    from orchestrator.embedded_redis import client, reachable

    if not reachable(MACHINE_REDIS):
        message = f"no Redis at {MACHINE_REDIS} to act as the configured one"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    client(MACHINE_REDIS).flushdb()
    server = local_server(REDIS_URL=MACHINE_REDIS)
    server.wait_ready()
    celery = Celery(broker=MACHINE_REDIS)
    try:
        replies = celery.control.ping(timeout=1)
    finally:
        celery.close()
    assert any(name.startswith("tern@") for reply in replies for name in reply)  # the worker is on that Redis
    assert f"redis      external, {MACHINE_REDIS}" in server.log
    assert not (tmp_path / "redis").exists()

    assert stop(server.process, signal.SIGTERM, timeout=30) == 0, server.log
    assert "Tern stopped." in server.log
    assert processes_of(tmp_path) == []
    client(MACHINE_REDIS).flushdb()  # the scheduler's ticks


def test_when_a_process_dies_it_stops_the_others_and_fails_naming_it(local_server, tmp_path):
    server = local_server()
    pids = server.wait_ready()
    os.kill(pids["worker"], signal.SIGKILL)
    assert server.process.wait(timeout=30) == 1, server.log
    assert "`tern worker` exited unexpectedly (exit code -9); stopping the others." in server.log
    assert "Tern stopped." in server.log
    assert processes_of(tmp_path) == []


def test_its_processes_stop_by_themselves_when_it_is_killed(local_server, tmp_path):
    server = local_server()
    pids = server.wait_ready()
    server.process.kill()  # no chance to stop anything
    server.process.wait()

    wait_until(
        lambda: not any(alive(pid) for pid in pids.values()),
        timeout=20,
        what="web, worker, scheduler and triggers stopped",
    )


def test_a_user_runs_a_flow_with_an_input_from_the_admin_and_a_worker_runs_it(local_server, tmp_path):
    import http.cookiejar
    import urllib.parse
    import urllib.request

    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "greet.yml").write_text(
        "id: greet\nnamespace: demo\ninputs:\n  - id: who\n    type: STRING\n    defaults: world\n"
        "tasks:\n  - id: say\n    type: io.kestra.plugin.core.log.Log\n    message: Hello {{ inputs.who }}!\n"
    )
    server = local_server(TERN_FLOWS_DIR=str(flows))
    server.wait_ready()
    password = re.search(r"login: admin\s+password: (\S+)", server.log)[1]
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def form_token(path: str) -> str:
        page = browser.open(server.url(path), timeout=10).read().decode()
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]

    def post(path: str, fields: dict[str, str]):
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": form_token(path), **fields}).encode()
        return browser.open(urllib.request.Request(server.url(path), data=data), timeout=10)

    post("/admin/login/?next=/admin/", {"username": "admin", "password": password})
    with sqlite3.connect(tmp_path / "tern.sqlite3") as db:
        flow_pk = db.execute("SELECT id FROM flows_app_flow WHERE flow_id = 'greet'").fetchone()[0]
    landed = post(f"/admin/flows_app/flow/{flow_pk}/run/", {"input-who": "Tern"})
    assert "/admin/flows_app/execution/" in landed.url  # the new execution's page

    def ended():
        with sqlite3.connect(tmp_path / "tern.sqlite3") as db:
            row = db.execute("SELECT state FROM flows_app_execution").fetchone()
        return row and row[0] in ("SUCCESS", "FAILED")

    wait_until(ended, timeout=60, process=server.process, what="the execution's end")
    with sqlite3.connect(tmp_path / "tern.sqlite3") as db:
        assert db.execute("SELECT state, inputs FROM flows_app_execution").fetchone() == ("SUCCESS", '{"who": "Tern"}')
        assert db.execute("SELECT message FROM flows_app_logentry WHERE task_id = 'say'").fetchall() == [
            ("Hello Tern!",)
        ]
    os.killpg(server.process.pid, signal.SIGINT)
    assert server.process.wait(timeout=30) == 0
