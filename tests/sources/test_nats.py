"""NATS JetStream trigger sources against the real server: nothing is acked before `ack`, keys survive a
re-delivery, batches keep Kestra's limits, and errors name the server or the subject."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import nats
import pytest

from plugins_app.triggers import nats as nats_source
from plugins_app.triggers.base import SourceContext, SourceError
from plugins_app.triggers.nats import NatsBatchSource, NatsRealtimeSource
from tests.brokers import require

ACK_WAIT = 1.0  # seconds: how soon an unacked message comes back, in these tests


@pytest.fixture(autouse=True)
def short_ack_wait(monkeypatch):
    monkeypatch.setattr(nats_source, "ACK_WAIT", ACK_WAIT)


class Stream:
    """A stream of its own for one test, holding `<prefix>.>`; `subject` is one subject in it."""

    def __init__(self, url: str):
        self.url = url
        tag = uuid.uuid4().hex[:10]
        self.name = f"TERN_TEST_{tag}"
        self.prefix = f"tern.test.{tag}"
        self.subject = f"{self.prefix}.events"
        self._admin(lambda js: js.add_stream(name=self.name, subjects=[f"{self.prefix}.>"], storage="memory"))

    def publish(self, *bodies: str, subject: str | None = None, headers: dict | None = None) -> None:
        async def send(js):
            for body in bodies:
                await js.publish(subject or self.subject, body.encode(), headers=headers)

        self._admin(send)

    def consumer(self, durable: str):
        return self._admin(lambda js: js.consumer_info(self.name, durable))

    def delete(self) -> None:
        self._admin(lambda js: js.delete_stream(self.name))

    def _admin(self, action):
        async def run():
            client = await nats.connect(self.url)
            try:
                return await action(client.jetstream())
            finally:
                await client.close()

        return asyncio.run(run())


@pytest.fixture
def stream():
    host, port = require("nats")
    made = Stream(f"nats://{host}:{port}")
    yield made
    made.delete()


@pytest.fixture
def sources():
    """Opens sources (a class, its properties, a context) and closes those left open at the end."""
    opened = []

    def open_source(cls, properties, context=None):
        source = cls(properties, context or SourceContext("tests.nats", "orders", "watch"))
        opened.append(source)
        return source

    yield open_source
    for source in opened:
        source.close()


def eventually(look, timeout: float = 10.0):
    """What `look` finds first (it waits itself: a fetch waits for messages), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = look()
        if found:
            return found
    raise AssertionError(f"nothing within {timeout} s")


def props(stream: Stream, **more):
    return {"url": stream.url, "subject": stream.subject, **more}


def test_a_batch_holds_the_messages_and_their_count_and_comes_back_until_acked(stream, sources):
    stream.publish("first", '{"n": 2}', headers={"origin": "billing"})
    context = SourceContext("tests.nats", "orders", "watch")

    [event] = sources(NatsBatchSource, props(stream), context).poll()
    assert event.variables == {"messagesCount": 2}
    first, second = event.records
    assert first["subject"] == stream.subject and first["headers"] == {"origin": ["billing"]}
    assert (first["data"], second["data"]) == ("first", '{"n": 2}')  # no serdeType in NATS: data is text
    assert first["timestamp"].endswith("Z")
    assert event.key.startswith(f"{stream.name}:") and event.key.endswith(":1-2")

    # Closed without ack (the runner died): the same trigger's next source gets them again, same key.
    again = sources(NatsBatchSource, props(stream), context)
    [redelivered] = eventually(again.poll)
    assert redelivered.key == event.key
    assert [r["data"] for r in redelivered.records] == ["first", '{"n": 2}']

    again.ack([redelivered])
    consumer = stream.consumer(nats_source.durable_name(context))
    assert consumer.num_ack_pending == 0 and consumer.num_pending == 0
    # Waits past the ack wait, for nothing.
    later = sources(NatsBatchSource, props(stream, pollDuration="PT1.5S", maxDuration="PT2S"), context)
    assert later.poll() == []


def test_max_records_caps_a_batch_fetched_batch_size_at_a_time(stream, sources):
    stream.publish(*[f"m{i}" for i in range(10)])
    source = sources(NatsBatchSource, props(stream, maxRecords=7, batchSize=3))

    [event] = source.poll()
    assert event.variables == {"messagesCount": 7}
    assert [r["data"] for r in event.records] == [f"m{i}" for i in range(7)]
    assert event.key.endswith(":1-7")
    source.ack([event])

    [rest] = source.poll()
    assert [r["data"] for r in rest.records] == ["m7", "m8", "m9"] and rest.key.endswith(":8-10")


def test_without_limits_a_batch_is_what_is_there_now(stream, sources):
    stream.publish(*[f"m{i}" for i in range(25)])
    source = sources(NatsBatchSource, props(stream, pollDuration="PT0.2S"))

    started = time.monotonic()
    [event] = source.poll()
    assert event.variables == {"messagesCount": 25}
    assert time.monotonic() - started < nats_source.UNBOUNDED[1] + 1
    source.ack([event])
    assert source.poll() == []


