"""Kestra's system labels: `system.correlationId` shared by an execution tree, `system.username` for who started
it, readable in templates, never set by a user."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from flows_app import dispatch
from flows_app.engine.templating import render
from flows_app.engine.variables import Labels
from flows_app.models import Execution, LogEntry
from flows_app.services.executions import start_execution
from flows_app.services.flows import save_flow
from flows_app.services.starting import ReservedLabels
from flows_app.testrun import load_flows_dir

from .test_flows_and_state import Recorder

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = """id: root
namespace: tests.system
labels:
  team: data
  system.readOnly: true
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: tests.system
    flowId: middle
    inheritLabels: true
    labels:
      caller: root
"""

MIDDLE = """id: middle
namespace: tests.system
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: tests.system
    flowId: leaf
"""

LEAF = """id: leaf
namespace: tests.system
tasks:
  - id: read
    type: io.kestra.plugin.core.debug.Return
    format: >-
      {{ labels.system.correlationId }}|{{ labels['system.correlationId'] }}|{{ labels.system.username ?? 'nobody' }}
"""

LOG = """id: log
namespace: tests.system
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


@pytest.fixture
def flows(tmp_path, settings):
    """The root -> middle -> leaf tree saved from a flows folder; returns the folder."""
    settings.TERN = {**settings.TERN, "WORK_DIR": tmp_path / "work", "STORAGE_DIR": tmp_path / "storage"}
    folder = tmp_path / "flows"
    folder.mkdir()
    for name, source in {"root": ROOT, "middle": MIDDLE, "leaf": LEAF}.items():
        (folder / f"{name}.yml").write_text(source)
    load_flows_dir(folder)
    return folder


def run_as(username, source=ROOT):
    """Start the flow as `username` and run it, with its subflows, to the end in this process."""
    runner = dispatch.InlineDispatcher(threads=4)
    try:
        with dispatch.using(runner):
            execution = start_execution(save_flow(source).flow, username=username)
            runner.run_until_done(execution.id, timeout=60)
    finally:
        runner.close()
    execution.refresh_from_db()
    return execution


def tree(root):
    middle = Execution.objects.get(parent=root)
    return middle, Execution.objects.get(parent=middle)


def read_by_leaf(leaf):
    return leaf.task_runs.get(task_id="read").outputs["value"]


# --- correlationId and username -------------------------------------------------------------------


def test_a_grandchild_subflow_carries_the_roots_correlation_id_and_username(flows):
    root = run_as("alice")
    middle, leaf = tree(root)
    assert root.state == middle.state == leaf.state == "SUCCESS"
    shared = {"system.correlationId": root.id, "system.username": "alice"}
    assert root.labels == {"team": "data", **shared}  # the flow's system.readOnly stays on the flow
    assert middle.labels == {"team": "data", "caller": "root", **shared}  # inheritLabels: the user labels too
    assert leaf.labels == shared  # no inheritLabels: the system labels only
    assert read_by_leaf(leaf) == f"{root.id}|{root.id}|alice"


def test_two_executions_are_two_correlation_roots_and_no_user_means_no_username(flows, run_flow):
    first = run_as("alice")
    second = run_flow(flows / "root.yml", flows_dir=flows).execution  # `tern flow test`: nobody started it
    assert second.state == "SUCCESS"
    assert second.labels == {"team": "data", "system.correlationId": second.id} and second.id != first.id
    middle, leaf = tree(second)
    assert middle.labels["system.correlationId"] == leaf.labels["system.correlationId"] == second.id
    assert "system.username" not in leaf.labels
    assert read_by_leaf(leaf) == f"{second.id}|{second.id}|nobody"


def test_foreachitem_children_share_the_parents_correlation_id(run_flow, tmp_path, settings):
    settings.TERN = {**settings.TERN, "STORAGE_DIR": tmp_path / "storage"}
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "batch.yml").write_text(LOG.replace("id: log", "id: batch"))
    (tmp_path / "items.txt").write_text("a\nb\nc\n")
    (tmp_path / "each.yml").write_text("""id: each
namespace: tests.system
labels:
  team: data
inputs:
  - id: items
    type: FILE
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{ inputs.items }}"
    batch:
      rows: 1
    namespace: tests.system
    flowId: batch
    inheritLabels: true
""")
    parent = run_flow(tmp_path / "each.yml", {"items": str(tmp_path / "items.txt")}, flows_dir=tmp_path / "flows")
    children = Execution.objects.filter(parent=parent.execution)
    assert parent.execution.state == "SUCCESS" and children.count() == 3
    assert all(c.labels == {"team": "data", "system.correlationId": parent.execution.id} for c in children)


