"""The Redis triggers' sources against a real Redis: a list's element leaves it only once acknowledged and comes
back to the next source when it was not; batches keep their bounds; pub/sub delivers what comes while listening;
ListPush in a flow feeds a RealtimeTrigger whose execution carries `trigger.value`."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from plugins_app.triggers.base import SourceContext, SourceError
from plugins_app.triggers.redis import ListBatchSource, ListRealtimeSource, PubSubBatchSource, PubSubRealtimeSource


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    """The machine's Redis (a database of its own), or an embedded one when there is none."""
    from orchestrator.embedded_redis import EmbeddedRedis, reachable

    found = os.environ.get("TERN_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
    if reachable(found):
        yield found
        return
    embedded = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield embedded.start()
    embedded.stop()


@pytest.fixture
def client(url):
    import redis

    connection = redis.Redis.from_url(url)
    yield connection
    connection.close()


@pytest.fixture
def key():
    return f"tern-test-{uuid.uuid4().hex}"


def context(trigger: str = "watch") -> SourceContext:
    return SourceContext(namespace="tests.redis", flow_id="orders", trigger_id=trigger)


def test_an_element_leaves_the_list_only_when_acknowledged_and_comes_back_to_the_next_source(url, client, key):
    client.rpush(key, "a", "b", "c")
    first = ListRealtimeSource({"url": url, "key": key}, context())
    events = first.receive(1.0)
    assert [e.variables["value"] for e in events] == ["a", "b", "c"]
    first.ack(events[:1])
    first.close()  # a crash: b and c were received, never acknowledged
    assert client.llen(key) == 0
    second = ListRealtimeSource({"url": url, "key": key}, context())
    again = second.receive(1.0)
    assert [e.variables["value"] for e in again] == ["b", "c"], "re-delivered, in order"
    assert all(e.key is None for e in again), "list elements have no id"
    second.ack(again)
    assert second.receive(0.2) == []
    second.close()
    assert client.keys(f"{key}*") == [], "nothing left: neither the list nor its processing list"


def test_a_realtime_source_waits_for_the_next_push_and_decodes_json(url, client, key):
    source = ListRealtimeSource({"url": url, "key": key, "serdeType": "JSON"}, context())
    try:
        pusher = threading.Timer(0.2, lambda: client.rpush(key, '{"id": 7}'))
        pusher.start()
        events = []
        for _ in range(20):
            events = source.receive(1.0)
            if events:
                break
        assert [e.variables["value"] for e in events] == [{"id": 7}]
    finally:
        source.close()


def test_an_element_that_is_not_json_goes_to_the_dead_list_and_fails_the_source(url, client, key):
    client.rpush(key, "not json", '{"ok": true}')
    source = ListRealtimeSource({"url": url, "key": key, "serdeType": "JSON"}, context())
    with pytest.raises(SourceError, match="not JSON.*moved to list"):
        source.receive(1.0)
    source.close()
    assert client.lrange(f"{key}:tern:dead:{context().name}", 0, -1) == [b"not json"]
    retry = ListRealtimeSource({"url": url, "key": key, "serdeType": "JSON"}, context())
    assert [e.variables["value"] for e in retry.receive(1.0)] == [{"ok": True}]
    retry.close()


def test_a_batch_takes_at_most_max_records_and_its_file_records_come_back_when_not_acknowledged(url, client, key):
    client.rpush(key, *[str(n) for n in range(25)])
    source = ListBatchSource({"url": url, "key": key, "maxRecords": 10}, context())
    (event,) = source.poll()
    assert event.records == [str(n) for n in range(10)] and event.variables == {"count": 10}
    source.close()  # not acknowledged
    again = ListBatchSource({"url": url, "key": key, "maxRecords": 10}, context())
    (event,) = again.poll()
    assert event.records == [str(n) for n in range(10)], "the same batch, first"
    again.ack([event])
    (rest,) = again.poll()
    assert rest.records == [str(n) for n in range(10, 20)]
    again.ack([rest])
    unbounded = ListBatchSource({"url": url, "key": key}, context())
    (last,) = unbounded.poll()
    assert last.records == [str(n) for n in range(20, 25)], "without limits: what is there now"
    unbounded.ack([last])
    assert unbounded.poll() == []
    unbounded.close()
    again.close()


def test_pub_sub_delivers_what_is_published_while_it_listens(url, client, key):
    realtime = PubSubRealtimeSource({"url": url, "channel": key}, context())
    batch = PubSubBatchSource({"url": url, "channel": key}, context("batch"))
    try:
        assert realtime.receive(0.1) == [] and batch.poll() == []  # both subscribed now
        client.publish(key, "one")
        client.publish(key, "two")
        received = []
        for _ in range(20):
            received += realtime.receive(0.5)
            if len(received) == 2:
                break
        assert [(e.variables["value"], e.variables["channel"]) for e in received] == [("one", key), ("two", key)]
        (event,) = batch.poll()
        assert event.records == ["one", "two"] and event.variables == {"count": 2}
    finally:
        realtime.close()
        batch.close()


def test_an_unreachable_redis_is_a_source_error_naming_the_server(key):
    source = ListRealtimeSource({"url": "redis://127.0.0.1:9/0", "key": key}, context())
    with pytest.raises(SourceError, match="127.0.0.1:9"):
        source.receive(0.1)
    source.close()
