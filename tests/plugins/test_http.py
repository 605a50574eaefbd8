"""HTTP Request and Download against a real HTTP server on this machine."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flows_app.models import LogEntry

pytestmark = pytest.mark.django_db(transaction=True)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def _reply(self, code: int, body: bytes, content_type: str = "application/json"):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("X-Test", "yes")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/items":
            self._reply(200, b'{"items": [1, 2, 3]}')
        elif self.path == "/data.csv":
            self._reply(200, b"a,b\n1,2\n", "text/csv")
        elif self.path == "/private":
            expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()
            self._reply(200 if self.headers.get("Authorization") == expected else 401, b"{}")
        else:
            self._reply(404, b'{"error": "not found"}')

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        received = self.rfile.read(length).decode()
        self._reply(201, json.dumps({"got": received, "type": self.headers.get("Content-Type")}).encode())


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def flow_file(tmp_path, body: str):
    path = tmp_path / "http.yml"
    path.write_text("id: http\nnamespace: tests.http\ntasks:\n" + body)
    return path


def runs(execution):
    return {r.task_id: r for r in execution.task_runs.all()}


def test_requests_give_code_headers_and_body_and_send_json_form_and_basic_auth(run_flow, tmp_path, server):
    execution = run_flow(
        flow_file(
            tmp_path,
            f"""  - id: get
    type: io.kestra.plugin.core.http.Request
    uri: {server}/items
  - id: post
    type: io.kestra.plugin.fs.http.Request
    uri: {server}/items
    method: POST
    body:
      name: "{{{{ outputs.get.code }}}}"
  - id: form
    type: io.kestra.plugin.core.http.Request
    uri: {server}/items
    method: POST
    formData:
      user: alice
  - id: private
    type: io.kestra.plugin.core.http.Request
    uri: {server}/private
    options:
      auth:
        type: BASIC
        username: alice
        password: s3cret
  - id: use
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ outputs.get.body | jsonpath('$.items[2]') }}}}"
""",
        )
    ).execution
    by_task = runs(execution)
    assert execution.state == "SUCCESS"
    assert by_task["get"].outputs["code"] == 200 and by_task["get"].outputs["headers"]["x-test"] == ["yes"]
    assert json.loads(by_task["post"].outputs["body"]) == {"got": '{"name":"200"}', "type": "application/json"}
    assert json.loads(by_task["form"].outputs["body"])["got"] == "user=alice"
    assert by_task["private"].outputs["code"] == 200
    assert by_task["use"].outputs == {"value": "3"}


def test_an_error_status_fails_the_task_unless_allowed(run_flow, tmp_path, server):
    execution = run_flow(
        flow_file(
            tmp_path,
            f"""  - id: tolerated
    type: io.kestra.plugin.core.http.Request
    uri: {server}/missing
    allowFailed: true
  - id: missing
    type: io.kestra.plugin.core.http.Request
    uri: {server}/missing
""",
        )
    ).execution
    by_task = runs(execution)
    assert by_task["tolerated"].state == "SUCCESS" and by_task["tolerated"].outputs["code"] == 404
    assert by_task["missing"].state == "FAILED" and by_task["missing"].outputs["code"] == 404
    assert LogEntry.objects.filter(task_id="missing", level="ERROR", message__contains="answered 404").exists()


def test_a_download_lands_in_internal_storage_and_read_gets_it_back(run_flow, tmp_path, server):
    execution = run_flow(
        flow_file(
            tmp_path,
            f"""  - id: fetch
    type: io.kestra.plugin.core.http.Download
    uri: {server}/data.csv
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ read(outputs.fetch.uri) | trim }}}}"
  - id: broken
    type: io.kestra.plugin.core.http.Download
    uri: {server}/nothing.csv
""",
        )
    ).execution
    by_task = runs(execution)
    fetch = by_task["fetch"].outputs
    assert fetch["uri"].startswith("kestra:///tests/http/http/executions/") and fetch["uri"].endswith("/data.csv")
    assert fetch["length"] == 8 and fetch["code"] == 200
    assert by_task["show"].outputs == {"value": "a,b\n1,2"}
    assert by_task["broken"].state == "FAILED" and execution.state == "FAILED"


def test_a_refused_connection_fails_with_a_clear_message(run_flow, tmp_path):
    execution = run_flow(
        flow_file(
            tmp_path,
            """  - id: nobody
    type: io.kestra.plugin.core.http.Request
    uri: http://127.0.0.1:9/
""",
        )
    ).execution
    assert execution.state == "FAILED"
    [message] = LogEntry.objects.filter(task_id="nobody", level="ERROR").values_list("message", flat=True)
    assert message.startswith("GET http://127.0.0.1:9/:")
