"""The AMQP (RabbitMQ) triggers: a queue's messages as a batch every interval (Trigger), or one execution per
message (RealtimeTrigger). A message is acknowledged only in `ack`, once its execution exists; one delivered
and not acknowledged goes back to the queue when the connection closes, flagged redelivered."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from plugins_app.buses.amqp import AmqpProblem, Server, connect, decode, drop, explain, gather, limits_of, server_of

from .base import Event, Source, SourceContext, SourceError

PREFETCH = 100  # a realtime consumer holds at most this many unacknowledged messages
HEARTBEAT = 60  # seconds: a realtime connection is long-lived, so a dead one must be noticed
SWEEP = 0.01  # seconds: once a message came, how long to wait for more already on the way


class _AmqpSource(Source):
    def __init__(self, properties: Mapping[str, Any], context: SourceContext):
        super().__init__(properties, context)
        self.connection: Any = None
        self.channel: Any = None
        self._server: Server | None = None

    @property
    def server(self) -> Server:
        if self._server is None:
            with self._broker():
                self._server = server_of(self.properties)
        return self._server

    @property
    def queue(self) -> str:
        queue = self.properties.get("queue")
        if not queue:
            raise SourceError("missing queue: the queue to read")
        return str(queue)

    @property
    def serde(self) -> str:
        serde = str(self.properties.get("serdeType") or "STRING").upper()
        if serde not in ("STRING", "JSON"):
            raise SourceError(f"serdeType: '{serde}' is not one of STRING, JSON")
        return serde

    @property
    def auto_ack(self) -> bool:
        value = self.properties.get("autoAck", False)
        return value if isinstance(value, bool) else str(value).strip().lower() == "true"

    @contextmanager
    def _broker(self) -> Iterator[None]:
        """The broker's errors as SourceErrors that name it; the connection is dropped after one."""
        try:
            yield
        except SourceError:
            raise
        except AmqpProblem as exc:
            self._close()
            raise SourceError(str(exc)) from None
        except Exception as exc:
            self._close()
            if self._server is None:
                raise
            raise SourceError(str(explain(self._server, exc))) from None

    def _open(self, heartbeat: int = 0) -> None:
        server, queue = self.server, self.queue
        with self._broker():
            self.connection = connect(server, heartbeat=heartbeat)
            self.channel = self.connection.channel()
            self.channel.queue_declare(queue, passive=True)  # a missing queue is said now, by name

    def _close(self, graceful: bool = False) -> None:
        if self.connection is not None:
            drop(self.connection, graceful)
        self.connection = self.channel = None

    def close(self) -> None:
        self._close(graceful=True)


class AmqpBatchSource(_AmqpSource):
    """io.kestra.plugin.amqp.Trigger: one event for the messages there are (up to maxRecords, for at most
    maxDuration), with `count`; the runner writes them to `trigger.uri`. Each poll opens its own connection,
    which `ack` closes: nothing idles between polls."""

    def poll(self) -> list[Event]:
        self._close(graceful=True)  # a batch never acknowledged goes back to the queue, to be read again now
        limits, serde, no_ack = self._limits(), self.serde, self.auto_ack
        self._open()
        with self._broker():
            got = gather(self.channel, self.queue, serde, limits, no_ack=no_ack, pause=self.context.stop.wait)
        if not got:
            self._close(graceful=True)
            return []
        records = [record for _, record in got]
        return [Event(variables={"count": len(records)}, key=batch_key(records), handle=got[-1][0], records=records)]

    def ack(self, events: list[Event]) -> None:
        if not events:
            return
        if self.channel is None:
            raise SourceError(f"{self.server}: the batch's connection is closed; its messages will come again")
        with self._broker():
            if not self.auto_ack:
                for event in events:
                    self.channel.basic_ack(event.handle, multiple=True)
        self._close(graceful=True)

    def _limits(self) -> Any:
        with self._broker():
            return limits_of(self.properties.get("maxRecords"), self.properties.get("maxDuration"))


def batch_key(records: list[dict[str, Any]]) -> str | None:
    """The first and last message ids: a batch re-delivered whole (an unacknowledged batch goes back to the head
    of the queue, in order) has the same key. None when a message has no id."""
    ids = [record.get("messageId") for record in records]
    if not all(ids):
        return None
    return ids[0] if len(ids) == 1 else f"{ids[0]}..{ids[-1]}"


class AmqpRealtimeSource(_AmqpSource):
    """io.kestra.plugin.amqp.RealtimeTrigger: one event per message, its `trigger.*` Kestra's Message (data,
    headers, messageId...), its key the message's id."""

    realtime = True

    def __init__(self, properties: Mapping[str, Any], context: SourceContext):
        super().__init__(properties, context)
        self._arrived: list[Any] = []
        self._cancelled = False

    def _open(self, heartbeat: int = HEARTBEAT) -> None:
        no_ack = self.auto_ack
        self.serde  # noqa: B018 -- a bad serdeType is said before connecting
        super()._open(heartbeat)
        tag = str(self.properties.get("consumerTag") or self.context.name)
        self._arrived, self._cancelled = [], False
        with self._broker():
            self.channel.basic_qos(0, PREFETCH, False)
            self.channel.basic_consume(
                self.queue, consumer_tag=tag, no_ack=no_ack, callback=self._arrived.append, on_cancel=self._cancel
            )

    def _cancel(self, consumer_tag: str) -> None:
        self._cancelled = True

    def receive(self, timeout: float) -> list[Event]:
        if self.connection is None:
            self._open()
        deadline = time.monotonic() + timeout
        with self._broker():
            self.connection.heartbeat_tick()
            wait = timeout
            while len(self._arrived) < PREFETCH and not self._cancelled and not self.context.stop.is_set():
                try:
                    self.connection.drain_events(timeout=max(wait, 0.001))
                except TimeoutError:
                    break
                wait = min(SWEEP, deadline - time.monotonic())
                if wait <= 0:
                    break
            if self._cancelled:
                raise SourceError(f"{self.server}: the broker cancelled the consumer of queue '{self.queue}'")
            arrived = list(self._arrived)
            self._arrived.clear()  # the same list: the consumer's callback appends to it
            serde = self.serde
            events = []
            for message in arrived:
                record = decode(message, serde)
                events.append(Event(variables=record, key=record.get("messageId"), handle=message.delivery_tag))
            return events

    def ack(self, events: list[Event]) -> None:
        if not events or self.auto_ack:
            return
        if self.channel is None:
            raise SourceError(f"{self.server}: the connection is closed; its messages will come again")
        with self._broker():
            for event in events:
                self.channel.basic_ack(event.handle)
