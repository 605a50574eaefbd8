"""The KV store: Set, Get and Delete tasks, a time to live, and `kv()` in templates."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from flows_app.models import KVEntry
from flows_app.services import kv

pytestmark = pytest.mark.django_db(transaction=True)

FLOW = """id: kv-flow
namespace: tests.kv
tasks:
  - id: set
    type: io.kestra.plugin.core.kv.Set
    key: answer
    value:
      n: 42
  - id: read
    type: io.kestra.plugin.core.debug.Return
    format: "{{ kv('answer').n }}/{{ kv('nope') ?? 'none' }}"
  - id: get
    type: io.kestra.plugin.core.kv.Get
    key: answer
  - id: delete
    type: io.kestra.plugin.core.kv.Delete
    key: answer
  - id: strict
    type: io.kestra.plugin.core.kv.Get
    key: answer
    errorOnMissing: true
"""


def test_tasks_and_templates_share_the_namespaced_store(run_flow, tmp_path):
    flow = tmp_path / "kv.yml"
    flow.write_text(FLOW)
    execution = run_flow(flow).execution
    by_task = {r.task_id: r for r in execution.task_runs.all()}
    assert by_task["read"].outputs == {"value": "42/none"}
    assert by_task["get"].outputs == {"value": {"n": 42}}
    assert by_task["delete"].outputs == {"deleted": True}
    assert by_task["strict"].state == "FAILED" and execution.state == "FAILED"
    assert not KVEntry.objects.exists()


def test_a_value_with_a_ttl_is_gone_after_it():
    kv.put("tests.kv", "temp", "x", ttl=timedelta(minutes=5))
    assert kv.get("tests.kv", "temp") == "x"
    assert kv.get("other.namespace", "temp") is None
    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        assert kv.get("tests.kv", "temp") is None
        with pytest.raises(kv.KeyMissing):
            kv.get("tests.kv", "temp", error_on_missing=True)


def test_overwrite_false_keeps_the_first_value():
    kv.put("tests.kv", "once", 1)
    with pytest.raises(kv.KeyMissing):
        kv.put("tests.kv", "once", 2, overwrite=False)
    assert kv.get("tests.kv", "once") == 1
