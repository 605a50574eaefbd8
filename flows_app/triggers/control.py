"""What an operator does to a trigger without editing its flow: disable it, enable it."""

from __future__ import annotations

from django.db import transaction

from flows_app.models import TriggerState
from flows_app.services.flows import spec_of

from .sync import sync_flow_triggers


def set_disabled(state: TriggerState, disabled: bool | None) -> TriggerState:
    """An operator disables or enables a trigger without editing its flow (None: as the flow says again).
    Enabling it recovers the ticks it missed by its `recoverMissedSchedules` policy."""
    with transaction.atomic():
        state = TriggerState.objects.select_for_update().select_related("flow").get(pk=state.pk)
        flow = state.flow
        spec = spec_of(flow.revisions.defer("source").get(revision=flow.revision))
        state.disabled = disabled
        state.save(update_fields=["disabled", "updated_at"])
        sync_flow_triggers(flow, None if flow.deleted else spec)
    return TriggerState.objects.get(pk=state.pk)


def sync_missing_states() -> int:
    """Flows with triggers but no trigger state (saved before Tern kept them) get theirs: `tern scheduler`
    calls it as it starts, so an upgraded database's schedules tick. Returns how many flows it synced."""
    from flows_app.models import Flow

    synced = 0
    for flow in Flow.objects.filter(deleted=False, trigger_states__isnull=True).defer("source"):
        spec = spec_of(flow.revisions.defer("source").get(revision=flow.revision))
        if spec.triggers:
            with transaction.atomic():
                sync_flow_triggers(Flow.objects.select_for_update().get(pk=flow.pk), spec)
            synced += 1
    return synced
