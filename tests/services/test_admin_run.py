"""Running a flow with inputs from the admin: the form built from its inputs, errors shown in place, permissions."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from flows_app import dispatch
from flows_app.engine.inputs import InputsError
from flows_app.forms import inputs_form, parse_labels
from flows_app.models import Execution
from flows_app.services.flows import save_flow, spec_of
from flows_app.services.storage import storage

from .test_flows_and_state import Recorder

TASKS = """tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: hi
"""

EVERY_TYPE = (
    """id: every-type
namespace: tests.admin
description: Every kind of input
labels:
  team: core
inputs:
  - id: name
    type: STRING
    displayName: Who to greet
    description: A name, or a planet
    defaults: world
  - id: count
    type: INT
    defaults: 3
    max: 100
  - id: ratio
    type: FLOAT
    required: false
  - id: verbose
    type: BOOLEAN
    defaults: false
  - id: size
    type: ENUM
    values: [S, M, L]
    defaults: M
  - id: colours
    type: MULTISELECT
    values: [red, green, blue]
    required: false
  - id: when
    type: DATETIME
    required: false
  - id: day
    type: DATE
    defaults: 2024-01-31
  - id: config
    type: JSON
    required: false
  - id: numbers
    type: ARRAY
    itemType: INT
    required: false
  - id: token
    type: SECRET
    defaults: s3cret
  - id: report
    type: FILE
    required: false
    acceptedExtensions: [.csv]
"""
    + TASKS
)

NEEDS_N = (
    """id: needs-n
namespace: tests.admin
inputs:
  - id: n
    type: INT
"""
    + TASKS
)

NO_INPUTS = (
    """id: no-inputs
namespace: tests.admin
"""
    + TASKS
)


def run_url(flow):
    return reverse("admin:flows_app_flow_run", args=[flow.pk])


def post_run(client, flow, data):
    with dispatch.using(Recorder()):
        return client.post(run_url(flow), data)


@pytest.fixture
def uploads(settings, tmp_path):
    settings.TERN = {**settings.TERN, "DATA_DIR": tmp_path, "STORAGE_DIR": tmp_path / "storage"}
    return tmp_path / "uploads"


@pytest.mark.django_db
def test_the_run_page_shows_a_field_per_input_with_its_default(admin_client):
    flow = save_flow(EVERY_TYPE).flow
    page = admin_client.get(run_url(flow))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Who to greet" in html and "A name, or a planet" in html and 'value="world"' in html
    assert 'name="input-count" value="3"' in html
    assert re.search(r'<input type="radio" name="input-verbose" value="false"[^>]* checked>', html)
    assert '<option value="M" selected>' in html
    assert 'type="checkbox" name="input-colours" value="blue"' in html
    assert 'placeholder="2024-01-31T12:00:00Z"' in html
    assert 'value="2024-01-31"' in html
    assert 'type="password" name="input-token"' in html and "s3cret" not in html  # a secret is not echoed
    assert 'type="file" name="input-report"' in html and 'enctype="multipart/form-data"' in html
    assert 'name="labels"' in html and "csrfmiddlewaretoken" in html


@pytest.mark.django_db
def test_a_required_boolean_with_a_default_false_can_be_submitted(admin_client):
    flow = save_flow(
        """id: flag
namespace: tests.admin
inputs:
  - id: dry
    type: BOOLEAN
    required: true
    defaults: false
