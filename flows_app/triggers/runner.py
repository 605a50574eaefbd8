"""`tern triggers`: the process that runs polling and realtime triggers (a folder, a URL, a message bus).

Every second it renews the leases of the triggers it runs, lets go of those disabled, deleted or changed,
and claims the enabled ones nobody holds. Each claimed trigger runs in a thread of its own with its
Source (plugins_app/triggers/base.py): a realtime one receives in a loop, a polling one polls every `interval`. An
event's execution is started (event_starts) before the source acknowledges the event.

A trigger that fails (its broker unreachable, its flow refusing the event) records why in its state and
the log, and is tried again after a back-off that doubles up to BACKOFF_MAX.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.db.models import Q
from django.utils import timezone

from flows_app.engine.templating import render, render_value
from flows_app.models import TriggerState
from flows_app.services.flows import spec_of
from flows_app.spec.event_triggers import EVENT_KINDS, EventTriggerSpec
from plugins_app.triggers.base import Event, Source, SourceContext, SourceError

from .event_starts import EventRefused, start_event, started_before
from .leases import claim, new_owner, release, renew

logger = logging.getLogger("tern.triggers")

STEP_SECONDS = 1.0
RECEIVE_SECONDS = 1.0  # how long a realtime source waits for a message before the thread looks up again
BACKOFF_FIRST, BACKOFF_MAX = 1, 300  # seconds before a failed trigger is tried again: doubled each time
EVENT_TYPE_NAMES = [kind.names[0] for kind in EVENT_KINDS]


class TriggerRunner:
    def __init__(self, owner: str | None = None, lease_seconds: int | None = None, step_seconds=STEP_SECONDS):
        self.owner = owner or new_owner()
        self.lease_seconds = lease_seconds or settings.TERN["TRIGGER_LEASE_SECONDS"]
        self.step_seconds = step_seconds
        self.threads: dict[int, TriggerThread] = {}
        self.stopping = threading.Event()
        self._renewed_at = time.monotonic()

    def run(self) -> None:
        """Until `stopping` is set; then stops every trigger and gives their leases back."""
        try:
            while not self.stopping.is_set():
                try:
                    self.step()
                    self._renewed_at = time.monotonic()
                except DatabaseError as exc:
                    logger.warning("triggers: the database does not answer (%s)", exc)
                    close_old_connections()
                    if time.monotonic() - self._renewed_at > self.lease_seconds / 2:
                        self._halt(set(self.threads))  # before our leases end and another process runs them
                self.stopping.wait(self.step_seconds)
        finally:
            held = set(self.threads)
            self._halt(held)
            try:
                release(held, self.owner)
            except DatabaseError:
                pass  # they end by themselves
            connection.close()

    def step(self, now: datetime | None = None) -> None:
        now = now or timezone.now()
        held = renew(set(self.threads), self.owner, now, self.lease_seconds)
        ended = {pk for pk, thread in self.threads.items() if not thread.is_alive()}
        self._halt(set(self.threads) - held | ended)
        if ended:
            release(ended, self.owner)  # tried again after its back-off, by whichever process claims it first
        fingerprints = dict(TriggerState.objects.filter(pk__in=list(self.threads)).values_list("pk", "fingerprint"))
        self._halt({pk for pk, thread in self.threads.items() if fingerprints.get(pk) != thread.fingerprint})
        for pk, fingerprint in self._claimable(now):
            if claim(pk, self.owner, now, self.lease_seconds):
                self.threads[pk] = TriggerThread(pk, fingerprint)
                self.threads[pk].start()

    def _claimable(self, now: datetime) -> list[tuple[int, str]]:
        free = Q(lease_owner="") | Q(lease_until__isnull=True) | Q(lease_until__lt=now) | Q(lease_owner=self.owner)
        due = Q(retry_at__isnull=True) | Q(retry_at__lte=now)
        return list(
            TriggerState.objects.filter(free, due, type__in=EVENT_TYPE_NAMES, enabled=True)
            .exclude(pk__in=list(self.threads))
            .values_list("pk", "fingerprint")
        )

    def _halt(self, state_ids: set[int]) -> None:
        stopped = [self.threads.pop(pk) for pk in state_ids if pk in self.threads]
        for thread in stopped:
            thread.halt()
        for thread in stopped:
            thread.join(timeout=RECEIVE_SECONDS * 5)


class TriggerThread(threading.Thread):
    """One trigger's source, from connecting to closing."""

    def __init__(self, state_id: int, fingerprint: str):
        super().__init__(name=f"tern-trigger-{state_id}", daemon=True)
        self.state_id, self.fingerprint = state_id, fingerprint
        self.stop = threading.Event()

    def halt(self) -> None:
        self.stop.set()

    def run(self) -> None:
        source: Source | None = None
        try:
            state = TriggerState.objects.select_related("flow").get(pk=self.state_id)
            spec = event_spec(state)
            source = open_source(state, spec, self.stop)
            healthy = False
            while not self.stop.is_set():
                events = self._next_events(state, spec, source)
                if events is None:
                    continue
                if events:
                    handle(state, spec, source, events)
                elif not healthy and state.error_count:
                    clear_error(state)
                healthy = True
        except TriggerState.DoesNotExist:
            pass  # deleted meanwhile
        except Exception as exc:
            record_failure(self.state_id, exc)
        finally:
            if source is not None:
                try:
                    source.close()
                except Exception:
                    logger.debug("trigger %s: closing its source failed", self.state_id, exc_info=True)
            connection.close()

    def _next_events(self, state: TriggerState, spec: EventTriggerSpec, source: Source) -> list[Event] | None:
        """A realtime source's next messages; a polling one's poll once it is due (None while it is not)."""
        if spec.realtime:
            return source.receive(RECEIVE_SECONDS)
        now = timezone.now()
        if state.next_date is not None and state.next_date > now:
            self.stop.wait(min((state.next_date - now).total_seconds(), STEP_SECONDS))
            return None
        events = source.poll()
        state.next_date = now + spec.interval
        TriggerState.objects.filter(pk=state.pk).update(next_date=state.next_date)
        return events


