"""Who may do what: credentials (basic, bearer token, session), roles by namespace prefix, 404 for what one
may not see, 403 for what one may see but not change, and the audit log."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from flows_app.models import AuditEntry, NamespaceRole
from flows_app.services import tokens

from .conftest import HELLO, Api, basic

OTHER = HELLO.replace("namespace: company.team", "namespace: company.other")
SUB = HELLO.replace("namespace: company.team", "namespace: company.team.sub")


@pytest.mark.parametrize(
    "path", ["flows/search", "executions/search", "flows/company.team/hello", "namespaces/search", "kv", "logs/x"]
)
def test_every_endpoint_but_webhooks_wants_credentials(anonymous, path):
    answer = anonymous.get(path)
    assert answer.status_code == 401
    assert answer.json()["message"]


def test_a_wrong_password_is_refused(people):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic("alice", "wrong"))
    answer = client.get("/api/v1/main/flows/search")
    assert answer.status_code == 401
    assert "WWW-Authenticate" in answer


def test_a_changed_password_is_refused_at_once_though_the_old_one_was_just_checked(people, alice):
    assert alice.get("flows/search").status_code == 200
    people["alice"].set_password("another-long-password")
    people["alice"].save()
    assert alice.get("flows/search").status_code == 401


def test_a_bearer_token_works_until_revoked_and_only_its_digest_is_stored(people):
    token, row = tokens.create_token(people["alice"], "ci")
    assert token not in (row.digest, row.prefix) and row.digest == tokens.digest_of(token)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/main/flows/search").status_code == 200
    tokens.revoke(row)
    assert client.get("/api/v1/main/flows/search").status_code == 401
    client.credentials(HTTP_AUTHORIZATION="Bearer tern_not-a-token")
    assert client.get("/api/v1/main/flows/search").status_code == 401


def test_the_session_of_a_logged_in_browser_works(people):
    client = APIClient()
    client.force_login(people["bob"])
    assert client.get("/api/v1/main/flows/search").status_code == 200


def test_an_editor_writes_in_her_namespace_and_under_it_but_not_beside_it(alice):
    assert alice.save_flow(HELLO).status_code == 200
    assert alice.save_flow(SUB).status_code == 200
    assert alice.save_flow(OTHER).status_code == 403
    assert alice.save_flow(HELLO.replace("company.team", "company.teams")).status_code == 403


def test_a_viewer_reads_but_does_not_write(alice, bob):
    alice.save_flow(HELLO)
    assert bob.get("flows/company.team/hello").status_code == 200
    assert bob.save_flow(HELLO.replace("id: hello", "id: mine")).status_code == 403
    assert bob.put("flows/company.team/hello", HELLO, content_type="application/x-yaml").status_code == 403
    assert bob.delete("flows/company.team/hello").status_code == 403
    assert bob.post("executions/company.team/hello").status_code == 403
    assert bob.put("namespaces/company.team/kv/k", "1", content_type="text/plain").status_code == 403


def test_what_one_may_not_see_is_not_found_and_not_listed(root, carol, bob):
    root.save_flow(HELLO)
    root.save_flow(OTHER)
    assert carol.get("flows/company.team/hello").status_code == 404
    assert carol.get("flows/company.team/missing").status_code == 404
    assert carol.get("flows/search").json() == {"results": [], "total": 0}
    assert [f["namespace"] for f in bob.get("flows/search").json()["results"]] == ["company.team"]
    assert bob.get("flows/company.other/hello").status_code == 404
    assert root.get("flows/search").json()["total"] == 2


def test_a_role_given_to_a_group_counts_for_its_members(people, root, carol):
    from django.contrib.auth.models import Group, User

    root.save_flow(OTHER)
    group = Group.objects.create(name="others")
    NamespaceRole.objects.create(group=group, namespace="company.other", role=NamespaceRole.VIEWER)
    User.objects.get(username="carol").groups.add(group)
    assert carol.get("flows/company.other/hello").status_code == 200


def test_writes_that_change_what_runs_are_audited_with_who_and_from_where(alice):
    alice.save_flow(HELLO)
    alice.delete("flows/company.team/hello")
    entries = list(AuditEntry.objects.order_by("at").values_list("username", "action", "target", "remote_addr"))
    assert entries == [
        ("alice", "flow.saved", "company.team.hello", "127.0.0.1"),
        ("alice", "flow.deleted", "company.team.hello", "127.0.0.1"),
    ]


def test_an_inactive_user_is_refused(people):
    people["bob"].is_active = False
    people["bob"].save()
    assert Api("bob").get("flows/search").status_code == 401


def test_the_api_document_wants_credentials_and_its_pages_send_a_browser_to_the_login(people, anonymous, root):
    assert anonymous.client.get("/api/v1/schema").status_code == 401
    page = anonymous.client.get("/api/v1/docs")
    assert page.status_code == 302 and page["Location"].startswith("/admin/login/?next=/api/v1/docs")
    assert root.client.get("/api/v1/schema").status_code == 200
    browser = APIClient()
    browser.force_login(people["root"])
    assert browser.get("/api/v1/docs").status_code == 200
    assert b"/static/drf_spectacular_sidecar/" in browser.get("/api/v1/docs").content  # our files, no CDN


def test_a_nul_character_anywhere_is_a_placed_400_not_a_database_error(alice):
    from .conftest import HELLO as FLOW

    alice.save_flow(FLOW)
    assert alice.get("flows/search", {"namespace": "a\x00b"}).json()["errors"][0]["path"] == "query"
    assert alice.put("namespaces/company.team/kv/k", '"a\\u0000b"', content_type="application/json").status_code == 400
    assert alice.put("namespaces/company.team/kv/k", "a\x00b", content_type="text/plain").status_code == 400
    answer = alice.post("executions/company.team/hello", {"name": "a\x00b"})
    assert answer.status_code == 400 and answer.json()["errors"][0]["path"] == "inputs.name"
    assert alice.get("flows/company.team/he%00llo").status_code in (400, 404)
