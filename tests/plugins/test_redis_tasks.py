"""Redis ListPush, ListPop and Publish in flows against a real Redis: ListPush feeds a list RealtimeTrigger
(through the trigger runner's own steps, so the execution it starts carries `trigger.value`), ListPop empties a
list into a file, Publish reaches a listening subscriber."""

from __future__ import annotations

import json
import threading
import uuid

import pytest

from flows_app import dispatch
from flows_app.models import Execution, TriggerState
from flows_app.services.flows import save_flow
from flows_app.services.storage import storage
from flows_app.triggers.runner import event_spec, handle, open_source
from tests.services.test_flows_and_state import Recorder
from tests.sources.test_redis import client, key, url  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


def flow_file(tmp_path, body: str):
    path = tmp_path / "redis.yml"
    path.write_text("id: redis\nnamespace: tests.redis\ntasks:\n" + body)
    return path


def test_list_push_feeds_a_realtime_trigger_whose_execution_has_the_value(run_flow, tmp_path, url, key):  # noqa: F811
    pushed = run_flow(
        flow_file(
            tmp_path,
            f"""  - id: push
    type: io.kestra.plugin.redis.list.ListPush
    url: {url}
    key: {key}
    serdeType: JSON
    from:
      - {{"product_id": 1}}
""",
        )
    )
    assert pushed.execution.state == "SUCCESS", pushed.summary
    with dispatch.using(Recorder()):
        flow = save_flow(f"""id: products
namespace: tests.redis
tasks:
  - id: show
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.value.product_id }}}}"
triggers:
  - id: list
    type: io.kestra.plugin.redis.list.RealtimeTrigger
    url: {url}
    key: {key}
    serdeType: JSON
""").flow
        state = TriggerState.objects.select_related("flow").get(flow=flow)
        spec = event_spec(state)
        source = open_source(state, spec, threading.Event())
        try:
            handle(state, spec, source, source.receive(2.0))
        finally:
            source.close()
    (execution,) = Execution.objects.filter(flow=flow)
    assert execution.trigger["value"] == {"product_id": 1} and execution.trigger["id"] == "list"


def test_list_pop_empties_a_list_into_a_file(run_flow, tmp_path, url, client, key):  # noqa: F811
    client.lpush(key, "x", "y", "z")
    outcome = run_flow(
        flow_file(
            tmp_path,
            f"""  - id: pop
    type: io.kestra.plugin.redis.list.ListPop
    url: {url}
    key: {key}
    maxRecords: 10
""",
        )
    )
    assert outcome.execution.state == "SUCCESS", outcome.summary
    outputs = outcome.execution.task_runs.get(task_id="pop").outputs
    assert outputs["count"] == 3
    lines = storage().path_of(outputs["uri"]).read_text().splitlines()
    assert [json.loads(line) for line in lines] == ["z", "y", "x"], "from the head, as Kestra's LPOP"
    assert client.llen(key) == 0


def test_list_pop_without_a_bound_is_refused(run_flow, tmp_path, url, key):  # noqa: F811
    outcome = run_flow(
        flow_file(
            tmp_path, f"  - id: pop\n    type: io.kestra.plugin.redis.list.ListPop\n    url: {url}\n    key: {key}\n"
        )
    )
    assert outcome.execution.state == "FAILED"


def test_publish_reaches_a_subscriber(run_flow, tmp_path, url, client):  # noqa: F811
    channel = f"tern-test-{uuid.uuid4().hex}"
    subscriber = client.pubsub()
    subscriber.subscribe(channel)
    assert subscriber.get_message(timeout=2)["type"] == "subscribe"
    outcome = run_flow(
        flow_file(
            tmp_path,
            f"""  - id: publish
    type: io.kestra.plugin.redis.pubsub.Publish
    url: {url}
    channel: {channel}
    from: [first, second]
""",
        )
    )
    assert outcome.execution.state == "SUCCESS", outcome.summary
    assert outcome.execution.task_runs.get(task_id="publish").outputs["count"] == 2
    got = [subscriber.get_message(timeout=2) for _ in range(2)]
    assert [m["data"] for m in got] == [b"first", b"second"]
    subscriber.close()
