"""MQTT trigger sources: Kestra's `Trigger` (one execution per batch) and `RealtimeTrigger` (one per message).

Both keep a persistent session on the broker under a stable client id (`clientId`, else the trigger's
name) and acknowledge a message (PUBACK) only in `ack`, once its execution exists: a message received but
not acknowledged stays in the session and is sent again, flagged DUP, to the next connection. They
subscribe at QoS 1 at most: QoS 2's handshake hands a message over (PUBREC) before its execution exists,
and paho keeps that state in memory only, so a crash would lose it.

Keys. A packet id (1-65535) names a message only while it is in flight: the broker reuses it once the
message is acknowledged. A message's *delivery id* is `<packet id>.<digest of client id, topic, payload and
MQTT 5 response topic and correlation data>`, the same on each delivery; its event key is that id plus
the time it was received, so a new message is never refused as a duplicate of an old one. A DUP message
may have been delivered before: when this trigger started an execution under its delivery id
(`context.seen`), that execution is the message's and the source acknowledges it without an event. (The
only message this could wrongly skip: a DUP whose first delivery never became an execution, identical to
the message 65535 deliveries earlier that had its packet id.)

A message that does not decode under `serdeType` can never become an execution: it is acknowledged and
the source fails, naming it. MQTT 3.1.1 re-sends the retained messages at each SUBSCRIBE, flagged RETAIN
(a message published since, queued in the session, is not flagged): on a session the broker kept, such a
replay is acknowledged unseen. MQTT 5 asks the broker not to replay them.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

from flows_app.engine.vocabulary import DurationError, parse_duration
from plugins_app.buses.mqtt import MqttConnection, MqttError, record_of, serde_of, settings_of, topics_of

from .base import Event, Source, SourceError

CONNECT_SECONDS = 10.0  # without connectionTimeout (Kestra's 30 s would hold the runner's thread longer)
REALTIME_BATCH = 100  # unacknowledged messages the broker may send a realtime source (MQTT 5)
DEFAULT_MAX_RECORDS = 500  # a batch when neither maxRecords nor maxDuration is set: what is there now...
DEFAULT_MAX_SECONDS = 1.0  # ...bounded by these
QUIET_SECONDS = 0.2  # ...and ended by this long without a message


def client_id_of(properties, context) -> str:
    """`clientId`, else the trigger's name with any character a broker might refuse replaced."""
    return str(properties.get("clientId") or "") or re.sub(r"[^A-Za-z0-9._-]", "-", context.name)


def delivery_id(client_id: str, record: dict[str, Any], payload: bytes) -> str:
    digest = hashlib.sha256()
    for part in (client_id, record["topic"], record["responseTopic"] or "", record["correlationData"] or ""):
        digest.update(part.encode() + b"\0")
    digest.update(payload)
    return f"{record['id']}.{digest.hexdigest()[:16]}"


class _MqttSource(Source):
    receive_maximum = REALTIME_BATCH

    def __init__(self, properties, context):
        super().__init__(properties, context)
        self.client_id = client_id_of(properties, context)
        self.connection: MqttConnection | None = None
        self.inbox: list[Any] = []  # paho messages received, not yet looked at

    @property
    def server(self) -> str:
        return self.connection.name if self.connection else f"MQTT {self.properties.get('server')}"

    def _open(self) -> MqttConnection:
        if self.connection is None:
            try:
                self.serde = serde_of(self.properties.get("serdeType"))
                self.topics = topics_of(self.properties.get("topic"))
                qos = self.properties.get("qos")
                self.qos = min(1 if qos in (None, "") else int(qos), 1)
                settings = settings_of(
                    {**self.properties, "clientId": self.client_id},
                    default_timeout=CONNECT_SECONDS,
                    persistent=True,
                    manual_ack=True,
                    receive_maximum=self.receive_maximum,
                )
            except (MqttError, ValueError) as exc:
                raise SourceError(str(exc)) from None
            self.connection = MqttConnection(settings, self._arrived)
            try:
                self.connection.open(stop=self.context.stop.is_set)
                self.connection.subscribe(self.topics, self.qos, retained_once=True)
            except MqttError as exc:
                self.close()
                raise SourceError(str(exc)) from None
        return self.connection

    def _pump(self, seconds: float) -> None:
        try:
            self._open().pump(seconds)
        except MqttError as exc:
            raise SourceError(str(exc)) from None

    def _arrived(self, message: Any) -> None:
        connection = self.connection
        if not connection.settings.v5 and connection.session_present and message.retain:
            connection.ack(message.mid, message.qos)  # a retained message our SUBSCRIBE replayed: at once
        else:
            self.inbox.append(message)

    def _take(self, limit: int) -> list[tuple[Any, dict[str, Any], str]]:
        """Up to `limit` messages of the inbox, each with its record and delivery id."""
        taken = []
        while self.inbox and len(taken) < limit:
            message = self.inbox.pop(0)
            try:
                record = record_of(message, self.serde, self.connection.settings.v5)
            except ValueError:
                self._ack_now([(message.mid, message.qos)])
                raise SourceError(
                    f"{self.server}: message {message.mid} on {message.topic} is not JSON ({message.payload[:80]!r}):"
                    " acknowledged and skipped (serdeType STRING reads any payload)"
                ) from None
            taken.append((message, record, delivery_id(self.client_id, record, message.payload)))
        return taken

    def _ack_now(self, handles: list[tuple[int, int]]) -> None:
        try:
            for mid, qos in handles:
                self.connection.ack(mid, qos)
        except MqttError as exc:
            raise SourceError(str(exc)) from None

    def ack(self, events: list[Event]) -> None:
        if not events:
            return
        if self.connection is None:
            raise SourceError(f"{self.server}: the connection ended before the acknowledgement")
        self._ack_now([h for e in events for h in (e.handle if isinstance(e.handle, list) else [e.handle])])

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        self.inbox.clear()  # not acknowledged: the broker sends them again to the next connection


