"""ForEachItem: a file from internal storage cut into batches, one subflow execution per batch."""

from __future__ import annotations

import json

import pytest

from flows_app.models import Execution, LogEntry
from flows_app.services.batches import split
from flows_app.services.storage import storage
from plugins_app.base import StartSubflowBatches

pytestmark = pytest.mark.django_db(transaction=True)

CHILD = """id: batch
namespace: tests.items
inputs:
  - id: items
    type: FILE
  - id: number
    type: INT
tasks:
  - id: check
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ read(inputs.items) contains 'bad' }}"
    errorMessage: a bad item
  - id: count
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(inputs.items) | trim }}"
outputs:
  - id: seen
    type: STRING
    value: "{{ inputs.number }}:{{ outputs.count.value | replace({'\\n': ','}) }}"
"""


def parent(batch: str, extra: str = "") -> str:
    return f"""id: parent
namespace: tests.items
inputs:
  - id: orders
    type: FILE
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{{{ inputs.orders }}}}"
    batch: {batch}
    namespace: tests.items
    flowId: batch
    inputs:
      items: "{{{{ taskrun.items }}}}"
      number: "{{{{ taskrun.iteration }}}}"
{extra}"""


@pytest.fixture
def run_items(run_flow, tmp_path, settings):
    settings.TERN = {**settings.TERN, "STORAGE_DIR": tmp_path / "storage"}
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "batch.yml").write_text(CHILD)

    def run(lines: list[str], batch: str = "{rows: 2}", extra: str = ""):
        (tmp_path / "orders.txt").write_text("".join(line + "\n" for line in lines))
        (tmp_path / "parent.yml").write_text(parent(batch, extra))
        return run_flow(
            tmp_path / "parent.yml", inputs={"orders": str(tmp_path / "orders.txt")}, flows_dir=flows
        ).execution

    return run


def test_each_batch_runs_as_a_child_execution_and_the_outputs_are_gathered(run_items):
    execution = run_items(["a", "b", "c", "d", "e"])
    each = execution.task_runs.get(task_id="each")
    assert execution.state == "SUCCESS" and each.state == "SUCCESS"
    assert each.outputs["numberOfBatches"] == 3 and each.outputs["iterations"] == {"SUCCESS": 3}
    children = Execution.objects.filter(parent=execution)
    assert sorted(c.outputs["seen"] for c in children) == ["1:a,b", "2:c,d", "3:e"]
    lines = [json.loads(line) for line in storage().read(each.outputs["uri"]).splitlines()]
    assert [(line["iteration"], line["state"], line["outputs"]) for line in lines] == [
        (1, "SUCCESS", {"seen": "1:a,b"}),
        (2, "SUCCESS", {"seen": "2:c,d"}),
        (3, "SUCCESS", {"seen": "3:e"}),
    ]
    assert all(c.parent_task_run_id == each.id for c in children)


def test_a_failed_batch_fails_the_task_when_transmit_failed(run_items):
    execution = run_items(["ok", "bad", "ok"], batch="{rows: 1}")
    each = execution.task_runs.get(task_id="each")
    assert execution.state == "FAILED" and each.state == "FAILED"
    assert each.outputs["iterations"] == {"SUCCESS": 2, "FAILED": 1}


def test_without_transmit_failed_the_task_succeeds_anyway(run_items):
    execution = run_items(["ok", "bad"], batch="{rows: 1}", extra="    transmitFailed: false\n")
    assert execution.state == "SUCCESS"
    assert execution.task_runs.get(task_id="each").outputs["iterations"] == {"SUCCESS": 1, "FAILED": 1}


def test_partitions_spread_the_items_evenly(run_items):
    execution = run_items([str(n) for n in range(7)], batch="{partitions: 3}")
    assert sorted(c.outputs["seen"] for c in Execution.objects.filter(parent=execution)) == [
        "1:0,1,2",
        "2:3,4",
        "3:5,6",
    ]


def test_an_empty_file_has_no_batches_and_succeeds(run_items):
    execution = run_items([])
    each = execution.task_runs.get(task_id="each")
    assert execution.state == "SUCCESS" and each.outputs["numberOfBatches"] == 0
    assert not Execution.objects.filter(parent=execution).exists()


def test_items_that_are_not_a_storage_uri_fail_with_the_reason(run_flow, tmp_path, settings):
    (tmp_path / "flow.yml").write_text("""id: not-a-file
namespace: tests.items
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: /etc/passwd
    namespace: tests.items
    flowId: batch
""")
    execution = run_flow(tmp_path / "flow.yml").execution
    assert execution.state == "FAILED"
    assert LogEntry.objects.filter(
        level="ERROR", message__contains="'/etc/passwd' is not an internal storage URI"
    ).exists()


def test_a_missing_subflow_fails_the_task_naming_it(run_items, tmp_path):
    (tmp_path / "flows" / "batch.yml").unlink()
    execution = run_items(["a"])
    assert execution.state == "FAILED"
    assert LogEntry.objects.filter(level="ERROR", message__contains="subflow tests.items.batch: no such flow").exists()


@pytest.mark.django_db(transaction=False)
def test_split_cuts_by_size_and_by_separator_without_reading_all_at_once(tmp_path, monkeypatch):
    import flows_app.services.batches as batches

    monkeypatch.setattr(batches, "READ_BLOCK", 3)  # items straddle the blocks read
    path = tmp_path / "items"
    path.write_bytes(b"alpha;beta;gamma;delta;")
    by_size = StartSubflowBatches(namespace="n", flow_id="f", size=10, separator=";")
    assert list(split(path, by_size)) == [b"alpha;beta;", b"gamma;delta;"]
    by_rows = StartSubflowBatches(namespace="n", flow_id="f", rows=3, separator=";")
    assert list(split(path, by_rows)) == [b"alpha;beta;gamma;", b"delta;"]
