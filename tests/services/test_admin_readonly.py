"""An admin that cannot corrupt state: service rows are read-only, deletes and KV writes go through the services,
descriptions render as safe Markdown."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from flows_app.models import Execution, FlowRevision, KVEntry, LogEntry, TaskRun
from flows_app.services import kv
from flows_app.services.deletion import NotEnded, delete_execution
from flows_app.services.flows import save_flow
from flows_app.services.storage import StorageError, execution_parts, storage

FLOW = """id: hello
namespace: tests.admin
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


@pytest.fixture(autouse=True)
def places(settings, tmp_path):
    settings.TERN = {**settings.TERN, "STORAGE_DIR": tmp_path / "storage", "WORK_DIR": tmp_path / "work"}


def an_execution(state="SUCCESS", parent=None) -> Execution:
    """An execution as a worker leaves it: a parent run with a child, a log line, a stored file."""
    flow = save_flow(FLOW).flow
    execution = Execution.objects.create(flow=flow, flow_revision=flow.revisions.get(), state=state, parent=parent)
    loop = TaskRun.objects.create(execution=execution, task_id="loop", state=state)
    TaskRun.objects.create(execution=execution, task_id="a", parent=loop, state=state, order=1)
    LogEntry.objects.create(
        execution=execution, task_id="a", level="INFO", message="hello from a", timestamp=timezone.now()
    )
    storage().put(execution_parts("tests.admin", "hello", execution.id), "out.txt", b"data")
    return execution


def stored_file(execution: Execution) -> str:
    return f"kestra:///tests/admin/hello/executions/{execution.id}/out.txt"


def change_url(model: str, pk) -> str:
    return reverse(f"admin:flows_app_{model}_change", args=[pk])