# --- refused ----------------------------------------------------------------------------------------


def test_a_subflow_cannot_set_a_system_label_on_its_child(run_flow, flows, tmp_path):
    (tmp_path / "forge.yml").write_text("""id: forge
namespace: tests.system
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: tests.system
    flowId: leaf
    labels:
      system.correlationId: forged
""")
    execution = run_flow(tmp_path / "forge.yml", flows_dir=flows).execution
    assert execution.state == "FAILED" and not Execution.objects.filter(parent=execution).exists()
    [error] = LogEntry.objects.filter(task_id="call", level="ERROR").values_list("message", flat=True)
    assert "labels system.correlationId: the `system.` prefix is reserved" in error


def test_a_foreachitem_cannot_set_a_system_label_on_its_children(run_flow, tmp_path, settings):
    settings.TERN = {**settings.TERN, "STORAGE_DIR": tmp_path / "storage"}
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "batch.yml").write_text(LOG.replace("id: log", "id: batch"))
    (tmp_path / "items.txt").write_text("a\n")
    (tmp_path / "each.yml").write_text("""id: each
namespace: tests.system
inputs:
  - id: items
    type: FILE
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{ inputs.items }}"
    namespace: tests.system
    flowId: batch
    labels:
      system.username: mallory
""")
    execution = run_flow(
        tmp_path / "each.yml", {"items": str(tmp_path / "items.txt")}, flows_dir=tmp_path / "flows"
    ).execution
    assert execution.state == "FAILED" and not Execution.objects.filter(parent=execution).exists()
    assert LogEntry.objects.filter(level="ERROR", message__contains="labels system.username: the `system.`").exists()


def test_labels_given_at_start_cannot_be_system_labels():
    flow = save_flow(LOG).flow
    with pytest.raises(ReservedLabels, match="system.username"):
        start_execution(flow, labels={"team": "x", "system.username": "mallory"}, username="alice")
    assert not Execution.objects.exists()


# --- the admin passes the logged-in user ------------------------------------------------------------


@pytest.fixture
def alice(client, django_user_model):
    """alice the editor, logged in to the admin."""
    user = django_user_model.objects.create_user("alice", password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_flow", "change_flow"]))
    client.force_login(user)
    return client


def test_the_admins_run_page_and_run_action_start_as_the_logged_in_user(alice):
    flow = save_flow(LOG).flow
    with dispatch.using(Recorder()):  # started, not run
        page = alice.post(reverse("admin:flows_app_flow_run", args=[flow.pk]), {"labels": "ticket=T-1"})
        assert page.status_code == 302
        alice.post(reverse("admin:flows_app_flow_changelist"), {"action": "run_flows", "_selected_action": [flow.pk]})
    by_page, by_action = Execution.objects.order_by("created_at")
    assert by_page.labels == {"ticket": "T-1", "system.correlationId": by_page.id, "system.username": "alice"}
    assert by_action.labels == {"system.correlationId": by_action.id, "system.username": "alice"}


# --- how templates read labels (pure) ---------------------------------------------------------------


@pytest.mark.django_db(transaction=False)
def test_templates_read_dotted_labels_flat_or_nested_and_a_label_wins_over_a_prefix():
    labels = Labels({"team": "data", "a": "A", "a.b": "AB", "x.y.z": "XYZ", "system.correlationId": "c1"})

    def read(template):
        return render(template, {"labels": labels})

    assert read("{{ labels.team }} {{ labels['a.b'] }} {{ labels.a }}") == "data AB A"
    assert read("{{ labels.system.correlationId }} {{ labels['system.correlationId'] }}") == "c1 c1"
    assert read("{{ labels.x.y.z }} {{ labels.x['y.z'] }}") == "XYZ XYZ"
    assert read("{{ labels.a.b ?? 'none' }} {{ labels.system.username ?? 'nobody' }}") == "none nobody"
    assert read("{{ labels | length }} {% for k in labels.keys() %}{{ k }},{% endfor %}") == (
        "5 team,a,a.b,x.y.z,system.correlationId,"
    )  # iterating shows the stored labels only
    assert read("{{ labels.system }}") == '{"correlationId":"c1"}'
