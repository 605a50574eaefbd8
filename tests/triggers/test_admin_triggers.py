"""The admin's Triggers and Backfills pages: read-only rows, with actions that go through the services."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from flows_app.models import Backfill, TriggerState
from flows_app.services.flows import save_flow

from .test_backfills import schedule_of, source
from .test_schedules import EVERY_15, flow_source

pytestmark = pytest.mark.django_db


def test_an_operator_disables_and_enables_a_trigger_from_the_admin(admin_client):
    save_flow(flow_source(EVERY_15))
    state = TriggerState.objects.get()
    url = reverse("admin:flows_app_triggerstate_changelist")
    assert b"quarter" in admin_client.get(url).content
    admin_client.post(url, {"action": "disable_triggers", "_selected_action": [state.pk]})
    state.refresh_from_db()
    assert (state.disabled, state.enabled, state.periodic_task.enabled) == (True, False, False)
    admin_client.post(url, {"action": "follow_flow", "_selected_action": [state.pk]})
    state.refresh_from_db()
    assert (state.disabled, state.enabled, state.periodic_task.enabled) == (None, True, True)
    assert admin_client.get(reverse("admin:flows_app_triggerstate_change", args=[state.pk])).status_code == 200


def test_an_operator_pauses_resumes_and_cancels_a_backfill_from_the_admin(admin_client):
    from flows_app.triggers.backfills import start_backfill

    with time_machine.travel(datetime(2026, 3, 10, tzinfo=UTC)):
        save_flow(source())
        state = TriggerState.objects.get()
        backfill = start_backfill(state, schedule_of(state), datetime(2026, 3, 9, tzinfo=UTC))
    url = reverse("admin:flows_app_backfill_changelist")
    assert b"0 / 1441" in admin_client.get(url).content
    for action, expected in (
        ("pause_backfills", "PAUSED"),
        ("resume_backfills", "RUNNING"),
        ("cancel_backfills", "CANCELLED"),
    ):
        admin_client.post(url, {"action": action, "_selected_action": [backfill.pk]})
        assert Backfill.objects.get(pk=backfill.pk).state == expected
    page = admin_client.post(url, {"action": "resume_backfills", "_selected_action": [backfill.pk]}, follow=True)
    assert b"only a running or paused one" in page.content and Backfill.objects.get(pk=backfill.pk).state == "CANCELLED"
