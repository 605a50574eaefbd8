"""The AMQP tasks in flows, against the machine's RabbitMQ: declare, bind, publish, consume, and a published
message feeding an AMQP trigger's source."""

from __future__ import annotations

import json
import socket
import time
import uuid

import pytest

from plugins_app.triggers.amqp import AmqpRealtimeSource
from plugins_app.triggers.base import SourceContext
from tests.brokers import require

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker():
    """(host, port, a unique name); the queues and exchanges named after it are deleted after the test."""
    import amqp

    host, port = require("amqp")
    name = f"tern-test-{uuid.uuid4().hex}"
    yield host, port, name
    connection = amqp.Connection(host=f"{host}:{port}")
    connection.connect()
    channel = connection.channel()
    for suffix in ("", ".copy"):
        channel.queue_delete(name + suffix)
    channel.exchange_delete(name)
    connection.close()


def write_flow(tmp_path, host, port, tasks: str):
    flow = tmp_path / "amqp.yml"
    flow.write_text(
        f"id: amqp-flow\nnamespace: tests.amqp\nvariables:\n  host: {host}\n  port: {port}\ntasks:\n{tasks}"
    )
    return flow


CONNECTION = """    host: "{{ vars.host }}"
    port: "{{ vars.port }}"
    username: guest
    password: guest
"""


def runs_of(execution):
    return {run.task_id: run for run in execution.task_runs.all()}


def test_a_flow_declares_binds_publishes_and_consumes(run_flow, tmp_path, broker):
    from flows_app.services.storage import storage

    host, port, name = broker
    tasks = f"""  - id: exchange
    type: io.kestra.plugin.amqp.DeclareExchange
{CONNECTION}    name: {name}
    exchangeType: topic
  - id: queue
    type: io.kestra.plugin.amqp.CreateQueue
{CONNECTION}    name: {name}
    durability: false
  - id: bind
    type: io.kestra.plugin.amqp.QueueBind
{CONNECTION}    exchange: {name}
    queue: {name}
    routingKey: "orders.*"
  - id: publish
    type: io.kestra.plugin.amqp.Publish
{CONNECTION}    exchange: {name}
    routingKey: orders.new
    serdeType: JSON
    from:
      - data: {{"id": 1}}
        headers:
          source: tern
        timestamp: "2023-01-09T08:46:33.103130753Z"
      - data: {{"id": 2}}
        appId: shop
        messageId: order-2
  - id: elsewhere
    type: io.kestra.plugin.amqp.Publish
{CONNECTION}    exchange: {name}
    routingKey: invoices.new
    from: not for this queue
  - id: consume
    type: io.kestra.plugin.amqp.Consume
{CONNECTION}    queue: {name}
    serdeType: JSON
    maxRecords: 5
    maxDuration: PT1S
"""
    execution = run_flow(write_flow(tmp_path, host, port, tasks)).execution
    runs = runs_of(execution)
    assert execution.state == "SUCCESS", {t: r.state for t, r in runs.items()}
    assert runs["exchange"].outputs == {"exchange": name}
    assert runs["queue"].outputs == {"queue": name}
    assert runs["bind"].outputs == {"queue": name, "exchange": name}
    assert runs["publish"].outputs == {"messagesCount": 2}
    assert runs["consume"].outputs["count"] == 2
    first, second = [json.loads(line) for line in storage().read(runs["consume"].outputs["uri"]).splitlines()]
    assert first["data"] == {"id": 1} and first["headers"] == {"source": "tern"}
    assert first["timestamp"] == "2023-01-09T08:46:33Z" and len(first["messageId"]) == 36  # a fresh uuid
    assert second == {"messageId": "order-2", "appId": "shop", "data": {"id": 2}}


