"""A webhook call with an `Idempotency-Key` starts at most one execution per key and flow; a repeat answers
with the first one — even when the repeats arrive at the same moment."""

from __future__ import annotations

import threading

import pytest
from rest_framework.test import APIClient

from flows_app import dispatch
from flows_app.models import Execution
from flows_app.services.flows import save_flow
from tests.services.test_flows_and_state import Recorder

from .test_executions_api import HOOKED

URL = "/api/v1/main/executions/webhook/company.team/hooked/s3cr3t-key"


@pytest.fixture
def hooked(db):
    with dispatch.using(Recorder()):
        save_flow(HOOKED)
        save_flow(HOOKED.replace("id: hooked", "id: other"))
        yield


def post(key: str | None, body: dict, url: str = URL):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return APIClient().post(url, body, format="json", **headers)


def test_a_repeat_with_the_same_key_answers_the_first_execution(hooked):
    first = post("order-42", {"name": "first"})
    again = post("order-42", {"name": "second"})
    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["trigger"]["variables"]["body"] == {"name": "first"}  # the first call's, as stored
    assert Execution.objects.count() == 1


def test_other_keys_calls_without_a_key_and_other_flows_each_start_their_own(hooked):
    ids = {
        post("a", {}).json()["id"],
        post("b", {}).json()["id"],
        post(None, {}).json()["id"],
        post(None, {}).json()["id"],
        post("a", {}, url=URL.replace("/hooked/", "/other/")).json()["id"],
    }
    assert len(ids) == Execution.objects.count() == 5


def test_a_key_of_any_length_and_text_works(hooked):
    key = "é" * 5000
    assert post(key, {}).json()["id"] == post(key, {}).json()["id"]


@pytest.mark.django_db(transaction=True)
def test_repeats_arriving_at_once_start_one_execution():
    save_flow(HOOKED)
    answers, barrier = [], threading.Barrier(6)

    def call():
        barrier.wait()
        answers.append(post("same-moment", {}))

    with dispatch.using(Recorder()):
        threads = [threading.Thread(target=call) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert [a.status_code for a in answers] == [200] * 6
    assert len({a.json()["id"] for a in answers}) == 1 and Execution.objects.count() == 1
