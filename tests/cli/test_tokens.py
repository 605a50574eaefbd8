"""`tern token create|list|revoke`: a token printed once, that the API takes until it is revoked."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from flows_app.models import ApiToken, AuditEntry
from orchestrator.cli import main


@pytest.fixture
def alice(db):
    from django.contrib.auth.models import User

    return User.objects.create_user("alice", password="a-long-test-password")


def test_a_token_made_on_the_command_line_opens_the_api_until_revoked(alice, capsys):
    assert main(["token", "create", "alice", "--name", "ci"]) == 0
    token = capsys.readouterr().out.strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/main/flows/search").status_code == 200

    assert main(["token", "list"]) == 0
    listed = capsys.readouterr().out
    prefix = ApiToken.objects.get().prefix
    assert f"{prefix}…  alice  ci  live" in listed and token not in listed

    assert main(["token", "revoke", prefix]) == 0
    assert client.get("/api/v1/main/flows/search").status_code == 401
    assert list(AuditEntry.objects.order_by("at").values_list("action", flat=True)) == [
        "token.created",
        "token.revoked",
    ]


def test_it_names_what_is_wrong_in_one_line(alice, capsys):
    assert main(["token", "create", "nobody"]) == 1
    assert main(["token", "create", "alice", "--expires-in", "soon"]) == 2
    assert main(["token", "revoke", "tern_zzzz"]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == [
        "no active user 'nobody'",
        "--expires-in 'soon': not a duration (like P30D)",
        "0 live tokens have the prefix 'tern_zzzz': none revoked",
    ]