def event_spec(state: TriggerState) -> EventTriggerSpec:
    flow = state.flow
    spec = spec_of(flow.revisions.defer("source").get(revision=flow.revision))
    trigger = next((t for t in spec.triggers if t.id == state.trigger_id and t.type == state.type), None)
    if trigger is None or not isinstance(trigger.spec, EventTriggerSpec):
        raise SourceError(f"flow {flow} has no trigger '{state.trigger_id}' of type {state.type}")
    return trigger.spec


def open_source(state: TriggerState, spec: EventTriggerSpec, stop: threading.Event) -> Source:
    from plugins_app.registry import import_string

    flow = state.flow
    variables = {"flow": {"namespace": flow.namespace, "id": flow.flow_id}}
    properties = {
        key: value if key in spec.kind.late else render_value(value, variables)
        for key, value in spec.properties.items()
    }
    context = SourceContext(
        flow.namespace,
        flow.flow_id,
        state.trigger_id,
        stop=stop,
        seen=lambda prefix: started_before(state, prefix),
        render=render,
        allowed_paths=tuple(settings.TERN["TRIGGER_ALLOWED_PATHS"]),
    )
    source_class: Any = import_string(spec.kind.source)
    return source_class(properties, context)


def handle(state: TriggerState, spec: EventTriggerSpec, source: Source, events: list[Event]) -> None:
    """Start each event's execution, then acknowledge them. An event the flow refuses is not acknowledged:
    the trigger fails (and backs off), and the broker delivers the event again later."""
    done, started = [], []
    try:
        for event in events:
            execution_id = start_event(state, spec, event)
            done.append(event)
            if execution_id:
                started.append(execution_id)
    except EventRefused as exc:
        raise SourceError(f"the flow refused the event: {exc}") from exc
    finally:
        if done:
            source.ack(done)
        if started:
            state.last_date, state.last_execution_id = timezone.now(), started[-1]
            state.last_error, state.error_count = "", 0
            TriggerState.objects.filter(pk=state.pk).update(
                last_date=state.last_date, last_execution_id=started[-1], last_error="", error_count=0, retry_at=None
            )


def clear_error(state: TriggerState) -> None:
    state.last_error, state.error_count = "", 0
    TriggerState.objects.filter(pk=state.pk).update(last_error="", error_count=0, retry_at=None)


def record_failure(state_id: int, exc: BaseException) -> None:
    """The trigger's error, in its state and the log; it is tried again after its back-off."""
    message = str(exc) or type(exc).__name__
    if not isinstance(exc, SourceError):
        message = f"{type(exc).__name__}: {message}"
    try:
        state = TriggerState.objects.get(pk=state_id)
    except (TriggerState.DoesNotExist, DatabaseError):
        return
    count = state.error_count + 1
    delay = min(BACKOFF_FIRST * 2 ** (count - 1), BACKOFF_MAX)
    logger.warning("trigger %s failed (%d in a row), tried again in %d s: %s", state, count, delay, message)
    TriggerState.objects.filter(pk=state_id).update(
        last_error=message[:2000], error_count=count, retry_at=timezone.now() + timedelta(seconds=delay)
    )
