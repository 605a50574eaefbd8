"""Redis trigger sources: a list (Kestra's list Trigger and RealtimeTrigger) and a pub/sub channel.

A list is consumed from its head, as Kestra's LPOP does, but never destroyed before `ack`: each element is
moved atomically (LMOVE) to the trigger's processing list `<key>:tern:processing:<trigger name>` and removed
from there on `ack`. A new source on the same trigger first hands back what that list still holds, in
order: the elements a crash left between receive and ack. List elements have no id, so Events have no key.

Pub/sub has neither acknowledgement nor replay: a message published while the source is not subscribed
is lost, and one received before a crash is too. That is Redis's semantics; use a list to keep messages.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import redis

from flows_app.engine.vocabulary import DurationError, parse_duration
from plugins_app.buses.redis import connect, decode, serde_of, server_name

from .base import Event, Source, SourceError

DEFAULT_MAX_RECORDS = 500  # a batch when neither maxRecords nor maxDuration is set: what is there now...
DEFAULT_MAX_SECONDS = 1.0  # ...bounded by these
REALTIME_BATCH = 100  # a realtime receive takes at most this many more once one has come


class RedisSource(Source):
    """The connection and the properties every Redis source reads."""

    def __init__(self, properties, context):
        super().__init__(properties, context)
        self.url = str(properties.get("url") or "")
        self.server = server_name(self.url)
        self.client: redis.Redis | None = None

    def _connect(self) -> redis.Redis:
        if self.client is None:
            try:
                self.serde = serde_of(self.properties.get("serdeType"))
                client = connect(self.url)
                client.ping()
            except ValueError as exc:
                raise SourceError(str(exc)) from None
            except redis.RedisError as exc:
                raise self._error(exc) from None
            self.client = client
        return self.client

    def _error(self, exc: Exception) -> SourceError:
        return SourceError(f"Redis {self.server}: {exc}")

    def _decode(self, raw: bytes) -> Any:
        return decode(self.serde, raw)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def _limits(properties) -> tuple[int | None, float | None]:
    """(maxRecords, maxDuration in seconds); with neither, Tern's bounds (Kestra's list would refuse)."""
    max_records = properties.get("maxRecords")
    max_duration = properties.get("maxDuration")
    try:
        records = int(max_records) if max_records not in (None, "") else None
        seconds = parse_duration(max_duration).total_seconds() if max_duration not in (None, "") else None
    except (ValueError, DurationError) as exc:
        raise SourceError(f"maxRecords / maxDuration: {exc}") from None
    if records is None and seconds is None:
        return DEFAULT_MAX_RECORDS, DEFAULT_MAX_SECONDS
    return records, seconds


class _ListSource(RedisSource):
    def __init__(self, properties, context):
        super().__init__(properties, context)
        self.key = str(properties.get("key") or "")
        self.processing = f"{self.key}:tern:processing:{context.name}"
        self.dead = f"{self.key}:tern:dead:{context.name}"
        self.recovered: deque[bytes] | None = None  # read once, at the first look

    def _start(self) -> redis.Redis:
        client = self._connect()
        if self.recovered is None:
            try:
                self.recovered = deque(client.lrange(self.processing, 0, -1))
            except redis.RedisError as exc:
                raise self._error(exc) from None
        return client

    def _move(self, client: redis.Redis, n: int) -> list[bytes]:
        """Up to `n` elements from the list's head to the processing list's tail, each move atomic."""
        pipe = client.pipeline(transaction=False)
        for _ in range(n):
            pipe.lmove(self.key, self.processing, "LEFT", "RIGHT")
        return [raw for raw in pipe.execute() if raw is not None]

    def _decoded(self, raws: list[bytes]) -> list[Any]:
        """The elements' values. One that does not decode moves to the dead list (kept, not retried
        forever) and fails the source: a new one re-delivers the others from the processing list."""
        values = []
        for raw in raws:
            try:
                values.append(self._decode(raw))
            except ValueError:
                pipe = self.client.pipeline(transaction=True)
                pipe.lrem(self.processing, 1, raw).rpush(self.dead, raw)
                pipe.execute()
                raise SourceError(
                    f"an element of {self.key} is not JSON ({raw[:80]!r}): moved to list {self.dead}"
                ) from None
        return values

    def ack(self, events: list[Event]) -> None:
        raws = [raw for event in events for raw in (event.handle if isinstance(event.handle, list) else [event.handle])]
        if not raws:
            return
        try:
            pipe = self._connect().pipeline(transaction=False)
            for raw in raws:
                pipe.lrem(self.processing, 1, raw)  # equal elements are interchangeable: any one of them
            pipe.execute()
        except redis.RedisError as exc:
            raise self._error(exc) from None


class ListBatchSource(_ListSource):
    """Kestra's list `Trigger`: one execution per batch, `trigger.count` and `trigger.uri`."""

    def poll(self) -> list[Event]:
        client = self._start()
        max_records, max_seconds = _limits(self.properties)
        per_move = int(self.properties.get("count") or 100)
        deadline = time.monotonic() + max_seconds if max_seconds is not None else None
        raws: list[bytes] = []
        try:
            # 1. what a crashed source left, 2. then the list's head, until it is empty or a limit is hit
            while self.recovered and (max_records is None or len(raws) < max_records):
                raws.append(self.recovered.popleft())
            while not self.context.stop.is_set():
                want = per_move if max_records is None else min(per_move, max_records - len(raws))
                if want <= 0:
                    break
                moved = self._move(client, want)
                raws.extend(moved)
                if len(moved) < want or (deadline is not None and time.monotonic() >= deadline):
                    break
        except redis.RedisError as exc:
            raise self._error(exc) from None
        if not raws:
            return []
        records = self._decoded(raws)
        return [Event(variables={"count": len(records)}, key=None, handle=raws, records=records)]


