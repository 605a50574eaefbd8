"""`stopAfter`: a trigger whose execution ends in one of the listed states is disabled, as if by an operator
(Kestra's "stop a schedule after a failure until someone looks")."""

from __future__ import annotations

import logging

from flows_app.events import ExecutionEnded
from flows_app.models import TriggerState
from flows_app.services.flows import spec_of

from .control import set_disabled

logger = logging.getLogger("tern.triggers")


def on_execution_ended(event: ExecutionEnded) -> None:
    trigger_id = (event.trigger or {}).get("id")
    if not trigger_id or event.flow_pk is None:
        return  # not started by a trigger of its flow: nothing to stop (and nothing read)
    state = TriggerState.objects.select_related("flow").filter(flow_id=event.flow_pk, trigger_id=trigger_id).first()
    if state is None or state.disabled:
        return
    flow = state.flow
    spec = spec_of(flow.revisions.defer("source").get(revision=flow.revision))
    trigger = next((t for t in spec.triggers if t.id == trigger_id), None)
    stop_after = getattr(trigger.spec, "stop_after", ()) if trigger is not None else ()
    if event.state in stop_after:
        set_disabled(state, True)
        logger.warning("%s disabled: execution %s ended %s (stopAfter)", state, event.execution_id, event.state)
