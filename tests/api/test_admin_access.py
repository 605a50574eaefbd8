"""Roles, tokens and the audit log in the admin."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from flows_app.models import ApiToken, AuditEntry, NamespaceRole


@pytest.fixture
def admin_client(db):
    User.objects.create_superuser("root", "root@example.com", "a-long-test-password")
    client = Client()
    client.login(username="root", password="a-long-test-password")
    return client


def test_a_token_made_in_the_admin_is_shown_once_and_revoked_by_an_action(admin_client):
    bob = User.objects.create_user("bob", password="a-long-test-password")
    answer = admin_client.post(
        "/admin/flows_app/apitoken/add/",
        {"user": bob.pk, "name": "laptop", "expires_at_0": "", "expires_at_1": ""},
        follow=True,
    )
    token = re.search(r"tern_[A-Za-z0-9_-]{20,}", answer.content.decode()).group(0)
    row = ApiToken.objects.get()
    assert row.user == bob and token.startswith(row.prefix) and token not in row.digest
    admin_client.post("/admin/flows_app/apitoken/", {"action": "revoke", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.revoked_at is not None
    assert list(AuditEntry.objects.order_by("at").values_list("action", flat=True)) == [
        "token.created",
        "token.revoked",
    ]


def test_granting_and_revoking_a_role_is_audited(admin_client):
    carol = User.objects.create_user("carol", password="a-long-test-password")
    admin_client.post(
        "/admin/flows_app/namespacerole/add/", {"user": carol.pk, "namespace": "company", "role": "VIEWER"}
    )
    role = NamespaceRole.objects.get()
    admin_client.post(f"/admin/flows_app/namespacerole/{role.pk}/delete/", {"post": "yes"})
    assert not NamespaceRole.objects.exists()
    assert list(AuditEntry.objects.order_by("at").values_list("action", "username")) == [
        ("role.granted", "root"),
        ("role.revoked", "root"),
    ]
    assert admin_client.get("/admin/flows_app/auditentry/").status_code == 200


def test_a_namespace_admin_manages_the_roles_on_her_namespace_only(db):
    dana = User.objects.create_user("dana", password="a-long-test-password", is_staff=True)
    erin = User.objects.create_user("erin", password="a-long-test-password")
    NamespaceRole.objects.create(user=dana, namespace="company.team", role=NamespaceRole.ADMIN)
    NamespaceRole.objects.create(user=erin, namespace="other", role=NamespaceRole.VIEWER)
    client = Client()
    client.login(username="dana", password="a-long-test-password")
    listed = client.get("/admin/flows_app/namespacerole/").content.decode()
    assert "company.team" in listed and ">other<" not in listed
    ok = client.post(
        "/admin/flows_app/namespacerole/add/", {"user": erin.pk, "namespace": "company.team.sub", "role": "EDITOR"}
    )
    assert ok.status_code == 302
    refused = client.post(
        "/admin/flows_app/namespacerole/add/", {"user": erin.pk, "namespace": "company", "role": "EDITOR"}
    )
    assert refused.status_code == 200 and "you are not admin of namespace company" in refused.content.decode()
    assert set(NamespaceRole.objects.values_list("namespace", flat=True)) == {
        "company.team",
        "other",
        "company.team.sub",
    }
    erin.is_staff = True
    erin.save()
    client.login(username="erin", password="a-long-test-password")
    assert client.get("/admin/flows_app/namespacerole/").status_code == 403  # a viewer manages nothing
