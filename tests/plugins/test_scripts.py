"""Python and Node script tasks: the shell machinery with another interpreter, through the real services."""
from __future__ import annotations

import shutil

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def runs(execution):
    return {r.task_id: r for r in execution.task_runs.all()}


def test_python_script_and_commands_set_outputs_and_fail_on_errors(run_flow, tmp_path):
    flow = tmp_path / "python.yml"
    flow.write_text("""id: python
namespace: tests.scripts
tasks:
  - id: script
    type: io.kestra.plugin.scripts.python.Script
    env:
      FACTOR: "6"
    script: |
      import json, os
      print("computing")
      print("::" + json.dumps({"outputs": {"answer": int(os.environ["FACTOR"]) * 7}}) + "::")
  - id: commands
    type: io.kestra.plugin.scripts.python.Commands
    commands:
      - python3 -c "print({{ outputs.script.vars.answer }} + 1)"
  - id: broken
    type: io.kestra.plugin.scripts.python.Script
    script: raise SystemExit(4)
""")
    execution = run_flow(flow).execution
    by_task = runs(execution)
    assert by_task["script"].outputs == {"exitCode": 0, "vars": {"answer": 42}}
    assert by_task["commands"].state == "SUCCESS"
    assert execution.logs.filter(task_id="commands", message="43").exists()
    assert by_task["broken"].state == "FAILED" and by_task["broken"].outputs["exitCode"] == 4


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed on this machine")
def test_node_script_sets_outputs(run_flow, tmp_path):
    flow = tmp_path / "node.yml"
    flow.write_text("id: node\nnamespace: tests.scripts\ntasks:\n  - id: js\n"
                    "    type: io.kestra.plugin.scripts.node.Script\n    script: |\n"
                    "      console.log('::' + JSON.stringify({outputs: {answer: 40 + 2}}) + '::');\n")
    execution = run_flow(flow).execution
    assert runs(execution)["js"].outputs == {"exitCode": 0, "vars": {"answer": 42}}
