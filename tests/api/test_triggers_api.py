"""Flow triggers through the API, on Kestra's paths: searched in Kestra's shape, listed per flow, disabled
and enabled by an editor (which switches the Celery Beat row), read by a viewer, hidden from the others."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from flows_app.models import AuditEntry, Flow, TriggerState
from flows_app.services.flows import save_flow

from .conftest import PASSWORD, basic

TICKING = """\
id: ticking
namespace: company.team
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: quarter
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "*/15 * * * *"
    stopAfter: [FAILED]
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: a-long-webhook-key
"""
NOON = """\
id: {id}
namespace: {namespace}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: noon
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 12 * * *"
"""
QUARTER = {"namespace": "company.team", "flowId": "ticking", "triggerId": "quarter"}


@pytest.fixture
def ticking(db):
    with time_machine.travel(datetime(2030, 1, 1, 0, 7, tzinfo=UTC), tick=False):
        return save_flow(TICKING).flow


@pytest.fixture
def many(ticking):
    """ticking (two triggers) and three noon flows: one under company.team, one beside it, one elsewhere."""
    for flow_id, namespace in (("lunch", "company.team.sub"), ("brunch", "company.teams"), ("secret", "other")):
        save_flow(NOON.format(id=flow_id, namespace=namespace))


def state(trigger_id: str = "quarter") -> TriggerState:
    return TriggerState.objects.select_related("periodic_task").get(trigger_id=trigger_id, flow__flow_id="ticking")


def ids(answer) -> list[str]:
    return [f"{r['triggerContext']['flowId']}.{r['triggerContext']['triggerId']}" for r in answer.json()["results"]]


# ---- reading --------------------------------------------------------------------------------------


def test_search_answers_kestras_triggers_with_the_trigger_as_written_and_its_context(bob, ticking):
    answer = bob.get("triggers/search", {"flowId": "ticking"})
    assert answer.status_code == 200
    assert answer.json()["total"] == 2
    hook, quarter = answer.json()["results"]  # sorted by trigger id
    assert quarter["abstractTrigger"] == {
        "id": "quarter",
        "type": "io.kestra.plugin.core.trigger.Schedule",
        "cron": "*/15 * * * *",
        "stopAfter": ["FAILED"],
        "disabled": False,
    }
    context = quarter["triggerContext"]
    assert context == {
        **context,
        "tenantId": "main",
        "namespace": "company.team",
        "flowId": "ticking",
        "triggerId": "quarter",
        "date": None,
        "nextExecutionDate": "2030-01-01T00:15:00Z",
        "stopAfter": ["FAILED"],
        "disabled": False,
        "enabled": True,
        "type": "io.kestra.plugin.core.trigger.Schedule",
        "lastExecutionId": None,
        "lastError": None,
        "errorCount": 0,
        "retryAt": None,
    }
    assert context["updatedDate"]
    assert hook["abstractTrigger"]["key"] == "a-long-webhook-key"
    assert hook["triggerContext"]["nextExecutionDate"] is None


def test_search_shows_a_trigger_disabled_in_its_flow_as_written_and_not_firing(bob, db):
    save_flow(TICKING.replace("    stopAfter: [FAILED]\n", "    disabled: true\n"))
    (quarter,) = [r for r in bob.get("triggers/search").json()["results"] if r["abstractTrigger"]["id"] == "quarter"]
    assert quarter["abstractTrigger"]["disabled"] is True
    assert (quarter["triggerContext"]["disabled"], quarter["triggerContext"]["enabled"]) == (False, False)


def test_search_filters_by_namespace_flow_id_trigger_id_and_text(root, bob, many):
    assert ids(root.get("triggers/search", {"namespace": "company.team"})) == [
        "ticking.hook",
        "ticking.quarter",
        "lunch.noon",
    ]  # the namespace and those under it, not company.teams
    assert ids(root.get("triggers/search", {"filters[namespace][EQUALS]": "company.team"})) == [
        "ticking.hook",
        "ticking.quarter",
    ]
    assert sorted(ids(root.get("triggers/search", {"filters[flowId][IN]": "lunch,brunch"}))) == [
        "brunch.noon",
        "lunch.noon",
    ]
    assert ids(root.get("triggers/search", {"filters[triggerId][EQUALS]": "noon", "flowId": "secret"})) == [
        "secret.noon"
    ]
    assert ids(root.get("triggers/search", {"q": "QUART"})) == ["ticking.quarter"]
    assert ids(root.get("triggers/search", {"q": "teams"})) == ["brunch.noon"]  # the namespace is text too
    assert ids(bob.get("triggers/search", {"q": "noon"})) == ["lunch.noon"]  # only what bob may see


def test_search_filters_by_next_or_last_date(root, many):
    nexts = root.get("triggers/search", {"filters[startDate][GREATER_THAN_OR_EQUAL_TO]": "2030-01-01T00:00:00Z"})
    assert ids(nexts) == ["ticking.quarter"]  # the others tick from today
    TriggerState.objects.filter(trigger_id="noon", flow__flow_id="lunch").update(
        last_date=datetime(2031, 1, 1, tzinfo=UTC)
    )
    lasts = root.get(
        "triggers/search",
        {"filters[startDate][GREATER_THAN]": "2030-06-01T00:00:00Z", "dateFilter": "LAST_TRIGGERED_DATE"},
    )
    assert ids(lasts) == ["lunch.noon"]


def test_search_pages_and_sorts(root, many):
    first = root.get("triggers/search", {"size": 2, "sort": "flowId:desc"})
    second = root.get("triggers/search", {"size": 2, "page": 2, "sort": "flowId:desc"})
    assert first.json()["total"] == second.json()["total"] == 5
    # ties in the order as the triggers were saved
    assert ids(first) + ids(second) == ["ticking.quarter", "ticking.hook", "secret.noon", "lunch.noon"]
    assert ids(root.get("triggers/search", {"page": 3, "size": 2})) == ["secret.noon"]  # "other" comes last
    assert root.get("triggers/search", {"page": 4, "size": 2}).json() == {"results": [], "total": 5}
    by_date = root.get("triggers/search", {"sort": "date:desc", "filters[triggerId][EQUALS]": "noon"})
    assert by_date.status_code == 200 and by_date.json()["total"] == 3


def test_a_flows_triggers_are_listed_as_kestras_trigger_contexts_paged(bob, ticking):
    answer = bob.get("triggers/company.team/ticking", {"size": 1, "page": 2})
    assert answer.status_code == 200
    assert answer.json()["total"] == 2
    (quarter,) = answer.json()["results"]
    assert (quarter["triggerId"], quarter["nextExecutionDate"], quarter["tenantId"]) == (
        "quarter",
        "2030-01-01T00:15:00Z",
        "main",
    )
    assert [t["triggerId"] for t in bob.get("triggers/company.team/ticking", {"q": "HO"}).json()["results"]] == ["hook"]
    assert bob.get("triggers/company.team/nope").status_code == 404


def test_a_deleted_flows_triggers_are_gone(root, ticking):
    root.delete("flows/company.team/ticking")
    assert root.get("triggers/search").json() == {"results": [], "total": 0}
    assert root.get("triggers/company.team/ticking").status_code == 404


# ---- disabling and enabling -----------------------------------------------------------------------


def test_disabling_through_the_api_disables_the_beat_row_and_is_audited(alice, ticking):
    assert state().periodic_task.enabled is True
    answer = alice.put(
        "triggers", {**QUARTER, "disabled": True, "nextExecutionDate": "2000-01-01T00:00:00Z"}, format="json"
    )
    assert answer.status_code == 200
    assert (answer.json()["triggerId"], answer.json()["disabled"], answer.json()["enabled"]) == ("quarter", True, False)
    assert answer.json()["nextExecutionDate"] == "2030-01-01T00:15:00Z"  # the rest of the body is ignored
    assert (state().disabled, state().enabled, state().periodic_task.enabled) == (True, False, False)
    entry = AuditEntry.objects.get(action="trigger.disabled")
    assert (entry.username, entry.target) == ("alice", "company.team.ticking.quarter")


def test_enabling_again_follows_the_flow(alice, ticking):
    alice.put("triggers", {**QUARTER, "disabled": True}, format="json")
    alice.post("flows/disable/by-ids", [{"namespace": "company.team", "id": "ticking"}], format="json")

    enabled = alice.put("triggers", {**QUARTER, "disabled": False}, format="json")
    assert (enabled.json()["disabled"], enabled.json()["enabled"]) == (False, False)  # its flow is still disabled
    assert (state().disabled, state().periodic_task.enabled) == (None, False)
    assert AuditEntry.objects.filter(action="trigger.enabled", target="company.team.ticking.quarter").count() == 1

    alice.post("flows/enable/by-ids", [{"namespace": "company.team", "id": "ticking"}], format="json")
    assert (state().enabled, state().periodic_task.enabled) == (True, True)


def test_setting_what_is_already_set_changes_nothing_and_audits_nothing(alice, ticking):
    assert alice.put("triggers", {**QUARTER, "disabled": False}, format="json").json()["enabled"] is True
    assert not AuditEntry.objects.filter(action__startswith="trigger.").exists()


def test_kestra_2s_path_sets_disabled_too(alice, ticking):
    body = {**QUARTER, "disabled": True, "recoverMissedSchedules": False}
    assert alice.put("triggers/set-disabled", body, format="json").json()["disabled"] is True
    assert state().periodic_task.enabled is False


def test_set_disabled_by_triggers_checks_every_trigger_before_changing_any(alice, ticking):
    save_flow(NOON.format(id="lunch", namespace="company.team"))
    lunch = {"namespace": "company.team", "flowId": "lunch", "triggerId": "noon"}
    missing = {**lunch, "triggerId": "dinner"}
    refused = alice.post(
        "triggers/set-disabled/by-triggers", {"triggers": [QUARTER, missing], "disabled": True}, format="json"
    )
    assert refused.status_code == 404
    assert refused.json()["errors"] == [{"path": "triggers[1].triggerId", "message": "not found"}]
    assert state().periodic_task.enabled is True

    done = alice.post(
        "triggers/set-disabled/by-triggers", {"triggers": [QUARTER, lunch], "disabled": True}, format="json"
    )
    assert done.json() == {"count": 2}
    assert list(TriggerState.objects.filter(trigger_id__in=["quarter", "noon"]).values_list("enabled", flat=True)) == [
        False,
        False,
    ]
    assert AuditEntry.objects.filter(action="trigger.disabled").count() == 2


def test_set_disabled_by_query_acts_on_the_schedules_the_search_selects(alice, root, many):
    answer = root.post("triggers/set-disabled/by-query?namespace=company.team")  # disabled=true by default
    assert answer.json() == {"count": 3}  # ticking.quarter, ticking.hook and lunch.noon
    disabled = TriggerState.objects.filter(disabled=True)
    assert sorted(disabled.values_list("flow__flow_id", flat=True)) == ["lunch", "ticking", "ticking"]
    assert TriggerState.objects.get(flow__flow_id="brunch").periodic_task.enabled is True

    again = alice.post("triggers/set-disabled/by-query?disabled=false&filters[flowId][EQUALS]=ticking")
    assert again.json() == {"count": 2}
    assert (state().disabled, state().periodic_task.enabled) == (None, True)


# ---- who may ------------------------------------------------------------------------------------


def test_a_viewer_reads_triggers_but_may_not_disable_them(bob, ticking):
    assert bob.get("triggers/search").json()["total"] == 2
    assert bob.put("triggers", {**QUARTER, "disabled": True}, format="json").status_code == 403
    by_triggers = bob.post(
        "triggers/set-disabled/by-triggers", {"triggers": [QUARTER], "disabled": True}, format="json"
    )
    assert by_triggers.status_code == 403
    assert bob.post("triggers/set-disabled/by-query?flowId=ticking").status_code == 403
    assert (state().disabled, state().periodic_task.enabled) == (None, True)


def test_a_namespace_one_may_not_see_answers_404_like_a_missing_one(alice, carol, many):
    secret = {"namespace": "other", "flowId": "secret", "triggerId": "noon"}
    hidden = alice.put("triggers", {**secret, "disabled": True}, format="json")
    missing = alice.put("triggers", {**secret, "flowId": "nope", "disabled": True}, format="json")
    assert (hidden.status_code, missing.status_code) == (404, 404)
    assert hidden.json()["message"] == "flow other.secret not found"
    assert alice.get("triggers/other/secret").status_code == 404
    body = {"triggers": [secret], "disabled": True}
    assert alice.post("triggers/set-disabled/by-triggers", body, format="json").status_code == 404
    assert alice.post("triggers/set-disabled/by-query?namespace=other").json() == {"count": 0}
    assert carol.get("triggers/search").json() == {"results": [], "total": 0}
    assert TriggerState.objects.get(flow__flow_id="secret").enabled is True


def test_triggers_want_credentials(anonymous, ticking):
    assert anonymous.get("triggers/search").status_code == 401
    assert anonymous.put("triggers", {**QUARTER, "disabled": True}, format="json").status_code == 401


def test_kestra_0s_paths_without_the_tenant_answer_too(root, ticking):
    assert root.client.get("/api/v1/triggers/search").json()["total"] == 2
    answer = root.client.put("/api/v1/triggers", {**QUARTER, "disabled": True}, format="json")
    assert (answer.status_code, state().disabled) == (200, True)


# ---- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({**QUARTER}, "disabled"),
        ({**QUARTER, "disabled": "maybe"}, "disabled"),
        ({**QUARTER, "disabled": None}, "disabled"),
        ({"namespace": "company.team", "flowId": "ticking", "disabled": True}, "triggerId"),
        ({**QUARTER, "flowId": ["ticking"], "disabled": True}, "flowId"),
        ({**QUARTER, "triggerId": "x" * 101, "disabled": True}, "triggerId"),
    ],
)
def test_a_bad_update_answers_400_naming_the_field(alice, ticking, body, path):
    answer = alice.put("triggers", body, format="json")
    assert answer.status_code == 400
    assert path in [e["path"] for e in answer.json()["errors"]]


def test_bad_requests_answer_400_or_404_not_500(alice, ticking):
    assert alice.put("triggers", [QUARTER], format="json").status_code == 400
    unknown = alice.put("triggers", {**QUARTER, "triggerId": "nope", "disabled": True}, format="json")
    assert (unknown.status_code, unknown.json()["errors"]) == (404, [{"path": "triggerId", "message": "not found"}])

    bulk = alice.post(
        "triggers/set-disabled/by-triggers", {"triggers": [{"namespace": 1}], "disabled": True}, format="json"
    )
    assert {e["path"] for e in bulk.json()["errors"]} == {"triggers[0].flowId", "triggers[0].triggerId"}
    assert alice.post("triggers/set-disabled/by-triggers", {"disabled": True}, format="json").status_code == 400
    assert alice.post("triggers/set-disabled/by-query?disabled=maybe").status_code == 400

    for params in ({"sort": "cron:asc"}, {"filters[workerId][EQUALS]": "w"}, {"dateFilter": "YESTERDAY"}, {"size": 0}):
        answer = alice.get("triggers/search", params)
        assert answer.status_code == 400, params
        assert answer.json()["errors"][0]["path"]
    assert Flow.objects.get().disabled is False
    assert not AuditEntry.objects.filter(action__startswith="trigger.").exists()


def test_every_trigger_answer_fits_the_openapi_document(transactional_db, people, ticking):
    from .test_schemathesis import CHECKS, api_schema

    TriggerState.objects.filter(trigger_id="quarter").update(
        last_date=datetime(2030, 1, 1, tzinfo=UTC),
        last_execution_id="abc",
        last_error="inputs: size is required",
        error_count=2,
        retry_at=datetime(2030, 1, 1, 0, 5, tzinfo=UTC),
    )
    operations = {(op.method.upper(), op.path): op for op in (r.ok() for r in api_schema().get_all_operations())}
    flow = {"namespace": "company.team", "flow_id": "ticking"}
    json_body = {"media_type": "application/json"}
    cases = [
        ("GET", "triggers/search", {"query": {"flowId": "ticking"}}),
        ("GET", "triggers/{namespace}/{flow_id}", {"path_parameters": flow}),
        ("PUT", "triggers", {"body": {**QUARTER, "disabled": True}, **json_body}),
        ("PUT", "triggers/set-disabled", {"body": {**QUARTER, "disabled": False}, **json_body}),
        ("POST", "triggers/set-disabled/by-triggers", {"body": {"triggers": [QUARTER], "disabled": True}, **json_body}),
        ("POST", "triggers/set-disabled/by-query", {"query": {"disabled": False, "flowId": "ticking"}}),
    ]
    for method, path, parts in cases:
        case = operations[(method, f"/api/v1/main/{path}")].Case(**parts)
        response = case.call_and_validate(headers={"Authorization": basic("root@root.com")}, checks=CHECKS)
        assert response.status_code == 200, (method, path, response.text)


# ---- kestrapy -----------------------------------------------------------------------------------


def test_kestrapy_searches_triggers_and_disables_one(web_server, db):
    from django.contrib.auth.models import User
    from kestrapy import KestraClient, QueryFilter, QueryFilterField, QueryFilterOp
    from kestrapy.models.trigger_controller_api_disable_trigger_request import TriggerControllerApiDisableTriggerRequest
    from kestrapy.models.trigger_controller_api_trigger_id import TriggerControllerApiTriggerId
    from kestrapy.models.trigger_controller_set_disabled_request import TriggerControllerSetDisabledRequest

    User.objects.create_superuser("root@root.com", "root@root.com", PASSWORD)
    kestra = KestraClient(host=web_server.url, username="root@root.com", password=PASSWORD, timeout=60)
    kestra.flows.create_flow("main", TICKING)

    found = kestra.triggers.search_triggers(
        "main",
        page=1,
        size=10,
        sort=["triggerId:desc"],
        filters=[QueryFilter(var_field=QueryFilterField.FLOW_ID, operation=QueryFilterOp.EQUALS, value="ticking")],
    )
    assert found["total"] == 2
    assert [r["triggerContext"]["triggerId"] for r in found["results"]] == ["quarter", "hook"]
    assert found["results"][0]["abstractTrigger"]["cron"] == "*/15 * * * *"
    for_flow = kestra.triggers.search_triggers_for_flow("main", "company.team", "ticking", q="quarter")
    assert [t["triggerId"] for t in for_flow["results"]] == ["quarter"]

    one = TriggerControllerApiTriggerId(namespace="company.team", flow_id="ticking", trigger_id="quarter")
    counted = kestra.triggers.disabled_triggers_by_ids(
        "main", TriggerControllerSetDisabledRequest(triggers=[one], disabled=True)
    )
    assert counted == {"count": 1}
    assert (state().disabled, state().periodic_task.enabled) == (True, False)

    request = TriggerControllerApiDisableTriggerRequest(
        namespace="company.team", flow_id="ticking", trigger_id="quarter", disabled=False
    )
    assert kestra.triggers.disable_trigger_by_id("main", request)["enabled"] is True
    assert kestra.triggers.disabled_triggers_by_query(
        "main",
        disabled=True,
        filters=[
            QueryFilter(var_field=QueryFilterField.NAMESPACE, operation=QueryFilterOp.EQUALS, value="company.team")
        ],
    ) == {"count": 2}  # the schedule and the webhook
    assert state().periodic_task.enabled is False
