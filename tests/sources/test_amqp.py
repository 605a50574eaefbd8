"""The AMQP triggers' sources against the machine's RabbitMQ: a message leaves its queue only once acknowledged,
comes back under the same key when it was not, and reads as Kestra's Message."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import pytest

from plugins_app.triggers.amqp import PREFETCH, AmqpBatchSource, AmqpRealtimeSource
from plugins_app.triggers.base import SourceContext, SourceError
from tests.brokers import require


class Rabbit:
    """The test's side of the broker: a queue of its own, to fill and to count."""

    def __init__(self, host: str, port: int):
        import amqp

        self.amqp = amqp
        self.host, self.port = host, port
        self.connection = amqp.Connection(host=f"{host}:{port}")
        self.connection.connect()
        self.channel = self.connection.channel()
        self.queue = f"tern-test-{uuid.uuid4().hex}"
        self.channel.queue_declare(self.queue, durable=False, auto_delete=False)

    def publish(self, body: str | bytes, **properties) -> None:
        body = body.encode() if isinstance(body, str) else body
        self.channel.basic_publish(self.amqp.Message(body, **properties), "", self.queue)

    def ready(self) -> int:
        """How many messages wait in the queue, delivered to no one."""
        return self.channel.queue_declare(self.queue, passive=True).message_count

    def props(self, **more) -> dict:
        return {"host": self.host, "port": str(self.port), "queue": self.queue, **more}

    def close(self) -> None:
        self.channel.queue_delete(self.queue)
        self.connection.close()


@pytest.fixture
def rabbit():
    host, port = require("amqp")
    broker = Rabbit(host, port)
    yield broker
    broker.close()


@pytest.fixture
def context():
    return SourceContext(namespace="tests.amqp", flow_id="orders", trigger_id="watch")


@pytest.fixture
def sources():
    """Sources made by a test, closed after it."""
    made = []

    def make(kind, properties, context):
        source = kind(properties, context)
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()


def receive_until(source, count: int, within: float = 10.0) -> list:
    events, deadline = [], time.monotonic() + within
    while len(events) < count and time.monotonic() < deadline:
        events += source.receive(0.5)
    return events


def wait_for(condition, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.05)
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---- realtime ---------------------------------------------------------------------------------


def test_a_message_not_acknowledged_comes_back_to_the_next_source_under_the_same_key(rabbit, context, sources):
    rabbit.publish("hello", message_id="order-1")
    first = sources(AmqpRealtimeSource, rabbit.props(), context)
    [event] = receive_until(first, 1)
    assert event.key == "order-1" and event.variables["data"] == "hello"
    first.close()  # a crash before `ack`: the broker takes the message back

    again = sources(AmqpRealtimeSource, rabbit.props(), context)
    [redelivered] = receive_until(again, 1)
    assert redelivered.key == "order-1" and redelivered.variables == event.variables


def test_an_acknowledged_message_is_gone(rabbit, context, sources):
    rabbit.publish("once", message_id="order-2")
    source = sources(AmqpRealtimeSource, rabbit.props(), context)
    events = receive_until(source, 1)
    source.ack(events)
    source.close()
    assert rabbit.ready() == 0
    assert sources(AmqpRealtimeSource, rabbit.props(), context).receive(1.0) == []


def test_the_trigger_variables_are_kestras_message(rabbit, context, sources):
    rabbit.publish(
        '{"id": 7, "items": ["a"]}',
        message_id="order-7",
        content_type="application/json",
        application_headers={"source": "shop", "attempt": 2, "urgent": True},
        delivery_mode=2,
        priority=5,
        correlation_id="c-1",
        reply_to="answers",
        expiration="1500",
        timestamp=1673254000,
        type="order.created",
        user_id="guest",
        app_id="shop",
    )
    source = sources(AmqpRealtimeSource, rabbit.props(serdeType="JSON"), context)
    [event] = receive_until(source, 1)
    assert event.variables == {
        "contentType": "application/json",
        "headers": {"source": "shop", "attempt": "2", "urgent": "true"},
        "deliveryMode": 2,
        "priority": 5,
        "messageId": "order-7",
        "correlationId": "c-1",
        "replyTo": "answers",
        "expiration": "PT1.5S",
        "timestamp": "2023-01-09T08:46:40Z",
        "type": "order.created",
        "userId": "guest",
        "appId": "shop",
        "data": {"id": 7, "items": ["a"]},
    }


def test_a_message_without_an_id_has_no_key(rabbit, context, sources):
    rabbit.publish("anonymous")
    [event] = receive_until(sources(AmqpRealtimeSource, rabbit.props(), context), 1)
    assert event.key is None and event.variables == {"data": "anonymous"}


def test_a_realtime_source_holds_no_more_than_its_prefetch(rabbit, context, sources):
    for n in range(PREFETCH + 50):
        rabbit.publish(str(n), message_id=f"m{n}")
    source = sources(AmqpRealtimeSource, rabbit.props(), context)
    events = receive_until(source, PREFETCH)
    assert len(events) == PREFETCH and [e.key for e in events[:2]] == ["m0", "m1"]
    assert rabbit.ready() == 50  # the rest stays on the broker until these are acknowledged
    source.ack(events)
    assert len(receive_until(source, 50)) == 50


def test_a_body_that_is_not_json_is_an_error_and_stays_on_the_queue(rabbit, context, sources):
    rabbit.publish("{not json", message_id="bad-1")
    source = sources(AmqpRealtimeSource, rabbit.props(serdeType="JSON"), context)
    with pytest.raises(SourceError, match="bad-1 is not JSON"):
        receive_until(source, 1)
    assert wait_for(lambda: rabbit.ready() == 1)


