"""The MQTT triggers' sources against the real Mosquitto: a message received and not acknowledged stays in the
trigger's session and comes again, flagged DUP, to the next connection; once its execution exists that
re-delivery starts nothing; a batch keeps its bounds; the Publish task feeds a RealtimeTrigger."""

from __future__ import annotations

import threading
import uuid

import pytest

from flows_app import dispatch
from flows_app.models import Execution, TriggerState
from flows_app.services.flows import save_flow
from flows_app.triggers.runner import event_spec, handle, open_source
from plugins_app.triggers.base import SourceContext, SourceError
from plugins_app.triggers.mqtt import MqttBatchSource, MqttRealtimeSource
from tests.brokers import require
from tests.services.test_flows_and_state import Recorder


@pytest.fixture
def broker():
    host, port = require("mqtt")
    return f"tcp://{host}:{port}"


@pytest.fixture
def topic():
    return f"tern/test/{uuid.uuid4().hex}"


def publish(broker: str, topic: str, payloads: list[str], qos: int = 1) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, port = broker.removeprefix("tcp://").split(":")
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect(host, int(port))
    client.loop_start()
    try:
        for payload in payloads:
            client.publish(topic, payload, qos=qos).wait_for_publish(timeout=5)
    finally:
        client.loop_stop()
        client.disconnect()


def context(name: str) -> SourceContext:
    return SourceContext(namespace="tests.mqtt", flow_id=name, trigger_id="watch")


def receive_all(source, count: int, rounds: int = 20) -> list:
    events: list = []
    for _ in range(rounds):
        events += source.receive(0.5)
        if len(events) >= count:
            break
    return events


def test_a_message_not_acknowledged_comes_again_with_dup_and_an_acknowledged_one_does_not(broker, topic):
    name = f"flow{uuid.uuid4().hex[:8]}"
    props = {"server": broker, "topic": topic, "serdeType": "STRING"}
    first = MqttRealtimeSource(props, context(name))
    assert first.receive(0.3) == []  # subscribed: the session keeps what comes from now on
    publish(broker, topic, ["a", "b"])
    events = receive_all(first, 2)
    assert [e.variables["payload"] for e in events] == ["a", "b"]
    assert all(e.variables["topic"] == topic and e.key for e in events)
    first.ack(events[:1])
    first.close()  # b was never acknowledged
    second = MqttRealtimeSource(props, context(name))
    again = receive_all(second, 1)
    assert [e.variables["payload"] for e in again] == ["b"], "only the unacknowledged one comes again"
    second.ack(again)
    assert second.receive(0.5) == []
    second.close()


def test_a_batch_takes_at_most_max_records_and_counts_them(broker, topic):
    name = f"flow{uuid.uuid4().hex[:8]}"
    props = {"server": broker, "topic": topic, "serdeType": "JSON", "maxRecords": 3}
    source = MqttBatchSource(props, context(name))
    assert source.poll() == []  # the first look subscribes the session
    publish(broker, topic, [f'{{"n": {n}}}' for n in range(5)])
    (event,) = source.poll()
    assert event.variables == {"messagesCount": 3}
    assert [r["payload"] for r in event.records] == [{"n": 0}, {"n": 1}, {"n": 2}]
    source.ack([event])
    (rest,) = source.poll()
    assert [r["payload"] for r in rest.records] == [{"n": 3}, {"n": 4}]
    source.ack([rest])
    source.close()


def test_an_unreachable_broker_is_a_source_error_naming_it(topic):
    source = MqttRealtimeSource({"server": "tcp://127.0.0.1:9", "topic": topic}, context("nowhere"))
    with pytest.raises(SourceError, match="127.0.0.1"):
        source.receive(0.1)
    source.close()


@pytest.mark.django_db(transaction=True)
def test_a_redelivered_message_whose_execution_exists_starts_no_second_one(broker, topic):
    with dispatch.using(Recorder()):
        flow = save_flow(f"""id: sensors{uuid.uuid4().hex[:8]}
namespace: tests.mqtt
tasks:
  - id: show
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.payload }}}}"
triggers:
  - id: watch
    type: io.kestra.plugin.mqtt.RealtimeTrigger
    server: {broker}
    topic: {topic}
    serdeType: STRING
""").flow
        state = TriggerState.objects.select_related("flow").get(flow=flow)
        spec = event_spec(state)
        source = open_source(state, spec, threading.Event())
        assert source.receive(0.3) == []
        publish(broker, topic, ["hot"])
        events = receive_all(source, 1)
        from flows_app.triggers.event_starts import start_event

        assert start_event(state, spec, events[0]) is not None
        source.close()  # killed before the acknowledgement
        again = open_source(state, spec, threading.Event())
        redelivered = receive_all(again, 1, rounds=4)
        handle(state, spec, again, redelivered)
        again.close()
    assert Execution.objects.filter(flow=flow).count() == 1
    assert Execution.objects.get(flow=flow).trigger["payload"] == "hot"
    check = MqttRealtimeSource(dict(spec.properties), context(flow.flow_id))
    assert check.receive(0.5) == [], "the re-delivery was acknowledged"
    check.close()


@pytest.mark.django_db(transaction=True)
def test_the_publish_task_feeds_a_realtime_trigger(run_flow, tmp_path, broker, topic):
    name = f"flow{uuid.uuid4().hex[:8]}"
    source = MqttRealtimeSource({"server": broker, "topic": topic}, context(name))
    try:
        assert source.receive(0.3) == []
        path = tmp_path / "publish.yml"
        path.write_text(f"""id: publish
namespace: tests.mqtt
tasks:
  - id: publish
    type: io.kestra.plugin.mqtt.Publish
    server: {broker}
    topic: {topic}
    from:
      - {{"temperature": 21}}
      - {{"temperature": 22}}
""")
        outcome = run_flow(path)
        assert outcome.execution.state == "SUCCESS", outcome.summary
        assert outcome.execution.task_runs.get(task_id="publish").outputs["messagesCount"] == 2
        events = receive_all(source, 2)
        assert [e.variables["payload"] for e in events] == [{"temperature": 21}, {"temperature": 22}]
        source.ack(events)
    finally:
        source.close()
