"""`make bench`: figures, not tests. Starts its own Redis (embedded, or REDIS_URL) and a real worker, then
measures on the same Redis: the bare Celery hop, and three workloads through the whole engine.

Then the API's figures (bench_api.py; TERN_BENCH_API=false skips them) and the triggers' (bench_triggers.py:
tick-to-start delay, backfill creation rate; TERN_BENCH_TRIGGERS=false skips them). Ends with one JSON line. With
DATABASE_URL set it measures on that database (and migrates it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOPS = 40
W1_TASKS = 40
W2_BRANCHES = 10
W3_EXECUTIONS = 200
ENDED = ("SUCCESS", "WARNING", "FAILED", "KILLED")


def w1_source() -> str:
    tasks = ["  - id: t0\n    type: io.kestra.plugin.core.debug.Return\n    format: '0'\n"]
    for i in range(1, W1_TASKS):
        tasks.append(
            f"  - id: t{i}\n    type: io.kestra.plugin.core.debug.Return\n"
            f'    format: "{{{{ outputs.t{i - 1}.value }}}}+"\n'
        )
    return "id: bench-w1\nnamespace: bench\ntasks:\n" + "".join(tasks)


def w2_source() -> str:
    branches = "".join(
        f"      - id: sleep{i}\n        type: io.kestra.plugin.scripts.shell.Commands\n        commands: ['sleep 1']\n"
        for i in range(W2_BRANCHES)
    )
    return (
        "id: bench-w2\nnamespace: bench\ntasks:\n  - id: fan\n    type: io.kestra.plugin.core.flow.Parallel\n"
        f"    tasks:\n{branches}  - id: join\n    type: io.kestra.plugin.core.debug.Return\n    format: done\n"
    )


W3_SOURCE = (
    "id: bench-w3\nnamespace: bench\ntasks:\n  - id: one\n    type: io.kestra.plugin.core.debug.Return\n    format: x\n"
)


def wait_for(condition, timeout: float, what: str, interval: float = 0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(f"bench: {what} not done within {timeout} s")


def celery_hop_ms() -> float:
    from flows_app.dispatch import bare_hops

    bare_hops(1)  # warm the connections
    samples = []
    for _ in range(3):
        started = time.perf_counter()
        bare_hops(HOPS)
        samples.append((time.perf_counter() - started) / HOPS * 1000)
    return statistics.median(samples)


def run_execution(source: str, timeout: float = 120) -> tuple[float, str]:
    from flows_app.models import Execution
    from flows_app.services.executions import start_execution
    from flows_app.services.flows import save_flow

    flow = save_flow(source).flow
    started = time.perf_counter()
    execution = start_execution(flow)
    # Polled every 20 ms, not faster: the poller shares the 2 cores with the worker it measures.
    wait_for(lambda: Execution.objects.filter(id=execution.id, state__in=ENDED).exists(), timeout, flow.flow_id, 0.02)
    seconds = time.perf_counter() - started
    return seconds, Execution.objects.get(id=execution.id).state


def w3_executions_per_s() -> float:
    from flows_app.models import Execution
    from flows_app.services.executions import start_execution
    from flows_app.services.flows import save_flow

    flow = save_flow(W3_SOURCE).flow
    started = time.perf_counter()
    ids = [start_execution(flow).id for _ in range(W3_EXECUTIONS)]
    wait_for(lambda: Execution.objects.filter(id__in=ids, state__in=ENDED).count() == len(ids), 300, "W3", 0.05)
    return W3_EXECUTIONS / (time.perf_counter() - started)


def wait_all_ended(ids: list[str], timeout: float = 600) -> int:
    """Wait until every execution of `ids` has ended (or `timeout`); returns how many did."""
    from flows_app.models import Execution

    def ended() -> int:
        return sum(
            Execution.objects.filter(id__in=ids[i : i + 500], state__in=ENDED).count() for i in range(0, len(ids), 500)
        )

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and ended() < len(ids):
        time.sleep(0.5)
    return ended()


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    from orchestrator.celery import app

    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "worker"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for(lambda: bool(app.control.ping(timeout=0.5)), 60, "worker start", 0.1)
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def tree_pss_mb(root_pid: int) -> float:
    """PSS of a process and all its descendants (what they really cost in memory, shared pages split)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total_kb, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
        except OSError:
            pass
    return total_kb / 1024


def idle_mb(directory: Path) -> float:
    """Start `tern server local` (web, worker, scheduler, embedded Redis), let it settle, weigh it."""
    directory.mkdir(parents=True, exist_ok=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(TERN_DATA_DIR=str(directory), TERN_PORT=str(port))
    server = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "server", "local"],
        cwd=ROOT,
        env=env,
        stdout=(directory / "server.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def up():
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=1).status == 200
            except OSError:
                return False

        wait_for(up, 90, "tern server local", 0.2)
        time.sleep(3)  # idle means after start-up work (imports, first beat tick) has settled
        return tree_pss_mb(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def main() -> int:
    from orchestrator.embedded_redis import EmbeddedRedis

    with tempfile.TemporaryDirectory(prefix="tern-bench-") as tmp:
        directory = Path(tmp)
        embedded = None
        if not os.environ.get("REDIS_URL"):
            embedded = EmbeddedRedis(directory / "redis")
            os.environ["REDIS_URL"] = embedded.start()
        os.environ.setdefault("DATABASE_URL", f"sqlite:///{directory / 'bench.sqlite3'}")
        os.environ.update(
            TERN_DATA_DIR=str(directory), TERN_DB_CONN_MAX_AGE="600", DJANGO_SETTINGS_MODULE="orchestrator.settings"
        )
        import django
        from django.core.management import call_command
        from django.db import connection

        django.setup()
        call_command("migrate", verbosity=0, interactive=False)
        worker = start_worker(dict(os.environ), directory / "worker.log")
        try:
            figures = {"celery_hop_ms": round(celery_hop_ms(), 2)}
            w1 = []
            for attempt in range(6):  # the first run warms connections and caches up: not counted
                seconds, state = run_execution(w1_source())
                assert state == "SUCCESS", f"W1 ended {state}"
                if attempt:
                    w1.append(seconds / W1_TASKS * 1000)
            figures["w1_overhead_ms_per_task"] = round(statistics.median(w1), 2)
            seconds, state = run_execution(w2_source())
            assert state == "SUCCESS", f"W2 ended {state}"
            figures["w2_seconds"] = round(seconds, 2)
            figures["w3_executions_per_s"] = round(w3_executions_per_s(), 1)
            if os.environ.get("TERN_BENCH_API", "true") != "false":
                from orchestrator.bench_api import api_figures

                figures.update(api_figures(dict(os.environ), directory, wait_all_ended))
            if os.environ.get("TERN_BENCH_TRIGGERS", "true") != "false":
                from orchestrator.bench_triggers import trigger_figures

                figures.update(trigger_figures(dict(os.environ), directory, wait_for))
        finally:
            stop(worker)
            if embedded:
                embedded.stop()
        figures["idle_mb"] = round(idle_mb(directory / "idle"), 1)
        figures["database"] = connection.vendor
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
