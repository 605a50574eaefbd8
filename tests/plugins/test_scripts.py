"""Python and Node script tasks, and script files through internal storage, through the real services."""

from __future__ import annotations

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flows_app.models import LogEntry
from flows_app.services.storage import storage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def own_storage(settings, tmp_path):
    settings.TERN = {**settings.TERN, "STORAGE_DIR": tmp_path / "storage"}


class CsvHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        body = b"name,n\nada,1\ngrace,2\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), CsvHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


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


def test_python_stderr_is_an_error_log_and_only_the_exit_code_fails_the_task(run_flow, tmp_path):
    flow = tmp_path / "stderr.yml"
    flow.write_text("""id: stderr
namespace: tests.scripts
tasks:
  - id: noisy
    type: io.kestra.plugin.scripts.python.Script
    script: |
      import sys
      print("to stdout")
      print("to stderr", file=sys.stderr)
  - id: old-style
    type: io.kestra.plugin.scripts.python.Script
    warningOnStdErr: true
    script: |
      import sys
      print("to stderr", file=sys.stderr)
  - id: broken
    type: io.kestra.plugin.scripts.python.Script
    script: raise ValueError("bad value")
""")
    execution = run_flow(flow).execution
    by_task = runs(execution)
    assert by_task["noisy"].state == "SUCCESS"  # Kestra 0.23 on: stderr alone makes no WARNING

    def lines(task_id, level):
        return list(execution.logs.filter(task_id=task_id, level=level).values_list("message", flat=True))

    assert lines("noisy", "INFO") == ["to stdout"] and lines("noisy", "ERROR") == ["to stderr"]
    assert by_task["old-style"].state == "WARNING"  # warningOnStdErr: true, written out
    assert by_task["broken"].state == "FAILED"
    assert "ValueError: bad value" in lines("broken", "ERROR")  # the traceback's last line, from stderr


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed on this machine")
def test_node_script_sets_outputs(run_flow, tmp_path):
    flow = tmp_path / "node.yml"
    flow.write_text(
        "id: node\nnamespace: tests.scripts\ntasks:\n  - id: js\n"
        "    type: io.kestra.plugin.scripts.node.Script\n    script: |\n"
        "      console.log('::' + JSON.stringify({outputs: {answer: 40 + 2}}) + '::');\n"
    )
    execution = run_flow(flow).execution
    assert runs(execution)["js"].outputs == {"exitCode": 0, "vars": {"answer": 42}}


# ---- files through internal storage -----------------------------------------------------------------


def test_a_script_output_file_is_read_by_a_later_task_with_read_and_as_an_input_file(run_flow, tmp_path):
    flow = tmp_path / "files.yml"
    flow.write_text("""id: files
namespace: tests.scripts
tasks:
  - id: a
    type: io.kestra.plugin.scripts.python.Script
    outputFiles: ["*.txt"]
    script: |
      open("x.txt", "w").write("made by a\\n")
  - id: b
    type: io.kestra.plugin.scripts.shell.Commands
    inputFiles:
      x.txt: "{{ outputs.a.outputFiles['x.txt'] }}"
    commands:
      - echo "read {{ read(outputs.a.outputFiles['x.txt']) | trim }}"
      - echo "cat $(cat x.txt)"
""")
    execution = run_flow(flow).execution
    by_task = runs(execution)
    assert execution.state == "SUCCESS", [(e.task_id, e.message) for e in execution.logs.filter(level="ERROR")]
    uri = by_task["a"].outputs["outputFiles"]["x.txt"]
    assert uri.startswith("kestra:///tests/scripts/files/executions/")
    assert storage().path_of(uri).parent.name == by_task["a"].id  # under the task run's own storage folder
    lines = list(execution.logs.filter(task_id="b", level="INFO").values_list("message", flat=True))
    assert lines == ["read made by a", "cat made by a"]


def test_a_downloaded_file_is_an_input_file_of_a_script(run_flow, tmp_path, server):
    flow = tmp_path / "download.yml"
    flow.write_text(
        """id: download
namespace: tests.scripts
tasks:
  - id: dl
    type: io.kestra.plugin.core.http.Download
    uri: SERVER/data.csv
  - id: count
    type: io.kestra.plugin.scripts.python.Script
    inputFiles:
      data.csv: "{{ outputs.dl.uri }}"
    script: |
      import csv, json
      rows = list(csv.DictReader(open("data.csv")))
      print("::" + json.dumps({"outputs": {"names": [r["name"] for r in rows]}}) + "::")
""".replace("SERVER", server)
    )
    execution = run_flow(flow).execution
    assert execution.state == "SUCCESS"
    assert runs(execution)["count"].outputs["vars"] == {"names": ["ada", "grace"]}


def test_a_missing_storage_file_in_input_files_fails_the_task_naming_the_file(run_flow, tmp_path):
    flow = tmp_path / "missing.yml"
    flow.write_text("""id: missing
namespace: tests.scripts
tasks:
  - id: use
    type: io.kestra.plugin.scripts.shell.Commands
    inputFiles:
      data.csv: kestra:///tests/scripts/nowhere/data.csv
    commands:
      - cat data.csv
""")
    execution = run_flow(flow).execution
    assert execution.state == "FAILED" and runs(execution)["use"].state == "FAILED"
    assert list(LogEntry.objects.filter(task_id="use", level="ERROR").values_list("message", flat=True)) == [
        "inputFiles: 'data.csv' cannot be copied from internal storage: "
        "'kestra:///tests/scripts/nowhere/data.csv': no such file in the internal storage"
    ]
