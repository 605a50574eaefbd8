"""/health, /metrics, the plugin catalogue and schemas, and files downloaded through their execution."""

from __future__ import annotations

import jsonschema

from flows_app.models import Execution
from flows_app.spec.yamlsource import load_plain_yaml

from .conftest import FIXTURES_VALID, HELLO, ended

UPLOAD = """\
id: upload
namespace: company.team
inputs:
  - id: data
    type: FILE
tasks:
  - id: size
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(inputs.data) }}"
"""


def test_health_answers_without_credentials_and_names_what_is_down(db, anonymous):
    answer = anonymous.client.get("/health")
    assert answer.status_code == 503  # no worker here
    assert answer.json()["checks"]["database"] == "UP"
    assert answer.json()["checks"]["workers"] == "DOWN"


def test_health_is_up_with_a_worker(worker, anonymous):
    answer = anonymous.client.get("/health")
    assert answer.status_code == 200, answer.content
    assert answer.json() == {"status": "UP", "checks": {"database": "UP", "redis": "UP", "workers": "UP"}}


def test_metrics_count_executions_by_state_and_need_credentials(worker, alice, carol, anonymous):
    alice.save_flow(HELLO)
    done = alice.post("executions/company.team/hello?wait=true").json()
    assert done["state"]["current"] == "SUCCESS"
    assert anonymous.client.get("/metrics").status_code == 401
    text = alice.client.get("/metrics").content.decode()
    assert 'tern_executions{flow_id="hello",namespace="company.team",state="SUCCESS"} 1.0' in text
    assert "tern_workers_alive 1.0" in text
    assert 'tern_task_run_duration_seconds{quantile="0.5"}' in text
    assert "company.team" not in carol.client.get("/metrics").content.decode()  # what she may not see


def test_the_plugin_catalogue_and_the_flow_schema_an_editor_needs(alice):
    listed = alice.client.get("/api/v1/plugins").json()
    types = {task["cls"] for group in listed for task in group["tasks"]}
    assert "io.kestra.plugin.core.log.Log" in types
    log = alice.client.get("/api/v1/plugins/io.kestra.core.tasks.log.Log").json()  # a seed-era name
    assert "message" in log["schema"]["properties"]["properties"]
    assert alice.client.get("/api/v1/plugins/io.nope.Nope").status_code == 404
    schema = alice.client.get("/api/v1/plugins/schemas/flow").json()
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted(FIXTURES_VALID.glob("*.yml")):
        flow = load_plain_yaml(path.read_text())  # as Tern reads YAML (`id: no` is text)
        assert not list(validator.iter_errors(flow)), path.name
    misspelled = load_plain_yaml(HELLO.replace("message: Hello", "mesage: Hello"))
    assert list(validator.iter_errors(misspelled))
    assert list(validator.iter_errors({"id": "x", "namespace": "y", "tasks": [{"id": "a", "type": "no.Such"}]}))


def test_a_file_input_is_downloaded_only_through_its_execution(worker, alice, bob):
    alice.save_flow(UPLOAD)
    alice.save_flow(HELLO)
    from django.core.files.uploadedfile import SimpleUploadedFile

    started = alice.post(
        "executions/company.team/upload?wait=true",
        {"data": SimpleUploadedFile("d.txt", b"some bytes")},
        format="multipart",
    ).json()
    assert started["state"]["current"] == "SUCCESS", started
    uri = started["inputs"]["data"]
    assert uri.startswith("kestra:///company/team/upload/executions/")
    got = bob.get(f"executions/{started['id']}/file", {"path": uri})
    assert got.status_code == 200 and b"".join(got.streaming_content) == b"some bytes"
    assert bob.get(f"executions/{started['id']}/file/metas", {"path": uri}).json() == {"size": 10}
    other = alice.post("executions/company.team/hello?wait=true").json()
    assert alice.get(f"executions/{other['id']}/file", {"path": uri}).status_code == 404  # not its file
    escape = uri.rsplit("/", 3)[0] + "/../../../../../etc/passwd"
    assert alice.get(f"executions/{started['id']}/file", {"path": escape}).status_code == 404
    assert alice.get(f"executions/{started['id']}/file", {"path": "/etc/passwd"}).status_code == 400
    assert Execution.objects.get(id=started["id"]).state == "SUCCESS"
    ended(other["id"])