def test_a_max_duration_shortens_the_wait_for_messages(stream, sources):
    source = sources(NatsBatchSource, props(stream, pollDuration="PT10S", maxDuration="PT0.3S"))
    source.poll()  # connects and creates the consumer
    started = time.monotonic()
    assert source.poll() == []
    assert time.monotonic() - started < 2


def test_a_realtime_source_gives_one_event_per_message_keyed_by_stream_sequence(stream, sources):
    stream.publish("one", "two", headers={"kind": "order"})
    context = SourceContext("tests.nats", "orders", "live")

    def collect(source, wanted=2):
        events = []
        eventually(lambda: events.extend(source.receive(1.0)) or len(events) >= wanted)
        return events

    events = collect(sources(NatsRealtimeSource, props(stream), context))
    assert [e.variables["data"] for e in events] == ["one", "two"]
    assert set(events[0].variables) == {"subject", "headers", "data", "timestamp"}
    assert events[0].variables["headers"] == {"kind": ["order"]}
    assert events[0].key.endswith(":1") and events[1].key.endswith(":2")
    assert events[0].key.split(":")[0] == stream.name

    again = sources(NatsRealtimeSource, props(stream), context)
    redelivered = collect(again)
    assert [e.key for e in redelivered] == [e.key for e in events]

    again.ack(redelivered)
    consumer = stream.consumer(nats_source.durable_name(context))
    assert consumer.num_ack_pending == 0 and consumer.num_pending == 0


def test_durable_id_names_the_consumer_and_an_existing_one_resumes(stream, sources):
    stream.publish("a", "b")
    durable = f"reader-{uuid.uuid4().hex[:8]}"
    first = sources(NatsRealtimeSource, props(stream, durableId=durable))
    events = []
    eventually(lambda: events.extend(first.receive(1.0)) or len(events) >= 2)
    first.ack(events)
    first.close()
    assert stream.consumer(durable).num_ack_pending == 0

    stream.publish("c")
    resumed = sources(NatsRealtimeSource, props(stream, durableId=durable))
    [event] = eventually(lambda: resumed.receive(1.0))
    assert event.variables["data"] == "c"


def test_deliver_policy_last_and_since_choose_where_a_new_consumer_starts(stream, sources):
    stream.publish("old", "middle", "newest")
    everything = sources(NatsBatchSource, props(stream, durableId="all-" + uuid.uuid4().hex[:8]))
    [event] = everything.poll()
    middle = event.records[1]["timestamp"]

    last = sources(NatsBatchSource, props(stream, deliverPolicy="Last", durableId="last-" + uuid.uuid4().hex[:8]))
    [only] = last.poll()
    assert [r["data"] for r in only.records] == ["newest"]

    since = sources(NatsBatchSource, props(stream, since=middle, durableId="since-" + uuid.uuid4().hex[:8]))
    [after] = since.poll()
    assert [r["data"] for r in after.records] == ["middle", "newest"]


@pytest.mark.parametrize(
    "more,message",
    [
        ({"deliverPolicy": "Sometimes"}, "deliverPolicy: 'Sometimes' is not one of All, Last"),
        ({"deliverPolicy": "BY_START_TIME"}, "deliverPolicy ByStartTime needs since"),
        ({"since": "yesterday"}, "since: 'yesterday' is not an ISO 8601 date-time"),
        ({"batchSize": "many"}, "batchSize: 'many' is not a whole number"),
    ],
)
def test_bad_properties_are_clear_errors(stream, sources, more, message):
    source = sources(NatsRealtimeSource, props(stream, **more))
    with pytest.raises(SourceError, match=message):
        source.receive(1.0)


def test_an_unreachable_server_is_a_source_error_naming_it_without_its_password(sources):
    for cls in (NatsBatchSource, NatsRealtimeSource):
        source = sources(cls, {"url": "nats://alice:s3cret@127.0.0.1:1", "subject": "orders"})
        with pytest.raises(SourceError) as info:
            source.poll() if cls is NatsBatchSource else source.receive(1.0)
        assert "cannot connect to NATS server nats://***@127.0.0.1:1" in str(info.value)
        assert "s3cret" not in str(info.value)


def test_a_subject_no_stream_holds_is_a_source_error_naming_it(stream, sources):
    source = sources(NatsBatchSource, props(stream, subject="nobody.streams.this"))
    with pytest.raises(SourceError, match="no JetStream stream on NATS server .* holds subject 'nobody.streams.this'"):
        source.poll()


def test_a_durable_id_reading_another_subject_is_refused(stream, sources):
    durable = f"other-{uuid.uuid4().hex[:8]}"
    sources(NatsBatchSource, props(stream, durableId=durable, pollDuration="PT0.1S")).poll()
    elsewhere = sources(NatsBatchSource, props(stream, subject=f"{stream.prefix}.other", durableId=durable))
    with pytest.raises(SourceError, match=f"durableId '{durable}' is a consumer of '{stream.subject}'"):
        elsewhere.poll()


def test_close_ends_the_connection_and_its_thread(stream):
    before = threading.active_count()
    source = NatsRealtimeSource(props(stream), SourceContext("tests.nats", "orders", "closing"))
    source.receive(0.2)
    assert threading.active_count() == before + 1
    source.close()
    assert threading.active_count() == before
