"""A Schedule's backfill through the API, on Kestra's paths: started with `PUT /triggers`, previewed first,
its progress in the trigger's context, paused, resumed and cancelled by an editor, read by a viewer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from flows_app.models import AuditEntry, Backfill, Execution
from flows_app.triggers.backfill_runs import advance_all

from .test_triggers_api import QUARTER, ticking  # noqa: F401  (the fixture)

RANGE = {"start": "2029-12-31T22:00:00Z", "end": "2029-12-31T23:59:00Z"}  # 8 ticks of a quarter-hour


@pytest.fixture
def later(ticking):  # noqa: F811
    with time_machine.travel(datetime(2030, 1, 1, 0, 20, tzinfo=UTC)):
        yield ticking


def test_a_preview_says_how_many_and_which_before_anything_starts(bob, later):
    answer = bob.post("triggers/backfill/preview", {**QUARTER, "backfill": RANGE}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json() == {
        "executions": 8,
        "first": "2029-12-31T22:00:00Z",
        "last": "2029-12-31T23:45:00Z",
        "ticks": 8,
    }
    assert not Backfill.objects.exists() and not Execution.objects.exists()


def test_an_editor_starts_a_backfill_and_follows_it_in_the_triggers_context(alice, bob, later):
    answer = alice.put(
        "triggers", {**QUARTER, "backfill": {**RANGE, "inputs": {}, "labels": {"why": "replay"}}}, format="json"
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["backfill"]["state"] == "RUNNING" and answer.json()["backfill"]["total"] == 8
    assert AuditEntry.objects.filter(action="backfill.started", target="company.team.ticking.quarter").exists()
    advance_all()
    progress = bob.get("triggers/company.team/ticking").json()["results"][1]["backfill"]
    assert (progress["done"], progress["started"], progress["state"]) == (8, 8, "DONE")
    assert Execution.objects.filter(labels__why="replay").count() == 8


def test_pause_resume_and_cancel_through_the_api(alice, later):
    alice.put("triggers", {**QUARTER, "backfill": {**RANGE, "paused": True}}, format="json")
    advance_all()
    assert not Execution.objects.exists()
    assert alice.put("triggers/backfill/unpause", QUARTER, format="json").json()["backfill"]["paused"] is False
    assert alice.put("triggers/backfill/pause", QUARTER, format="json").json()["backfill"]["state"] == "PAUSED"
    cancelled = alice.post("triggers/backfill/delete", QUARTER, format="json")
    assert cancelled.status_code == 200 and cancelled.json()["backfill"]["state"] == "CANCELLED"
    gone = alice.put("triggers/backfill/pause", QUARTER, format="json")
    assert gone.status_code == 404 and "no backfill under way" in gone.json()["message"]


def test_a_viewer_may_preview_but_not_start_and_bad_requests_say_where(alice, bob, later):
    assert bob.put("triggers", {**QUARTER, "backfill": RANGE}, format="json").status_code == 403
    backwards = alice.put(
        "triggers", {**QUARTER, "backfill": {"start": RANGE["end"], "end": RANGE["start"]}}, format="json"
    )
    assert backwards.status_code == 400 and backwards.json()["errors"][0]["path"] == "backfill.end"
    webhook = alice.put("triggers", {**QUARTER, "triggerId": "hook", "backfill": RANGE}, format="json")
    assert webhook.status_code == 400 and "not a Schedule" in webhook.json()["message"]
    assert alice.put("triggers", {**QUARTER, "backfill": {"start": "yesterday"}}, format="json").status_code == 400
    assert alice.put("triggers", QUARTER, format="json").status_code == 400  # neither disabled nor backfill
    system = alice.put("triggers", {**QUARTER, "backfill": {**RANGE, "labels": {"system.x": "y"}}}, format="json")
    assert system.status_code == 400 and system.json()["errors"][0]["path"] == "backfill.labels"
    alice.put("triggers", {**QUARTER, "backfill": RANGE}, format="json")
    twice = alice.put("triggers", {**QUARTER, "backfill": RANGE}, format="json")
    assert twice.status_code == 409 and "under way" in twice.json()["message"]
