"""Personas and clients for the API: root (superuser), alice (editor of company.team), bob (viewer of
company.team), carol (no role at all)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from flows_app import live
from flows_app.models import Execution
from tests.integration import conftest as real_parts

# The real parts' fixtures (a Redis, worker processes, a `tern web`), reused here.
celery_runtime, redis_url, web_server = real_parts.celery_runtime, real_parts.redis_url, real_parts.web_server
wait_until = real_parts.wait_until

PASSWORD = "a-long-test-password"
FIXTURES_VALID = Path(__file__).parents[1] / "fixtures" / "flows" / "valid"
HELLO = """\
id: hello
namespace: company.team
# a comment that must survive
tasks:
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: Hello {{ inputs.name ?? 'world' }}
inputs:
  - id: name
    type: STRING
    defaults: world
"""


def basic(username: str, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class Api:
    """An APIClient for one persona, on the tenant paths."""

    def __init__(self, username: str | None):
        self.client = APIClient()
        if username:
            self.client.credentials(HTTP_AUTHORIZATION=basic(username))

    def url(self, path: str) -> str:
        return "/api/v1/main/" + path.lstrip("/")

    def get(self, path, data=None, **kw):
        return self.client.get(self.url(path), data, **kw)

    def post(self, path, data=None, **kw):
        return self.client.post(self.url(path), data, **kw)

    def put(self, path, data=None, **kw):
        return self.client.put(self.url(path), data, **kw)

    def delete(self, path, data=None, **kw):
        return self.client.delete(self.url(path), data, **kw)

    def save_flow(self, source: str):
        return self.post("flows", source, content_type="application/x-yaml")


class Quiet:
    """A dispatcher that sends nothing: API tests without a worker leave no messages in a Redis."""

    def advance(self, execution_id, at=None):
        pass

    def send(self, ready):
        pass

    def ended(self, event):
        pass

    def logs_written(self, event):
        pass

    def changed(self, event):
        pass


@pytest.fixture(autouse=True)
def quiet_dispatcher():
    """Tests that start a worker (`celery_runtime`) replace it with the Celery dispatcher."""
    from flows_app import dispatch

    with dispatch.using(Quiet()):
        yield


@pytest.fixture
def people(db):
    from django.contrib.auth.models import User

    from flows_app.models import NamespaceRole

    root = User.objects.create_superuser("root@root.com", "root@root.com", PASSWORD)
    alice = User.objects.create_user("alice", password=PASSWORD)
    bob = User.objects.create_user("bob", password=PASSWORD)
    User.objects.create_user("carol", password=PASSWORD)
    NamespaceRole.objects.create(user=alice, namespace="company.team", role=NamespaceRole.EDITOR)
    NamespaceRole.objects.create(user=bob, namespace="company.team", role=NamespaceRole.VIEWER)
    return {"root": root, "alice": alice, "bob": bob}


@pytest.fixture
def root(people):
    return Api("root@root.com")


@pytest.fixture
def alice(people):
    return Api("alice")


@pytest.fixture
def bob(people):
    return Api("bob")


@pytest.fixture
def carol(people):
    return Api("carol")


@pytest.fixture
def anonymous(db):
    return Api(None)


@pytest.fixture
def worker(celery_runtime, redis_url, settings):
    settings.CELERY_BROKER_URL = redis_url  # where this process hears the workers' news
    # The workers' internal storage (their TERN_DATA_DIR is the test's folder): uploads land where they read.
    settings.TERN = {**settings.TERN, "STORAGE_DIR": celery_runtime.tmp_path / "storage", "API_WAIT_SECONDS": 60}
    live._redis = None
    celery_runtime.start()
    yield celery_runtime
    live._redis = None


def ended(execution_id: str) -> Execution:
    return wait_until(
        lambda: Execution.objects.filter(id=execution_id, state__in=["SUCCESS", "WARNING", "FAILED", "KILLED"]).first(),
        timeout=30,
        what=f"execution {execution_id} ended",
    )
