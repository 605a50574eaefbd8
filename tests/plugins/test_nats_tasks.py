"""NATS Produce, Consume and Request tasks in flows, against the real server: Produce feeds a trigger's
source, Consume stores and acks, Request gets the reply of a responder."""

from __future__ import annotations

import asyncio
import json
import threading

import nats
import pytest

from flows_app.models import LogEntry
from plugins_app.triggers.base import SourceContext
from plugins_app.triggers.nats import NatsRealtimeSource
from tests.brokers import require
from tests.sources.test_nats import Stream, eventually

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stream():
    host, port = require("nats")
    made = Stream(f"nats://{host}:{port}")
    yield made
    made.delete()


class Listener:
    """A plain NATS subscriber in a thread of its own: it keeps what comes on `subject`, and answers
    each request with `reply` (the request's data appended) when one is given."""

    def __init__(self, url: str, subject: str, reply: str | None = None):
        self.received: list[tuple[str, dict]] = []
        self._ready, self._done = threading.Event(), None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._client = asyncio.run_coroutine_threadsafe(self._listen(url, subject, reply), self._loop).result(5)

    async def _listen(self, url, subject, reply):
        client = await nats.connect(url)

        async def handle(message):
            self.received.append((message.data.decode(), message.headers or {}))
            if reply is not None:
                await message.respond(f"{reply}{message.data.decode()}".encode())

        await client.subscribe(subject, cb=handle)
        await client.flush()
        return client

    def close(self):
        asyncio.run_coroutine_threadsafe(self._client.close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


def flow_file(tmp_path, body: str):
    path = tmp_path / "nats.yml"
    path.write_text("id: nats\nnamespace: tests.nats\ntasks:\n" + body)
    return path


def runs(execution):
    return {r.task_id: r for r in execution.task_runs.all()}


def test_produce_publishes_to_jetstream_and_feeds_a_realtime_trigger(run_flow, tmp_path, stream):
    execution = run_flow(
        flow_file(
            tmp_path,
            f"""  - id: produce
    type: io.kestra.plugin.nats.core.Produce
    url: {stream.url}
    subject: {stream.subject}
    from:
      - headers:
          origin: "{{{{ flow.id }}}}"
        data: hello
      - data:
          n: 2
      - just text
""",
        )
    ).execution
    assert execution.state == "SUCCESS"
    assert runs(execution)["produce"].outputs == {"messagesCount": 3}

    source = NatsRealtimeSource(
        {"url": stream.url, "subject": stream.subject}, SourceContext("tests.nats", "consumer", "watch")
    )
    try:
        events = []
        eventually(lambda: events.extend(source.receive(1.0)) or len(events) >= 3)
        assert [e.variables["data"] for e in events] == ["hello", '{"n": 2}', "just text"]
        assert events[0].variables["headers"] == {"origin": ["nats"]}
        source.ack(events)
    finally:
        source.close()


def test_consume_stores_the_messages_acks_them_and_produce_republishes_the_file(run_flow, tmp_path, stream):
    stream.publish("one", "two", "three", headers={"kind": "order"})
    plain = f"{stream.prefix.replace('.', '_')}.plain"  # no stream holds it: plain NATS
    listener = Listener(stream.url, plain)
    durable = "consume-test"
    try:
        execution = run_flow(
            flow_file(
                tmp_path,
                f"""  - id: consume
    type: io.kestra.plugin.nats.core.Consume
    url: {stream.url}
    subject: {stream.subject}
    durableId: {durable}
    maxRecords: 2
    batchSize: 1
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ read(outputs.consume.uri) }}}}"
  - id: forward
    type: io.kestra.plugin.nats.Produce
    url: {stream.url}
    subject: {plain}
    from: "{{{{ outputs.consume.uri }}}}"
  - id: rest
    type: io.kestra.plugin.nats.Consume
    url: {stream.url}
    subject: {stream.subject}
    durableId: {durable}
    pollDuration: PT0.5S
""",
            )
        ).execution
        by_task = runs(execution)
        assert execution.state == "SUCCESS"
        consume = by_task["consume"].outputs
        assert consume["messagesCount"] == 2 and consume["uri"].startswith("kestra:///tests/nats/nats/executions/")
        lines = [json.loads(line) for line in by_task["show"].outputs["value"].splitlines()]
        assert [(m["data"], m["headers"], m["subject"]) for m in lines] == [
            ("one", {"kind": ["order"]}, stream.subject),
            ("two", {"kind": ["order"]}, stream.subject),
        ]
        assert by_task["forward"].outputs == {"messagesCount": 2}
        assert by_task["rest"].outputs["messagesCount"] == 1  # the durable consumer acked the first two
        eventually(lambda: len(listener.received) >= 2 or None, timeout=5)
        assert listener.received == [("one", {"kind": "order"}), ("two", {"kind": "order"})]
    finally:
        listener.close()
    info = stream.consumer(durable)
    assert info.num_ack_pending == 0 and info.num_pending == 0


def test_request_gets_the_reply_or_null_when_nobody_answers(run_flow, tmp_path, stream):
    subject = f"{stream.prefix.replace('.', '_')}.greet"
    responder = Listener(stream.url, subject, reply="hello ")
    try:
        execution = run_flow(
            flow_file(
                tmp_path,
                f"""  - id: ask
    type: io.kestra.plugin.nats.core.Request
    url: {stream.url}
    subject: {subject}
    from:
      headers:
        who: alice
      data: bob
    requestTimeout: PT2S
  - id: nobody
    type: io.kestra.plugin.nats.Request
    url: {stream.url}
    subject: {subject}.nobody
    from:
      data: anyone?
    requestTimeout: PT0.5S
""",
            )
        ).execution
    finally:
        responder.close()
    by_task = runs(execution)
    assert execution.state == "SUCCESS"
    assert by_task["ask"].outputs == {"response": "hello bob"}
    assert responder.received == [("bob", {"who": "alice"})]
    assert by_task["nobody"].outputs == {"response": None}


def test_an_unreachable_server_fails_the_task_with_a_clear_message(run_flow, tmp_path):
    execution = run_flow(
        flow_file(
            tmp_path,
            """  - id: produce
    type: io.kestra.plugin.nats.core.Produce
    url: nats://127.0.0.1:1
    subject: orders
    from:
      data: lost
""",
        )
    ).execution
    assert execution.state == "FAILED"
    [message] = LogEntry.objects.filter(task_id="produce", level="ERROR").values_list("message", flat=True)
    assert message.startswith("cannot connect to NATS server nats://127.0.0.1:1:")


def test_consume_of_a_subject_no_stream_holds_fails_naming_it(run_flow, tmp_path, stream):
    execution = run_flow(
        flow_file(
            tmp_path,
            f"""  - id: consume
    type: io.kestra.plugin.nats.core.Consume
    url: {stream.url}
    subject: nobody.streams.this
""",
        )
    ).execution
    assert execution.state == "FAILED"
    [message] = LogEntry.objects.filter(task_id="consume", level="ERROR").values_list("message", flat=True)
    assert "holds subject 'nobody.streams.this'" in message
