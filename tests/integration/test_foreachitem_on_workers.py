"""ForEachItem through real workers: each batch's child execution runs on them, the parent waits for all."""

from __future__ import annotations

from flows_app.models import Execution
from flows_app.services.executions import start_execution
from flows_app.services.flows import save_flow

from .test_celery_runtime import wait_ended

CHILD = """id: line
namespace: tests.workers
inputs:
  - id: items
    type: FILE
tasks:
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(inputs.items) }}"
outputs:
  - id: items
    type: STRING
    value: "{{ outputs.echo.value }}"
"""

PARENT = """id: lines
namespace: tests.workers
inputs:
  - id: data
    type: FILE
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{ inputs.data }}"
    batch:
      rows: 3
    namespace: tests.workers
    flowId: line
    inputs:
      items: "{{ taskrun.items }}"
  - id: total
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.each.iterations.SUCCESS }} of {{ outputs.each.numberOfBatches }}"
"""


def test_each_batch_runs_as_a_child_execution_on_the_workers(celery_runtime, settings, tmp_path):
    settings.TERN = {**settings.TERN, "STORAGE_DIR": tmp_path / "storage"}
    celery_runtime.extra_env["TERN_STORAGE_DIR"] = str(tmp_path / "storage")
    celery_runtime.start(concurrency=4)
    save_flow(CHILD)
    data = "".join(f"item {n}\n" for n in range(10)).encode()
    execution = wait_ended(start_execution(save_flow(PARENT).flow, {"data": data}), timeout=60)
    assert execution.state == "SUCCESS"
    assert execution.task_runs.get(task_id="total").outputs == {"value": "4 of 4"}
    children = Execution.objects.filter(parent=execution)
    assert sorted(c.outputs["items"] for c in children) == [
        "item 0\nitem 1\nitem 2\n",
        "item 3\nitem 4\nitem 5\n",
        "item 6\nitem 7\nitem 8\n",
        "item 9\n",
    ]
    assert {c.state for c in children} == {"SUCCESS"}