class MqttRealtimeSource(_MqttSource):
    """Kestra's `RealtimeTrigger`: one execution per message, `trigger.payload`, `trigger.topic`..."""

    realtime = True

    def receive(self, timeout: float) -> list[Event]:
        deadline = time.monotonic() + timeout
        self._open()
        while not self.inbox and not self.context.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._pump(min(left, 0.2))
        if self.inbox:
            self._pump(0)  # what else has come with it
        events = []
        for message, record, did in self._take(REALTIME_BATCH):
            if message.qos == 0:
                events.append(Event(variables=record, key=None, handle=(message.mid, 0)))
            elif message.dup and self.context.seen(f"{did}~"):
                self._ack_now([(message.mid, message.qos)])  # its execution exists: a re-delivery
            else:
                events.append(Event(variables=record, key=f"{did}~{time.time_ns()}", handle=(message.mid, message.qos)))
        return events


class MqttBatchSource(_MqttSource):
    """Kestra's `Trigger`: each poll connects, takes the messages there are (within maxRecords and
    maxDuration) as one execution (`trigger.messagesCount`, `trigger.uri`), and disconnects after `ack`.
    Between polls the broker keeps what comes in the trigger's session."""

    def poll(self) -> list[Event]:
        if self.connection is not None:
            self.close()  # a batch not acknowledged: reconnecting has the broker send it again
        max_records, max_seconds, waits = self._limits()
        self.receive_maximum = max_records
        self._open()
        started = last = time.monotonic()
        taken: list = []
        while len(taken) < max_records and not self.context.stop.is_set():
            now = time.monotonic()
            if now - started >= max_seconds or (not waits and now - last >= QUIET_SECONDS):
                break
            if not self.inbox:
                self._pump(min(0.1, max_seconds - (now - started)))
            if self.inbox:
                last = time.monotonic()
                taken += self._take(max_records - len(taken))
                taken = self._without_started_batches(taken)  # acknowledged ones make room for more
        if not taken:
            self.close()
            return []
        first, n = taken[0][2], len(taken)
        return [
            Event(
                variables={"messagesCount": n},
                key=f"{first}~{n}~{time.time_ns()}" if taken[0][0].qos else None,
                handle=[(m.mid, m.qos) for m, _, _ in taken],
                records=[record for _, record, _ in taken],
            )
        ]

    def ack(self, events: list[Event]) -> None:
        super().ack(events)
        self.close()

    def _without_started_batches(self, taken: list) -> list:
        """A batch whose execution exists comes again (DUP, in order) when its acknowledgement was lost:
        its key says with which message it began and how many it had. Acknowledge it, keep the rest."""
        while taken and taken[0][0].dup and self.context.seen(f"{taken[0][2]}~"):
            n = next((n for n in range(len(taken), 0, -1) if self.context.seen(f"{taken[0][2]}~{n}~")), None)
            if n is None:
                break  # it had more messages than came again: start them, rather than risk losing one
            self._ack_now([(m.mid, m.qos) for m, _, _ in taken[:n]])
            taken = taken[n:]
        return taken

    def _limits(self) -> tuple[int, float, bool]:
        """(max records, max seconds, whether to wait the whole duration): Kestra's maxDuration waits;
        without it, what the session holds now (maxRecords, else Tern's bounds)."""
        records, duration = self.properties.get("maxRecords"), self.properties.get("maxDuration")
        try:
            max_records = int(records) if records not in (None, "") else DEFAULT_MAX_RECORDS
            seconds = parse_duration(duration).total_seconds() if duration not in (None, "") else None
        except (ValueError, DurationError) as exc:
            raise SourceError(f"maxRecords / maxDuration: {exc}") from None
        return max_records, seconds if seconds is not None else DEFAULT_MAX_SECONDS, seconds is not None