def test_published_messages_feed_a_realtime_trigger_each_under_its_own_key(run_flow, tmp_path, broker):
    host, port, name = broker
    tasks = f"""  - id: queue
    type: io.kestra.plugin.amqp.CreateQueue
{CONNECTION}    name: {name}
  - id: publish
    type: io.kestra.plugin.amqp.Publish
{CONNECTION}    exchange: ""
    routingKey: {name}
    from: ["one", "two"]
"""
    assert run_flow(write_flow(tmp_path, host, port, tasks)).execution.state == "SUCCESS"
    source = AmqpRealtimeSource({"host": host, "port": port, "queue": name}, SourceContext("tests.amqp", "f", "t"))
    try:
        events, deadline = [], time.monotonic() + 10
        while len(events) < 2 and time.monotonic() < deadline:
            events += source.receive(0.5)
        assert [e.variables["data"] for e in events] == ["one", "two"]
        assert all(uuid.UUID(e.key) for e in events) and events[0].key != events[1].key
        source.ack(events)
    finally:
        source.close()


def test_publish_sends_again_the_messages_of_a_consumed_file(run_flow, tmp_path, broker):
    from flows_app.services.storage import storage

    host, port, name = broker
    tasks = f"""  - id: queue
    type: io.kestra.plugin.amqp.CreateQueue
{CONNECTION}    name: {name}
  - id: copy
    type: io.kestra.plugin.amqp.CreateQueue
{CONNECTION}    name: {name}.copy
  - id: publish
    type: io.kestra.plugin.amqp.Publish
{CONNECTION}    exchange: ""
    routingKey: {name}
    from:
      data: hello
      headers: {{step: "1"}}
  - id: consume
    type: io.kestra.plugin.amqp.Consume
{CONNECTION}    queue: {name}
    maxRecords: 1
  - id: forward
    type: io.kestra.plugin.amqp.Publish
{CONNECTION}    exchange: ""
    routingKey: {name}.copy
    from: "{{{{ outputs.consume.uri }}}}"
  - id: again
    type: io.kestra.plugin.amqp.Consume
{CONNECTION}    queue: {name}.copy
    maxRecords: 1
"""
    execution = run_flow(write_flow(tmp_path, host, port, tasks)).execution
    runs = runs_of(execution)
    assert execution.state == "SUCCESS", {t: r.state for t, r in runs.items()}
    assert runs["forward"].outputs == {"messagesCount": 1}
    original = storage().read(runs["consume"].outputs["uri"])
    assert storage().read(runs["again"].outputs["uri"]) == original  # same data, headers and message id
    assert json.loads(original)["headers"] == {"step": "1"}


def test_an_unreachable_broker_fails_the_task_naming_it(run_flow, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tasks = f"""  - id: publish
    type: io.kestra.plugin.amqp.Publish
{CONNECTION}    exchange: ""
    from: lost
"""
    execution = run_flow(write_flow(tmp_path, "127.0.0.1", port, tasks)).execution
    assert execution.state == "FAILED"
    errors = " ".join(execution.logs.filter(level="ERROR").values_list("message", flat=True))
    assert f"AMQP broker 127.0.0.1:{port}" in errors and "connection refused" in errors


def test_consume_needs_max_records_or_max_duration(run_flow, tmp_path, broker):
    host, port, name = broker
    tasks = f"""  - id: consume
    type: io.kestra.plugin.amqp.Consume
{CONNECTION}    queue: {name}
"""
    execution = run_flow(write_flow(tmp_path, host, port, tasks)).execution
    assert execution.state == "FAILED"
    errors = " ".join(execution.logs.filter(level="ERROR").values_list("message", flat=True))
    assert "maxDuration or maxRecords must be set" in errors


def test_an_internal_exchange_refuses_a_publish(run_flow, tmp_path, broker):
    host, port, name = broker
    tasks = f"""  - id: exchange
    type: io.kestra.plugin.amqp.DeclareExchange
{CONNECTION}    name: {name}
    exchangeType: FANOUT
    internal: true
    autoDelete: false
  - id: publish
    type: io.kestra.plugin.amqp.Publish
{CONNECTION}    exchange: {name}
    from: refused
"""
    execution = run_flow(write_flow(tmp_path, host, port, tasks)).execution
    runs = runs_of(execution)
    assert runs["exchange"].state == "SUCCESS" and runs["publish"].state == "FAILED"
    errors = " ".join(execution.logs.filter(level="ERROR").values_list("message", flat=True))
    assert "ACCESS_REFUSED" in errors and "internal" in errors
