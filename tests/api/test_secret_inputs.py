"""A SECRET input is a secret: masked in its tasks' logs and outputs, shown as ****** by the API and the admin."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from flows_app.models import LogEntry, TaskRun

FLOW = """id: login
namespace: company.team
inputs:
  - id: password
    type: SECRET
  - id: user
    type: STRING
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "{{ inputs.user }} {{ inputs.password }} {{ inputs.password | upper }} {{ inputs.password | base64encode }}"
  - id: keep
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.password }}"
"""


def test_a_secret_input_is_masked_in_logs_and_outputs_and_hidden_by_the_api_and_the_admin(run_flow, tmp_path, root):
    path = tmp_path / "flow.yml"
    path.write_text(FLOW)
    outcome = run_flow(path, {"password": "s3cr3t-pw", "user": "ada"})
    execution = outcome.execution
    assert execution.state == "SUCCESS"
    [line] = LogEntry.objects.filter(execution_id=execution.id).values_list("message", flat=True)
    assert line == "ada ****** ****** ******"
    assert TaskRun.objects.get(execution=execution, task_id="keep").outputs == {"value": "******"}
    shown = root.get(f"executions/{execution.id}").json()
    assert shown["inputs"] == {"password": "******", "user": "ada"}
    admin = root.client
    admin.force_login(get_user_model().objects.get(username="root@root.com"))
    page = admin.get(f"/admin/flows_app/execution/{execution.id}/change/").content.decode()
    assert "s3cr3t" not in page and "ada" in page