def staff(django_user_model, name: str, *codenames: str):
    user = django_user_model.objects.create_user(name, password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


# --- read-only rows ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_superuser_posting_a_change_to_a_service_row_changes_nothing(admin_client):
    execution = an_execution("RUNNING")
    child = execution.task_runs.get(task_id="a")
    posts = [
        (change_url("execution", execution.pk), {"state": "SUCCESS", "outputs": "{}"}),
        (change_url("taskrun", child.pk), {"state": "SUCCESS", "parent": "", "task_id": "b"}),
        (change_url("logentry", execution.logs.get().pk), {"message": "rewritten", "level": "ERROR"}),
        (change_url("flowrevision", execution.flow_revision.pk), {"source": "id: other", "revision": "9"}),
    ]
    for url, data in posts:
        assert admin_client.post(url, data).status_code == 403, url
    child.refresh_from_db()
    assert (child.state, child.parent_id, child.task_id) == ("RUNNING", execution.task_runs.get(task_id="loop").pk, "a")
    assert Execution.objects.get().state == "RUNNING"
    assert LogEntry.objects.get().message == "hello from a"
    assert FlowRevision.objects.get().source == FLOW


@pytest.mark.django_db
def test_the_change_pages_show_everything_with_no_field_to_edit_and_no_save(admin_client):
    execution = an_execution("RUNNING")
    child = execution.task_runs.get(task_id="a")
    urls = (
        change_url("execution", execution.pk),
        change_url("taskrun", child.pk),
        change_url("logentry", execution.logs.get().pk),
        change_url("flowrevision", execution.flow_revision.pk),
    )
    for url in urls:
        page = admin_client.get(url)
        html = page.content.decode()
        assert page.status_code == 200, url
        assert "<select" not in html and "<textarea" not in html and 'name="_save"' not in html, url
    task_run_page = admin_client.get(change_url("taskrun", child.pk)).content.decode()
    assert 'name="parent"' not in task_run_page and f'href="{change_url("taskrun", child.parent_id)}"' in task_run_page
    execution_page = admin_client.get(change_url("execution", execution.pk)).content.decode()
    assert "hello from a" in execution_page and "loop" in execution_page  # the logs and task runs inlines


@pytest.mark.django_db
def test_nothing_is_added_by_hand(admin_client):
    for model in ("execution", "taskrun", "logentry", "flowrevision", "flow"):
        assert admin_client.get(reverse(f"admin:flows_app_{model}_add")).status_code == 403, model


@pytest.mark.django_db
def test_task_runs_logs_revisions_and_flows_are_not_deleted_on_their_own(admin_client):
    execution = an_execution()
    for model, pk in (
        ("taskrun", execution.task_runs.first().pk),
        ("logentry", execution.logs.get().pk),
        ("flowrevision", execution.flow_revision.pk),
        ("flow", execution.flow.pk),
    ):
        page = admin_client.post(reverse(f"admin:flows_app_{model}_delete", args=[pk]), {"post": "yes"})
        assert page.status_code == 403, model
    assert TaskRun.objects.count() == 2 and LogEntry.objects.count() == 1 and Execution.objects.count() == 1


# --- killing --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_alice_the_editor_kills_an_execution_from_the_list(client, django_user_model):
    execution = an_execution("RUNNING")
    client.force_login(staff(django_user_model, "alice", "view_execution", "change_execution"))
    page = client.post(
        reverse("admin:flows_app_execution_changelist"),
        {"action": "kill_executions", "_selected_action": [execution.pk]},
        follow=True,
    )
    assert b"1 execution(s) asked to stop" in page.content
    assert Execution.objects.get().state == "KILLING"


@pytest.mark.django_db
def test_bob_the_viewer_reads_an_execution_but_may_not_kill_it(client, django_user_model):
    execution = an_execution("RUNNING")
    client.force_login(staff(django_user_model, "bob", "view_execution", "view_taskrun", "view_logentry"))
    assert client.get(change_url("execution", execution.pk)).status_code == 200
    listing = client.get(reverse("admin:flows_app_execution_changelist")).content.decode()
    assert "kill_executions" not in listing
    client.post(
        reverse("admin:flows_app_execution_changelist"),
        {"action": "kill_executions", "_selected_action": [execution.pk]},
    )
    assert Execution.objects.get().state == "RUNNING"


# --- deleting -------------------------------------------------------------------------------------


def delete_url(execution: Execution) -> str:
    return reverse("admin:flows_app_execution_delete", args=[execution.pk])


@pytest.mark.django_db
def test_deleting_an_ended_execution_takes_its_task_runs_logs_and_files(
    admin_client, settings, django_capture_on_commit_callbacks
):
    execution = an_execution("FAILED")
    leftover = settings.TERN["WORK_DIR"] / execution.id / "run-1"
    leftover.mkdir(parents=True)
    (leftover / "scratch.txt").write_text("x")
    confirm = admin_client.get(delete_url(execution))
    assert confirm.status_code == 200 and dict(confirm.context["model_count"]) == {
        "executions": 1,
        "task runs": 2,
        "log entries": 1,
    }
    with django_capture_on_commit_callbacks(execute=True):
        page = admin_client.post(delete_url(execution), {"post": "yes"})
    assert page.status_code == 302
    assert not Execution.objects.exists() and not TaskRun.objects.exists() and not LogEntry.objects.exists()
    with pytest.raises(StorageError):
        storage().path_of(stored_file(execution))
    assert not (settings.TERN["WORK_DIR"] / execution.id).exists()


@pytest.mark.django_db
def test_deleting_a_running_execution_is_refused_with_a_message(admin_client, django_capture_on_commit_callbacks):
    execution = an_execution("RUNNING")
    with django_capture_on_commit_callbacks(execute=True):
        page = admin_client.post(delete_url(execution), {"post": "yes"}, follow=True)
    assert page.redirect_chain == [(change_url("execution", execution.pk), 302)]
    assert f"Not deleted: execution {execution.id} (RUNNING) has not ended: kill it first" in page.content.decode()
    assert Execution.objects.count() == 1 and TaskRun.objects.count() == 2 and LogEntry.objects.count() == 1
    assert storage().read(stored_file(execution)) == "data"
    assert not page.context["user"].logentry_set.exists()  # the admin's history has no deletion either


@pytest.mark.django_db
def test_the_bulk_delete_is_all_or_nothing(admin_client, django_capture_on_commit_callbacks):
    ended, running = an_execution("SUCCESS"), an_execution("PAUSED")
    listing = reverse("admin:flows_app_execution_changelist")
    selected = {"action": "delete_selected", "_selected_action": [ended.pk, running.pk], "post": "yes"}
    with django_capture_on_commit_callbacks(execute=True):
        page = admin_client.post(listing, selected, follow=True)
    assert f"Nothing deleted: execution {running.id} (PAUSED) has not ended" in page.content.decode()
    assert Execution.objects.count() == 2 and storage().read(stored_file(ended)) == "data"

    Execution.objects.filter(pk=running.pk).update(state="KILLED")
    with django_capture_on_commit_callbacks(execute=True):
        page = admin_client.post(listing, selected, follow=True)
    assert "Successfully deleted 2 executions." in page.content.decode()
    assert not Execution.objects.exists() and not TaskRun.objects.exists()
    for execution in (ended, running):
        with pytest.raises(StorageError):
            storage().path_of(stored_file(execution))


@pytest.mark.django_db
def test_a_subflow_child_outlives_its_deleted_parent(django_capture_on_commit_callbacks):
    parent = an_execution("SUCCESS")
    child = Execution.objects.create(
        flow=parent.flow, flow_revision=parent.flow_revision, state="SUCCESS", parent=parent
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert delete_execution(parent.id)
    child.refresh_from_db()
    assert child.parent_id is None
    assert not delete_execution(parent.id)  # already gone


@pytest.mark.django_db
def test_the_service_refuses_an_execution_that_has_not_ended():
    execution = an_execution("KILLING")
    with pytest.raises(NotEnded, match="kill it first"):
        delete_execution(execution.id)
    assert Execution.objects.filter(pk=execution.pk).exists()


@pytest.mark.django_db
def test_alice_without_the_delete_permission_may_not_delete(client, django_user_model):
    execution = an_execution()
    client.force_login(staff(django_user_model, "alice", "view_execution", "change_execution"))
    assert client.post(delete_url(execution), {"post": "yes"}).status_code == 403
    assert Execution.objects.exists()


# --- the KV store -------------------------------------------------------------------------------------


def kv_form(**data):
    return {
        "namespace": "tests.kv",
        "key": "greeting",
        "value": '"hello"',
        "expires_at_0": "",
        "expires_at_1": "",
        "ttl": "",
        **data,
    }


@pytest.mark.django_db
def test_an_entry_added_in_the_admin_reads_as_a_task_reads_it(admin_client):
    page = admin_client.post(reverse("admin:flows_app_kventry_add"), kv_form(value='{"a": [1, 2]}', ttl="PT1H"))
    assert page.status_code == 302
    assert kv.get("tests.kv", "greeting") == {"a": [1, 2]}
    expires = KVEntry.objects.get().expires_at
    assert timedelta(minutes=59) < expires - timezone.now() <= timedelta(hours=1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "field, value, error",
    [
        ("value", "{oops", "Enter a valid JSON."),
        ("value", "NaN", "nan is not a JSON value"),
        ("key", "bad key", "'bad key' is not a key"),
        ("key", ".hidden", "'.hidden' is not a key"),
        ("namespace", "tests..kv", "'tests..kv' is not a namespace"),
        ("ttl", "soon", "'soon' is not a duration"),
    ],
)
def test_a_bad_entry_is_a_form_error_and_stores_nothing(admin_client, field, value, error):
    page = admin_client.post(reverse("admin:flows_app_kventry_add"), kv_form(**{field: value}))
    assert page.status_code == 200
    assert error in page.context["adminform"].form.errors[field][0]
    assert not KVEntry.objects.exists()


@pytest.mark.django_db
def test_changing_an_entry_goes_through_the_service_and_keeps_its_name(admin_client, monkeypatch):
    kv.put("tests.kv", "greeting", "hello")
    entry = KVEntry.objects.get()
    assert "&quot;hello&quot;</textarea>" in admin_client.get(change_url("kventry", entry.pk)).content.decode()
    writes, put_entry = [], kv.put_entry
    monkeypatch.setattr(kv, "put_entry", lambda *args: writes.append(args) or put_entry(*args))
    page = admin_client.post(change_url("kventry", entry.pk), kv_form(key="renamed", value="[1, 2]"))
    assert page.status_code == 302
    assert writes == [("tests.kv", "greeting", [1, 2], None)]  # the key is no field on the change page
    assert kv.get("tests.kv", "greeting") == [1, 2] and KVEntry.objects.count() == 1


@pytest.mark.django_db
def test_adding_a_key_that_exists_is_refused(admin_client):
    kv.put("tests.kv", "greeting", "hello")
    assert "null</textarea>" not in admin_client.get(reverse("admin:flows_app_kventry_add")).content.decode()
    page = admin_client.post(reverse("admin:flows_app_kventry_add"), kv_form(value='"other"'))
    assert page.status_code == 200 and "already exists" in page.content.decode()
    assert kv.get("tests.kv", "greeting") == "hello"


@pytest.mark.django_db
def test_deleting_an_entry_in_the_admin_removes_it_even_once_expired(admin_client):
    kv.put("tests.kv", "old", "x", ttl=timedelta(seconds=-1))
    kv.put("tests.kv", "live", "y")
    old, live = KVEntry.objects.get(key="old"), KVEntry.objects.get(key="live")
    page = admin_client.post(reverse("admin:flows_app_kventry_delete", args=[old.pk]), {"post": "yes"})
    assert page.status_code == 302
    admin_client.post(
        reverse("admin:flows_app_kventry_changelist"),
        {"action": "delete_selected", "_selected_action": [live.pk], "post": "yes"},
    )
    assert not KVEntry.objects.exists()


# --- descriptions -----------------------------------------------------------------------------------

DESCRIBED = """id: described
namespace: tests.admin
description: |
  # Nightly **load**

  <script>alert(1)</script> <img src=x onerror=alert(2)>

  [docs](https://example.com/docs) and [trap](javascript:alert(3))
""" + FLOW[FLOW.index("tasks:") :]


@pytest.mark.django_db
def test_the_description_renders_as_markdown_with_no_html_from_the_yaml(admin_client):
    flow = save_flow(DESCRIBED).flow
    for url in (change_url("flow", flow.pk), reverse("admin:flows_app_flow_run", args=[flow.pk])):
        html = admin_client.get(url).content.decode()
        assert "<h1>Nightly <strong>load</strong></h1>" in html, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(2)&gt;" in html, url
        assert "<script>alert" not in html and "<img src=x" not in html, url
        assert '<a href="https://example.com/docs">docs</a>' in html, url
        assert "[trap](javascript:alert(3))" in html and 'href="javascript:' not in html, url
