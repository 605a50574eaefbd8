"""`make bench`'s API figures, on a real `tern web` and the bench's worker: the latency of a flow list with
1 000 flows stored and of an execution read with 10 000 stored (median and p95 of 200 calls each), and
webhook-started executions accepted per second over 20 s, each then run to its end."""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

FLOWS, EXECUTIONS, CALLS, WEBHOOK_SECONDS, CLIENTS = 1000, 10_000, 200, 20, 8
HOOKED = (
    "id: bench-hook\nnamespace: bench.api\ntasks:\n  - id: one\n    type: io.kestra.plugin.core.debug.Return\n"
    "    format: '{{ trigger.body.n }}'\ntriggers:\n  - id: hook\n    type: io.kestra.plugin.core.trigger.Webhook\n"
    "    key: bench-webhook-key-0123456789\n"
)


def seed() -> tuple[str, list[str]]:
    """1 000 flows, 10 000 ended executions of one of them (two task runs each); returns a token and the ids."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from flows_app.models import Execution, TaskRun, new_id
    from flows_app.services.flows import save_flow
    from flows_app.services.tokens import create_token

    user = User.objects.create_superuser("bench", "bench@example.com", "bench-password-0123")
    token, _ = create_token(user, "bench")
    saved = None
    for i in range(FLOWS):
        saved = save_flow(
            f"id: flow{i:04d}\nnamespace: bench.team{i % 10}\nlabels:\n  n: '{i}'\ntasks:\n"
            "  - id: a\n    type: io.kestra.plugin.core.debug.Return\n    format: x\n"
            "  - id: b\n    type: io.kestra.plugin.core.log.Log\n    message: y\n"
        )
    now = timezone.now().isoformat()
    ids = [new_id() for _ in range(EXECUTIONS)]
    histories = [{"state": s, "date": now} for s in ("CREATED", "RUNNING", "SUCCESS")]
    Execution.objects.bulk_create(
        [
            Execution(id=i, flow=saved.flow, flow_revision=saved.revision, state="SUCCESS", histories=histories)
            for i in ids
        ],
        batch_size=1000,
    )
    attempt = [{"state": "SUCCESS", "startDate": now, "endDate": now}]
    TaskRun.objects.bulk_create(
        [
            TaskRun(execution_id=i, task_id=t, state="SUCCESS", order=n, attempts=attempt, outputs={"value": "x"})
            for i in ids
            for n, t in enumerate(("a", "b"))
        ],
        batch_size=2000,
    )
    return token, ids


def start_web(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "web", "--port", str(port)],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/main/flows/search", timeout=1).status_code == 401:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("tern web did not answer")


def latency(client: httpx.Client, paths: list[str]) -> tuple[float, float]:
    """(median, p95) in ms of GETs of `paths` (after 20 warm-up calls)."""
    for path in paths[:20]:
        client.get(path)
    samples = []
    for path in paths:
        started = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def webhooks(base: str, wait_ended) -> tuple[float, int, int]:
    """Executions accepted per second over WEBHOOK_SECONDS from CLIENTS threads; then (rate, accepted, ended)."""
    accepted: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + WEBHOOK_SECONDS

    def send(n: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            i = 0
            while time.monotonic() < stop_at:
                response = client.post(
                    "/executions/webhook/bench.api/bench-hook/bench-webhook-key-0123456789", json={"n": i}
                )
                i += 1
                if response.status_code == 200:
                    with lock:
                        accepted.append(response.json()["id"])

    started = time.monotonic()
    threads = [threading.Thread(target=send, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rate = len(accepted) / (time.monotonic() - started)
    return rate, len(accepted), wait_ended(accepted)


def api_figures(env: dict[str, str], directory: Path, wait_ended) -> dict[str, float]:
    from flows_app.services.flows import save_flow

    token, ids = seed()
    save_flow(HOOKED)
    port = _free_port()
    web = start_web(env, port, directory / "web.log")
    base = f"http://127.0.0.1:{port}/api/v1/main"
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            pages = [f"/flows/search?size=25&page={random.randint(1, FLOWS // 25)}" for _ in range(CALLS)]
            list_median, list_p95 = latency(client, pages)
            gets = [f"/executions/{random.choice(ids)}" for _ in range(CALLS)]
            get_median, get_p95 = latency(client, gets)
        rate, accepted, ended = webhooks(base, wait_ended)
    finally:
        web.terminate()
        web.wait(timeout=20)
    return {
        "api_flow_list_ms_median": round(list_median, 2),
        "api_flow_list_ms_p95": round(list_p95, 2),
        "api_execution_get_ms_median": round(get_median, 2),
        "api_execution_get_ms_p95": round(get_p95, 2),
        "api_webhook_executions_per_s": round(rate, 1),
        "api_webhook_accepted": accepted,
        "api_webhook_ended": ended,
    }


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