def test_auto_ack_lets_the_broker_forget_a_message_once_delivered(rabbit, context, sources):
    rabbit.publish("fire and forget")
    source = sources(AmqpRealtimeSource, rabbit.props(autoAck=True), context)
    assert len(receive_until(source, 1)) == 1
    source.close()
    assert rabbit.ready() == 0


def test_the_deprecated_url_reaches_the_broker(rabbit, context, sources):
    rabbit.publish("via url", message_id="u-1")
    url = f"amqp://guest:guest@{rabbit.host}:{rabbit.port}/"
    source = sources(AmqpRealtimeSource, {"url": url, "queue": rabbit.queue}, context)
    assert [e.key for e in receive_until(source, 1)] == ["u-1"]


# ---- batch ------------------------------------------------------------------------------------


def test_a_batch_holds_max_records_and_comes_back_whole_until_acknowledged(rabbit, context, sources):
    for n in range(5):
        rabbit.publish(f'{{"n": {n}}}', message_id=f"m{n}")
    props = rabbit.props(maxRecords=2, serdeType="JSON")
    first = sources(AmqpBatchSource, props, context)
    [batch] = first.poll()
    assert batch.variables == {"count": 2} and batch.key == "m0..m1"
    assert [r["data"] for r in batch.records] == [{"n": 0}, {"n": 1}]
    first.close()  # a crash before `ack`: the broker takes the batch back, at the head of the queue

    again = sources(AmqpBatchSource, props, context)
    [redelivered] = again.poll()
    assert redelivered.key == batch.key and redelivered.records == batch.records
    again.ack([redelivered])
    [following] = again.poll()
    assert following.key == "m2..m3" and following.variables == {"count": 2}


def test_a_poll_without_acknowledging_the_last_batch_reads_it_again(rabbit, context, sources):
    rabbit.publish("a", message_id="a")
    source = sources(AmqpBatchSource, rabbit.props(), context)
    [batch] = source.poll()
    [again] = source.poll()  # its execution never started: it was not acknowledged
    assert again.key == batch.key == "a"
    source.ack([again])
    assert source.poll() == [] and rabbit.ready() == 0


def test_a_batch_without_limits_takes_what_is_there_now(rabbit, context, sources):
    for n in range(3):
        rabbit.publish(str(n))
    source = sources(AmqpBatchSource, rabbit.props(), context)
    started = time.monotonic()
    [batch] = source.poll()
    assert batch.variables == {"count": 3} and batch.key is None
    assert [r["data"] for r in batch.records] == ["0", "1", "2"]
    assert time.monotonic() - started < 1.0  # an empty queue ends the batch: nothing is waited for
    source.ack([batch])
    assert source.poll() == [] and rabbit.ready() == 0


def test_max_duration_waits_for_messages_that_come_late(rabbit, context, sources):
    late = threading.Timer(0.3, rabbit.publish, args=("late",), kwargs={"message_id": "late-1"})
    source = sources(AmqpBatchSource, rabbit.props(maxRecords=1, maxDuration="PT5S"), context)
    late.start()
    try:
        started = time.monotonic()
        [batch] = source.poll()
    finally:
        late.join()
    assert batch.key == "late-1" and time.monotonic() - started < 5  # maxRecords ended it first


def test_max_duration_ends_a_batch_of_an_empty_queue(rabbit, context, sources):
    source = sources(AmqpBatchSource, rabbit.props(maxDuration="PT0.5S"), context)
    started = time.monotonic()
    assert source.poll() == []
    assert 0.4 < time.monotonic() - started < 3


def test_stopping_the_source_ends_its_wait(rabbit, context, sources):
    source = sources(AmqpBatchSource, rabbit.props(maxDuration="PT30S"), context)
    threading.Timer(0.3, context.stop.set).start()
    started = time.monotonic()
    assert source.poll() == []
    assert time.monotonic() - started < 5


# ---- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [AmqpRealtimeSource, AmqpBatchSource])
def test_an_unreachable_broker_is_a_source_error_naming_it(kind, context, sources):
    port = free_port()
    source = sources(kind, {"host": "127.0.0.1", "port": port, "queue": "q"}, context)
    with pytest.raises(SourceError, match=f"AMQP broker 127.0.0.1:{port} .*connection refused"):
        source.poll() if kind is AmqpBatchSource else source.receive(1.0)


def test_a_refused_login_and_a_missing_queue_are_source_errors(rabbit, context, sources):
    with pytest.raises(SourceError, match="ACCESS_REFUSED"):
        sources(AmqpRealtimeSource, rabbit.props(password="wrong"), context).receive(1.0)
    with pytest.raises(SourceError, match="no queue 'nowhere'"):
        sources(AmqpBatchSource, rabbit.props(queue="nowhere"), context).poll()


def test_a_source_needs_a_host_or_a_url_but_not_both(context, sources):
    with pytest.raises(SourceError, match="missing host"):
        sources(AmqpRealtimeSource, {"queue": "q"}, context).receive(1.0)
    with pytest.raises(SourceError, match="both `url` and `host`"):
        sources(AmqpBatchSource, {"queue": "q", "host": "h", "url": "amqp://h"}, context).poll()


def test_a_queue_deleted_under_a_realtime_source_is_a_source_error(rabbit, context, sources):
    source = sources(AmqpRealtimeSource, rabbit.props(), context)
    assert source.receive(0.1) == []
    rabbit.channel.queue_delete(rabbit.queue)
    with pytest.raises(SourceError, match="cancelled the consumer"):
        receive_until(source, 1)
    rabbit.channel.queue_declare(rabbit.queue, durable=False, auto_delete=False)  # for the fixture's clean-up