"""
        + TASKS
    ).flow
    form = inputs_form(spec_of(flow.revisions.get()))(prefix="input")
    assert form.fields["dry"].initial == "false"
    page = post_run(admin_client, flow, {"input-dry": "false"})
    assert page.status_code == 302
    assert Execution.objects.get().inputs == {"dry": False}


@pytest.mark.django_db
def test_valid_values_start_an_execution_with_typed_inputs(admin_client, uploads):
    flow = save_flow(EVERY_TYPE).flow
    page = post_run(
        admin_client,
        flow,
        {
            "input-name": "Bob",
            "input-count": "41",
            "input-ratio": "0.5",
            "input-verbose": "true",
            "input-size": "L",
            "input-colours": ["red", "blue"],
            "input-when": "2024-01-31T12:00:00Z",
            "input-day": "2024-02-01",
            "input-config": '{"a": [1, 2]}',
            "input-numbers": "[1, 2]",
            "input-token": "",
            "input-report": SimpleUploadedFile("data.csv", b"a,b\n1,2\n"),
            "labels": "owner=bob\n\nticket = T-1=2\n",
        },
    )
    execution = Execution.objects.get()
    assert page.status_code == 302
    assert page["Location"] == reverse("admin:flows_app_execution_change", args=[execution.pk])
    report = execution.inputs.pop("report")
    assert execution.inputs == {
        "name": "Bob",
        "count": 41,
        "ratio": 0.5,
        "verbose": True,
        "size": "L",
        "colours": ["red", "blue"],
        "when": "2024-01-31T12:00:00Z",
        "day": "2024-02-01",
        "config": {"a": [1, 2]},
        "numbers": [1, 2],
        "token": "s3cret",  # left blank: the default the page does not show
    }
    assert report == f"kestra:///tests/admin/every-type/executions/{execution.id}/inputs/report/data.csv"
    assert storage().read(report) == "a,b\n1,2\n"
    assert list(uploads.iterdir()) == []  # the upload was copied into internal storage, then removed
    assert execution.labels == {
        "team": "core",
        "owner": "bob",
        "ticket": "T-1=2",
        "system.correlationId": execution.id,
        "system.username": "admin",
    }
    followed = admin_client.get(page["Location"])
    assert f"Execution {execution.id} of tests.admin.every-type started." in followed.content.decode()


@pytest.mark.django_db
def test_blank_fields_take_the_defaults(admin_client):
    flow = save_flow(EVERY_TYPE).flow
    post_run(
        admin_client,
        flow,
        {"input-name": "world", "input-count": "", "input-verbose": "false", "input-size": "M", "input-day": ""},
    )
    inputs = Execution.objects.get().inputs
    assert inputs["count"] == 3 and inputs["day"] == "2024-01-31" and inputs["verbose"] is False
    assert inputs["ratio"] is None and inputs["colours"] is None and inputs["report"] is None


@pytest.mark.django_db
def test_a_bad_int_is_shown_next_to_its_field_and_starts_nothing(admin_client):
    flow = save_flow(EVERY_TYPE).flow
    page = post_run(
        admin_client, flow, {"input-name": "Bob", "input-count": "x", "input-verbose": "true", "input-size": "S"}
    )
    assert page.status_code == 200 and not Execution.objects.exists()
    assert list(page.context["form"].errors) == ["count"]
    html = page.content.decode()
    assert 'value="Bob"' in html and 'value="x"' in html  # what was typed is kept


@pytest.mark.django_db
def test_what_the_service_refuses_is_shown_next_to_each_input(admin_client):
    flow = save_flow(EVERY_TYPE).flow
    page = post_run(
        admin_client,
        flow,
        {
            "input-count": "101",
            "input-config": "{oops",
            "input-numbers": '[1, "x"]',
            "input-day": "31/01/2024",
            "input-verbose": "true",
            "input-size": "S",
        },
    )
    assert page.status_code == 200 and not Execution.objects.exists()
    errors = page.context["form"].errors
    assert errors["count"] == ["'101' is more than the maximum 100"]
    assert errors["config"][0].startswith("'{oops' is not valid JSON")
    assert errors["numbers"] == ["item 1: 'x' is not an integer"]
    assert errors["day"] == ["'31/01/2024' is not a date (like 2024-01-31)"]
    assert "is more than the maximum 100" in page.content.decode()


@pytest.mark.django_db
def test_an_upload_of_a_refused_file_is_removed(admin_client, uploads):
    flow = save_flow(EVERY_TYPE).flow
    page = post_run(
        admin_client,
        flow,
        {"input-verbose": "true", "input-size": "S", "input-report": SimpleUploadedFile("data.txt", b"x")},
    )
    assert page.status_code == 200 and not Execution.objects.exists()
    assert "does not have one of the extensions .csv" in page.context["form"].errors["report"][0]
    assert list(uploads.iterdir()) == []


@pytest.mark.django_db
def test_a_required_input_left_empty_is_an_error(admin_client):
    flow = save_flow(NEEDS_N).flow
    page = post_run(admin_client, flow, {"input-n": ""})
    assert page.status_code == 200 and "n" in page.context["form"].errors
    assert not Execution.objects.exists()


@pytest.mark.django_db
def test_a_disabled_flow_is_refused_on_the_form(admin_client):
    flow = save_flow(NO_INPUTS.replace("tasks:", "disabled: true\ntasks:")).flow
    page = post_run(admin_client, flow, {})
    assert page.status_code == 200 and not Execution.objects.exists()
    assert "is disabled" in page.context["form"].non_field_errors()[0]


@pytest.mark.django_db
def test_a_bad_label_line_is_an_error(admin_client):
    flow = save_flow(NO_INPUTS).flow
    page = post_run(admin_client, flow, {"labels": "team=data\njust words"})
    assert page.status_code == 200 and not Execution.objects.exists()
    assert page.context["labels_form"].errors["labels"] == ["line 2: 'just words' is not key=value"]


def test_labels_are_key_value_lines():
    assert parse_labels("a=1\n\n b = two=2 \nc=") == {"a": "1", "b": "two=2", "c": ""}
    with pytest.raises(ValidationError) as caught:
        parse_labels("=x\na=1\na=2\nsystem.id=3")
    assert caught.value.messages == [
        "line 1: '=x' is not key=value",
        "line 3: label 'a' is given twice",
        "line 4: the `system.` prefix is reserved",
    ]


@pytest.mark.django_db
def test_each_error_line_goes_to_the_input_it_names():
    flow = save_flow(NEEDS_N.replace("  - id: n\n", "  - id: n\n    type: INT\n  - id: n.b\n")).flow
    form = inputs_form(spec_of(flow.revisions.get()))(data={"n": "1", "n.b": "2"})
    assert form.is_valid()
    form.show_errors(InputsError(["inputs.n.b: 'x' is not an integer", "inputs.n[2]: bad", "something else"]))
    assert form.errors["n.b"] == ["'x' is not an integer"]
    assert form.errors["n"] == ["item 2: bad"]
    assert form.non_field_errors() == ["something else"]


@pytest.mark.django_db
def test_the_run_page_is_linked_from_the_list_and_the_flow_page(admin_client):
    flow = save_flow(NO_INPUTS).flow
    link = f'href="{run_url(flow)}"'
    assert link in admin_client.get(reverse("admin:flows_app_flow_changelist")).content.decode()
    assert link in admin_client.get(reverse("admin:flows_app_flow_change", args=[flow.pk])).content.decode()


@pytest.mark.django_db
def test_someone_not_staff_is_sent_to_log_in(client, django_user_model):
    flow = save_flow(NO_INPUTS).flow
    client.force_login(django_user_model.objects.create_user("carol", password="x"))
    page = client.get(run_url(flow))
    assert page.status_code == 302 and page["Location"].startswith(reverse("admin:login"))


@pytest.mark.django_db
def test_bob_the_viewer_may_not_run_a_flow(client, django_user_model):
    flow = save_flow(NO_INPUTS).flow
    bob = django_user_model.objects.create_user("bob", password="x", is_staff=True)
    bob.user_permissions.add(Permission.objects.get(codename="view_flow"))
    client.force_login(bob)
    assert client.get(run_url(flow)).status_code == 403
    assert post_run(client, flow, {}).status_code == 403
    assert not Execution.objects.exists()
    listing = client.get(reverse("admin:flows_app_flow_changelist")).content.decode()
    assert run_url(flow) not in listing
    assert run_url(flow) not in client.get(reverse("admin:flows_app_flow_change", args=[flow.pk])).content.decode()


@pytest.mark.django_db
def test_alice_the_editor_may_run_a_flow(client, django_user_model):
    flow = save_flow(NO_INPUTS).flow
    alice = django_user_model.objects.create_user("alice", password="x", is_staff=True)
    alice.user_permissions.add(*Permission.objects.filter(codename__in=["view_flow", "change_flow"]))
    client.force_login(alice)
    assert client.get(run_url(flow)).status_code == 200
    assert post_run(client, flow, {}).status_code == 302 and Execution.objects.count() == 1


@pytest.mark.django_db
def test_the_list_action_sends_one_flow_with_inputs_to_its_run_page(admin_client):
    flow = save_flow(EVERY_TYPE).flow
    url = reverse("admin:flows_app_flow_changelist")
    page = admin_client.post(url, {"action": "run_flows", "_selected_action": [flow.pk]})
    assert page.status_code == 302 and page["Location"] == run_url(flow)
    assert not Execution.objects.exists()
    shown = admin_client.get(page["Location"]).content.decode()
    assert "every-type: not started: check its inputs, then press Run." in shown


@pytest.mark.django_db
def test_the_list_action_runs_several_flows_with_their_defaults(admin_client):
    plain, needy = save_flow(NO_INPUTS).flow, save_flow(NEEDS_N).flow
    url = reverse("admin:flows_app_flow_changelist")
    with dispatch.using(Recorder()):
        page = admin_client.post(url, {"action": "run_flows", "_selected_action": [plain.pk, needy.pk]}, follow=True)
    assert Execution.objects.get().flow == plain
    assert b"needs-n: not started: inputs.n: required input is missing" in page.content


FILE_FLOW = """id: file-input
namespace: tests.files
inputs:
  - id: data
    type: FILE
