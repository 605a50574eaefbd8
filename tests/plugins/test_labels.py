"""The Labels task sets labels on its execution, from a map, a list or JSON."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_labels_from_a_map_a_list_and_json_are_merged_into_the_execution(run_flow, tmp_path):
    flow = tmp_path / "labels.yml"
    flow.write_text("""id: labels
namespace: tests.labels
labels:
  team: data
  stage: draft
inputs:
  - id: extra
    type: JSON
tasks:
  - id: from-json
    type: io.kestra.plugin.core.execution.Labels
    labels: "{{ inputs.extra }}"
  - id: from-list
    type: io.kestra.core.tasks.executions.Labels
    labels:
      - key: "{{ flow.id }}-key"
        value: 42
  - id: from-map
    type: io.kestra.plugin.core.execution.Labels
    labels:
      stage: final
      ok: true
""")
    execution = run_flow(flow, {"extra": '{"source": "json"}'}).execution
    assert execution.state == "SUCCESS"
    assert execution.labels == {
        "team": "data",
        "stage": "final",
        "source": "json",
        "labels-key": "42",
        "ok": "true",
        "system.correlationId": execution.id,
    }


def test_a_reserved_label_fails_the_task_and_the_system_labels_stay(run_flow, tmp_path):
    flow = tmp_path / "reserved.yml"
    flow.write_text(
        "id: reserved\nnamespace: tests.labels\ntasks:\n  - id: bad\n"
        "    type: io.kestra.plugin.core.execution.Labels\n"
        "    labels:\n      system.correlationId: forged\n"
    )
    execution = run_flow(flow).execution
    assert execution.state == "FAILED" and execution.labels == {"system.correlationId": execution.id}
