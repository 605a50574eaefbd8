"""A polling or realtime trigger's event becomes an execution: at most one per event key, with the event's
`trigger.*` variables, and its files (a batch's messages, a detected file's copy) in the execution's folder."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any

from django.db import IntegrityError
from django.utils import timezone

from flows_app.engine.conditions import ConditionError, schedule_conditions_hold
from flows_app.engine.cron import tick_text
from flows_app.engine.templating import TemplateError, render
from flows_app.engine.vocabulary import truthy
from flows_app.models import Execution, TriggerState, new_id
from flows_app.services.starting import FlowDisabled, start_execution
from flows_app.services.storage import execution_parts, remove, storage
from flows_app.spec.event_triggers import EventTriggerSpec
from plugins_app.triggers.base import Event

logger = logging.getLogger("tern.triggers")

RECORDS_FILE = "messages.ion"  # one JSON value a line: also ION text, the format Kestra's tasks read


class EventRefused(Exception):
    """The flow would not start for this event (disabled, or its labels refused): the event is not acknowledged."""


def scoped_key(state: TriggerState, key: str) -> str:
    """An event key, unique across triggers; hashed when it would not fit the column."""
    scoped = f"event:{state.flow_id}:{state.trigger_id}:{key}"
    if len(scoped) > 255:
        scoped = f"event:{state.flow_id}:{hashlib.sha256(scoped.encode()).hexdigest()}"
    return scoped


def started_before(state: TriggerState, prefix: str) -> bool:
    return Execution.objects.filter(start_key__startswith=scoped_key(state, prefix)).exists()


def start_event(state: TriggerState, spec: EventTriggerSpec, event: Event, now: datetime | None = None) -> str | None:
    """Start the event's execution; returns its id, or None when the event started one already or the
    trigger's conditions say no (either way the event is done). Raises EventRefused when the flow refuses it."""
    now = now or timezone.now()
    key = scoped_key(state, event.key) if event.key else None
    if key is not None and Execution.objects.filter(start_key=key).exists():
        return None  # a re-delivery: its execution exists
    variables = {"id": state.trigger_id, "type": state.type, "date": tick_text(now), **event.variables}
    if spec.conditions and not _conditions_hold(spec, variables):
        return None
    flow = state.flow
    execution_id = new_id()
    folder = [*execution_parts(flow.namespace, flow.flow_id, execution_id), "trigger"]

    def put(name: str, source: Any) -> str:
        return storage().put(folder, name, source)

    if event.store is not None:
        event.store(put)
    if event.records is not None:
        variables["uri"] = put(RECORDS_FILE, _ion_lines(event.records))
    try:
        execution = start_execution(
            flow, labels=dict(spec.labels), trigger=variables, start_key=key, execution_id=execution_id
        )
    except IntegrityError:  # another process started it meanwhile
        remove(folder)
        return None
    except (FlowDisabled, ValueError, PermissionError) as exc:  # ReservedLabels is a ValueError
        remove(folder)
        raise EventRefused(str(exc)) from exc
    return execution.id


def _ion_lines(records: list[Any]) -> bytes:
    return b"".join(json.dumps(record, default=str).encode() + b"\n" for record in records)


def _conditions_hold(spec: EventTriggerSpec, variables: dict[str, Any]) -> bool:
    context = {"trigger": variables}
    try:
        return schedule_conditions_hold(
            spec.conditions,
            render=lambda text: render(text, context),
            evaluate_expression=lambda text: truthy(render(text, context)),
        )
    except (ConditionError, TemplateError) as exc:
        logger.warning("trigger %s: its conditions cannot be checked: %s", variables["id"], exc)
        return False