tasks:
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(inputs.data) | trim }}"
"""


@pytest.mark.django_db
def test_a_file_input_given_as_bytes_lands_in_storage(uploads):
    from flows_app.services.executions import start_execution

    with dispatch.using(Recorder()):
        execution = start_execution(save_flow(FILE_FLOW).flow, {"data": b"raw bytes"})
    assert storage().read(execution.inputs["data"]) == "raw bytes"
    assert execution.inputs["data"].endswith(f"/{execution.id}/inputs/data/data")


@pytest.mark.django_db
def test_a_file_input_path_outside_the_uploads_is_refused_and_nothing_is_kept(uploads, tmp_path):
    from flows_app.services.executions import start_execution

    secret = tmp_path / "secret.txt"
    secret.write_text("do not copy")
    with pytest.raises(InputsError) as refused, dispatch.using(Recorder()):
        start_execution(save_flow(FILE_FLOW).flow, {"data": str(secret)})
    assert str(refused.value) == f"inputs.data: '{secret}' cannot be read: only uploaded files are read"
    assert not Execution.objects.exists() and not list((tmp_path / "storage").rglob("*.txt"))


@pytest.mark.django_db(transaction=True)
def test_tern_flow_test_reads_a_local_file_input_and_tasks_read_it(run_flow, tmp_path, settings):
    settings.TERN = {**settings.TERN, "STORAGE_DIR": tmp_path / "storage"}
    (tmp_path / "in.csv").write_text("a,b\n")
    (tmp_path / "flow.yml").write_text(FILE_FLOW)
    outcome = run_flow(tmp_path / "flow.yml", inputs={"data": str(tmp_path / "in.csv")})
    assert outcome.execution.state == "SUCCESS"
    assert outcome.execution.task_runs.get().outputs == {"value": "a,b"}
