"""Real `tern triggers` processes against the real RabbitMQ: two run at once and only one consumes the trigger;
the one consuming is killed with kill -9 in the middle of a stream, and the other takes the trigger over once
its lease ends. Every message starts exactly one execution: none dropped, none doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import pytest

from flows_app.models import Execution, TriggerState
from flows_app.services.flows import save_flow
from tests.brokers import require

from .conftest import ROOT, wait_until

MESSAGES = 300


def start_triggers(runtime, name: str) -> subprocess.Popen:
    log = open(runtime.tmp_path / f"triggers-{name}.log", "w")  # noqa: SIM115  (the process's, while it lives)
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "triggers"],
        cwd=ROOT,
        env={**runtime.env(), "TERN_TRIGGER_LEASE_SECONDS": "3"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen, sig=signal.SIGTERM) -> int:
    if process.poll() is None:
        os.killpg(process.pid, sig)
    return process.wait(timeout=20)


@pytest.fixture
def queue():
    import amqp

    host, port = require("amqp")
    connection = amqp.Connection(host=f"{host}:{port}")
    connection.connect()
    channel = connection.channel()
    name = f"tern-test-{uuid.uuid4().hex}"
    channel.queue_declare(name, durable=True, auto_delete=False)
    yield host, port, name, channel
    channel.queue_delete(name)
    connection.close()


def publish(channel, queue: str, numbers: range) -> None:
    import amqp

    for n in numbers:
        channel.basic_publish(amqp.Message(str(n), message_id=f"m-{n}"), "", queue)


def test_a_killed_trigger_process_drops_nothing_and_its_successor_doubles_nothing(celery_runtime, queue):
    host, port, name, channel = queue
    save_flow(f"""id: orders
namespace: tests.triggers
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.data }}}}"
triggers:
  - id: queue
    type: io.kestra.plugin.amqp.RealtimeTrigger
    host: {host}
    port: {port}
    queue: {name}
""")
    state = TriggerState.objects.get(trigger_id="queue")
    processes = {"first": start_triggers(celery_runtime, "first"), "second": start_triggers(celery_runtime, "second")}
    try:
        owner = wait_until(
            lambda: TriggerState.objects.get(pk=state.pk).lease_owner, what="a process holds the trigger"
        )
        holder = next(n for n, p in processes.items() if f":{p.pid}:" in owner)
        publish(channel, name, range(MESSAGES // 2))
        wait_until(lambda: Execution.objects.count() >= MESSAGES // 4, timeout=60, what="a quarter of the stream")
        stop(processes.pop(holder), signal.SIGKILL)  # between a start and its acknowledgement, likely
        publish(channel, name, range(MESSAGES // 2, MESSAGES))
        wait_until(lambda: Execution.objects.count() >= MESSAGES, timeout=90, what="every message's execution")
        successor = TriggerState.objects.get(pk=state.pk).lease_owner
        assert successor != owner and f":{next(iter(processes.values())).pid}:" in successor
        wait_until(lambda: channel.queue_declare(name, passive=True).message_count == 0, what="the queue drained")
    finally:
        for process in processes.values():
            assert stop(process) == 0
    data = sorted(int(t["data"]) for t in Execution.objects.values_list("trigger", flat=True))
    assert data == list(range(MESSAGES)), "a message dropped or started twice"