class ListRealtimeSource(_ListSource):
    """Kestra's list `RealtimeTrigger`: one execution per element, `trigger.value`."""

    realtime = True

    def receive(self, timeout: float) -> list[Event]:
        client = self._start()
        raws: list[bytes] = []
        try:
            while self.recovered and len(raws) < REALTIME_BATCH:
                raws.append(self.recovered.popleft())
            if not raws and not self.context.stop.is_set():
                first = client.blmove(self.key, self.processing, max(timeout, 0.01), "LEFT", "RIGHT")
                if first is not None:
                    raws = [first, *self._move(client, REALTIME_BATCH - 1)]
        except redis.RedisError as exc:
            raise self._error(exc) from None
        return [
            Event(variables={"value": value}, key=None, handle=raw)
            for raw, value in zip(raws, self._decoded(raws), strict=True)
        ]


class _PubSubSource(RedisSource):
    def __init__(self, properties, context):
        super().__init__(properties, context)
        self.channel = str(properties.get("channel") or "")
        self.pubsub = None

    def _subscribe(self):
        if self.pubsub is None:
            pubsub = self._connect().pubsub()
            try:
                pubsub.subscribe(self.channel)
            except redis.RedisError as exc:
                pubsub.close()
                raise self._error(exc) from None
            self.pubsub = pubsub
        return self.pubsub

    def _next(self, timeout: float) -> Any:
        """The next message's decoded value within `timeout` (0: only one already here), else None."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self._subscribe().get_message(timeout=max(deadline - time.monotonic(), 0.0))
            except redis.RedisError as exc:
                raise self._error(exc) from None
            if message is not None and message["type"] == "message":
                try:
                    return self._decode(message["data"])
                except ValueError:
                    # nothing to keep it in, nothing to re-deliver it: fail the source so it is seen
                    raise SourceError(f"a message on {self.channel} is not JSON: {message['data'][:80]!r}") from None
            if message is None and time.monotonic() >= deadline:
                return None

    def close(self) -> None:
        if self.pubsub is not None:
            self.pubsub.close()
            self.pubsub = None
        super().close()


_NOTHING = object()


class PubSubBatchSource(_PubSubSource):
    """A channel, polled: one execution per batch of the messages since the last poll (`trigger.count`,
    `trigger.uri`). Subscribed from the first poll on; Redis holds what comes between polls."""

    def poll(self) -> list[Event]:
        first_look = self.pubsub is None
        self._subscribe()
        if first_look:
            return []  # nothing was kept for us before we subscribed
        max_records, max_seconds = _limits(self.properties)
        waits = self.properties.get("maxDuration") not in (None, "")
        deadline = time.monotonic() + (max_seconds or 0)
        records: list[Any] = []
        while not self.context.stop.is_set() and (max_records is None or len(records) < max_records):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            value = self._next(min(left, 1.0) if waits else 0)
            if value is None:
                if waits:
                    continue
                break
            records.append(value)
        if not records:
            return []
        return [Event(variables={"count": len(records)}, key=None, records=records)]


class PubSubRealtimeSource(_PubSubSource):
    """A channel, listened to: one execution per message, `trigger.value` and `trigger.channel`."""

    realtime = True

    def receive(self, timeout: float) -> list[Event]:
        first = self._next(timeout)
        if first is None:
            return []
        values = [first]
        while len(values) < REALTIME_BATCH:
            value = self._next(0)
            if value is None:
                break
            values.append(value)
        return [Event(variables={"value": v, "channel": self.channel}, key=None) for v in values]
