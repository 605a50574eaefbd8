"""NATS JetStream triggers: each reads its subject through a durable pull consumer and acks only in `ack`.

nats-py is asyncio and a Source is called from one synchronous thread, so each connection owns a private
event loop running in a thread of its own (`_Loop`): every call hops onto it and waits. Between calls
that loop keeps answering the server's PINGs, so an idle polling trigger is not dropped as stale.
The NATS tasks (plugins_app/buses/nats.py) connect and consume through this module too.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

from nats import errors as nats_errors
from nats.aio.client import Client, RawCredentials
from nats.aio.msg import Msg
from nats.js import api
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from flows_app.engine.vocabulary import DurationError, parse_duration

from .base import Event, Source, SourceContext, SourceError

# Seconds a fetched but unacked message waits before JetStream re-delivers it, for the consumers Tern
# creates (JetStream's own default). A consumer that exists already keeps its own ack wait.
ACK_WAIT = 30.0
CONNECT_TIMEOUT = 2.0
BATCH_SIZE = 10  # Kestra's batchSize: messages asked for per fetch
POLL_DURATION = 2.0  # Kestra's pollDuration: how long one fetch waits when nothing is there
UNBOUNDED = (500, 1.0)  # a trigger's batch (messages, seconds) when neither maxRecords nor maxDuration is set
MIN_WAIT = 0.05  # a shorter fetch would expire on the server before it starts

POLICIES = {
    "all": api.DeliverPolicy.ALL,
    "last": api.DeliverPolicy.LAST,
    "new": api.DeliverPolicy.NEW,
    "bystartsequence": api.DeliverPolicy.BY_START_SEQUENCE,
    "bystarttime": api.DeliverPolicy.BY_START_TIME,
    "lastpersubject": api.DeliverPolicy.LAST_PER_SUBJECT,
}
POLICY_NAMES = "All, Last, New, ByStartSequence, ByStartTime, LastPerSubject"


class _JetStreamSource(Source):
    """A trigger's pull consumer, opened at its first look: `durableId`, or one named after the trigger."""

    def __init__(self, properties: Mapping[str, Any], context: SourceContext):
        super().__init__(properties, context)
        self._pull: JetStreamPull | None = None

    def ack(self, events: list[Event]) -> None:
        messages = [m for event in events for m in event.handle]
        if messages:
            self._consumer().ack(messages)

    def close(self) -> None:
        if self._pull is not None:
            self._pull.close()
            self._pull = None

    def _consumer(self) -> JetStreamPull:
        if self._pull is None:
            durable = str(self.properties.get("durableId") or durable_name(self.context))
            # Kept before opening, so that `close` releases a connection that opened halfway.
            self._pull = JetStreamPull(self.properties, durable, client_name=self.context.name)
            self._pull.open()
        return self._pull


class NatsBatchSource(_JetStreamSource):
    """`io.kestra.plugin.nats.core.Trigger`: one execution per batch, `trigger.messagesCount` and `uri`."""

    def poll(self) -> list[Event]:
        max_records = count(self.properties, "maxRecords", None)
        max_duration = seconds(self.properties, "maxDuration", None)
        if max_records is None and max_duration is None:
            max_records, max_duration = UNBOUNDED
        pull = self._consumer()
        messages = pull.gather(
            count(self.properties, "batchSize", BATCH_SIZE),
            seconds(self.properties, "pollDuration", POLL_DURATION),
            max_records,
            max_duration,
            stop=self.context.stop.is_set,
        )
        if not messages:
            return []
        sequences = [m.metadata.sequence.stream for m in messages]
        return [
            Event(
                variables={"messagesCount": len(messages)},
                key=f"{pull.stream_id}:{min(sequences)}-{max(sequences)}",
                handle=messages,
                records=[record(m) for m in messages],
            )
        ]


class NatsRealtimeSource(_JetStreamSource):
    """`io.kestra.plugin.nats.core.RealtimeTrigger`: one execution per message, `trigger.subject`, `data`..."""

    realtime = True

    def receive(self, timeout: float) -> list[Event]:
        pull = self._consumer()
        if timeout < MIN_WAIT:
            return []
        messages = pull.fetch(count(self.properties, "batchSize", BATCH_SIZE), timeout)
        return [Event(variables=record(m), key=pull.key(m), handle=[m]) for m in messages]


class JetStreamPull:
    """One connection and one pull consumer with explicit acks on a subject; nothing is acked before `ack`.

    `durable` None makes an ephemeral consumer (Kestra's Consume task without durableId)."""

    def __init__(self, properties: Mapping[str, Any], durable: str | None, client_name: str):
        self.properties = properties
        self.subject = str(properties.get("subject") or "")
        self.url = redact(str(properties.get("url") or ""))
        self.durable = durable
        self.client_name = client_name
        self.stream = ""
        self.stream_id = ""  # the stream's name and creation time: its sequences restart when it is re-created
        self._client: Client | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._loop = _Loop(f"nats {client_name}")

    def open(self) -> None:
        self._run(self._open(), CONNECT_TIMEOUT * 2 + 10)

    def fetch(self, batch: int, wait: float) -> list[Msg]:
        """The messages that came within `wait` seconds, at most `batch`, unacked."""
        return self._run(self._fetch(batch, wait), wait + 5)

    def gather(
        self,
        batch_size: int,
        poll_duration: float,
        max_records: int | None = None,
        max_duration: float | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> list[Msg]:
        """Kestra's Consume loop: fetch until a fetch brings nothing new, `max_records` are there or
        `max_duration` is over. Unacked messages come back after their ack wait: a fetch of only those
        ends the loop too, or it would never end."""
        start = time.monotonic()
        # By stream sequence: a message re-delivered while we gather (its ack wait ran out) comes once,
        # its latest delivery the one acked.
        messages: dict[int, Msg] = {}
        while not (stop and stop()):
            want = batch_size if max_records is None else min(batch_size, max_records - len(messages))
            wait = poll_duration
            if max_duration is not None:
                wait = min(wait, start + max_duration - time.monotonic())
            if want < 1 or wait < MIN_WAIT:
                break
            before = len(messages)
            for message in self.fetch(want, wait):
                messages[message.metadata.sequence.stream] = message
            if len(messages) == before:  # nothing came, or only messages we hold already
                break
        return list(messages.values())

    def ack(self, messages: list[Msg]) -> None:
        self._run(self._ack(messages), 15)

    def key(self, message: Msg) -> str:
        return f"{self.stream_id}:{message.metadata.sequence.stream}"

    def close(self) -> None:
        try:
            if self._client is not None:
                self._run(self._client.close(), 5)
        except SourceError:
            pass
        finally:
            self._client = None
            self._loop.close()

    async def _open(self) -> None:
        if not self.subject:
            raise SourceError("subject: missing: the subject to consume")
        config = consumer_config(self.properties)
        self._client = await connect(self.properties, self.client_name)
        js = self._client.jetstream()
        self.stream = await stream_of(js, self.subject, self.url)
        if self.stream is None:
            raise SourceError(
                f"no JetStream stream on NATS server {self.url} holds subject '{self.subject}': "
                f"add one, e.g. nats stream add --subjects '{self.subject}'"
            )
        info = await js.stream_info(self.stream)
        created = f":{int(info.created.timestamp() * 1_000_000)}" if info.created else ""
        self.stream_id = f"{self.stream}{created}"
        if self.durable:
            await self._check_consumer(js)
        try:
            self._sub = await js.pull_subscribe(self.subject, durable=self.durable, stream=self.stream, config=config)
        except APIError as exc:
            raise SourceError(
                f"NATS server {self.url}: cannot create the consumer {self.durable or ''} of subject "
                f"'{self.subject}' on stream '{self.stream}': {exc.description or exc}"
            ) from None

    async def _check_consumer(self, js: JetStreamContext) -> None:
        """An existing durable consumer is used as it is, but only when it reads this subject."""
        try:
            info = await js.consumer_info(self.stream, self.durable)
        except NotFoundError:
            return
        filtered = info.config.filter_subject
        if filtered and filtered != self.subject:
            raise SourceError(
                f"durableId '{self.durable}' is a consumer of '{filtered}' on stream '{self.stream}', "
                f"not of '{self.subject}'"
            )

    async def _fetch(self, batch: int, wait: float) -> list[Msg]:
        if self._sub is None or self._client is None or self._client.is_closed:
            raise SourceError(f"the connection to NATS server {self.url} is closed")
        try:
            return await self._sub.fetch(batch, timeout=wait)
        except TimeoutError:  # nothing came (nats' TimeoutError is one too)
            return []

    async def _ack(self, messages: list[Msg]) -> None:
        if self._client is None or self._client.is_closed:
            raise SourceError(f"the connection to NATS server {self.url} is closed: the messages come back")
        for message in messages:
            try:
                await message.ack()
            except nats_errors.MsgAlreadyAckdError:
                pass
        await self._client.flush(timeout=10)  # the server has the acks once its PONG is back

    def _run(self, coroutine: Coroutine[Any, Any, Any], timeout: float) -> Any:
        try:
            return self._loop.run(coroutine, timeout)
        except SourceError:
            raise
        except (nats_errors.Error, OSError) as exc:  # OSError: also timeouts
            raise SourceError(f"NATS server {self.url}: {describe(exc)}") from exc


async def connect(properties: Mapping[str, Any], name: str) -> Client:
    """A connected client, without reconnection: a lost connection fails the next call instead."""
    options = connect_options(properties)
    url = redact(str(properties.get("url") or ""))
    last_error: list[BaseException] = []

    async def note(exc: BaseException) -> None:  # nats-py would log each failed attempt
        last_error[:] = [exc]

    client = Client()
    try:
        await asyncio.wait_for(
            client.connect(
                **options,
                name=name,
                allow_reconnect=False,
                connect_timeout=CONNECT_TIMEOUT,
                max_reconnect_attempts=1,  # nats-py: 0 is "forever"; 1 is two tries, one after reconnect_time_wait
                reconnect_time_wait=0.1,
                error_cb=note,
            ),
            CONNECT_TIMEOUT * 2 + 1,
        )
    except (nats_errors.Error, OSError) as exc:
        raise SourceError(
            f"cannot connect to NATS server {url}: {describe(last_error[0] if last_error else exc)}"
        ) from None
    return client


def connect_options(properties: Mapping[str, Any]) -> dict[str, Any]:
    """nats-py's connect options from Kestra's url, username, password, token and creds."""
    url = str(properties.get("url") or "")
    servers = [part.strip() for part in url.split(",") if part.strip()]
    if not servers:
        raise SourceError("url: missing: the NATS server, e.g. nats://localhost:4222")
    options: dict[str, Any] = {"servers": servers}
    if properties.get("username") is not None and properties.get("password") is not None:
        options["user"], options["password"] = str(properties["username"]), str(properties["password"])
    if properties.get("token"):
        options["token"] = str(properties["token"])
    if properties.get("creds"):  # the content of a .creds file, as in Kestra
        options["user_credentials"] = RawCredentials(str(properties["creds"]))
    return options


async def stream_of(js: JetStreamContext, subject: str, url: str) -> str | None:
    """The stream holding `subject`, or None; SourceError when the server has no JetStream."""
    try:
        return await js.find_stream_name_by_subject(subject)
    except NotFoundError:
        return None
    except nats_errors.NoRespondersError:
        raise SourceError(f"NATS server {url} has no JetStream (start nats-server with -js)") from None


def consumer_config(properties: Mapping[str, Any]) -> api.ConsumerConfig:
    """A new consumer's configuration: explicit acks, Kestra's deliverPolicy (default All) and since."""
    raw = properties.get("deliverPolicy")
    start = _since(properties.get("since"))
    if raw is None:
        policy = api.DeliverPolicy.BY_START_TIME if start else api.DeliverPolicy.ALL
    else:
        found = POLICIES.get(str(raw).replace("_", "").lower())
        if found is None:
            raise SourceError(f"deliverPolicy: '{raw}' is not one of {POLICY_NAMES}")
        policy = found
    if policy == api.DeliverPolicy.BY_START_TIME and start is None:
        raise SourceError("deliverPolicy ByStartTime needs since, the time to start from")
    if start is not None and policy != api.DeliverPolicy.BY_START_TIME:
        raise SourceError(f"since goes with deliverPolicy ByStartTime (or none), not {raw}")
    return api.ConsumerConfig(
        ack_policy=api.AckPolicy.EXPLICIT, deliver_policy=policy, opt_start_time=start, ack_wait=ACK_WAIT
    )


def _since(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        text = re.sub(r"\[[^\]]*\]$", "", str(value).strip())  # Java's zone suffix: ...+01:00[Europe/Paris]
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise SourceError(f"since: '{value}' is not an ISO 8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def record(message: Msg) -> dict[str, Any]:
    """A message as Kestra's NATS plugins give it: subject, headers (name -> values), data, timestamp."""
    return {
        "subject": message.subject,
        "headers": {name: [value] for name, value in (message.headers or {}).items()},
        "data": message.data.decode("utf-8", errors="replace"),
        "timestamp": _timestamp(message),
    }


def _timestamp(message: Msg) -> str:
    """When the stream stored the message, to the nanosecond as Kestra's Instant: nats-py's datetime is
    rounded, so a `since` copied from it could start after the very message."""
    tokens = (message.reply or "").split(".")
    nanos = int(tokens[7] if len(tokens) == 9 else tokens[Msg.Ack.Timestamp])  # $JS.ACK v1, v2 (with domain)
    whole, fraction = divmod(nanos, 1_000_000_000)
    return f"{datetime.fromtimestamp(whole, UTC):%Y-%m-%dT%H:%M:%S}.{fraction:09d}Z"


def durable_name(context: SourceContext) -> str:
    """The trigger's durable consumer when it names none: readable, and unique (its hash) although
    JetStream allows no dots in it."""
    readable = re.sub(r"[^A-Za-z0-9_-]", "_", context.name)
    return f"{readable}-{hashlib.sha1(context.name.encode()).hexdigest()[:8]}"


def count(properties: Mapping[str, Any], key: str, default: int | None) -> Any:
    value = properties.get(key)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SourceError(f"{key}: '{value}' is not a whole number") from None
    if number < 1:
        raise SourceError(f"{key}: '{value}' is not a whole number of at least 1")
    return number


def seconds(properties: Mapping[str, Any], key: str, default: float | None) -> Any:
    value = properties.get(key)
    if value in (None, ""):
        return default
    try:
        return parse_duration(value).total_seconds()
    except DurationError as exc:
        raise SourceError(f"{key}: {exc}") from None


def redact(url: str) -> str:
    """A URL fit for a message: nats://user:secret@host becomes nats://***@host."""
    return re.sub(r"//[^/@,]*@", "//***@", url)


def describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class _Loop:
    """A private asyncio loop in a thread of its own, run from one synchronous caller."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            if not future.done():
                future.cancel()
                raise SourceError(f"no answer from NATS within {timeout:g} s") from None
            raise

    def close(self) -> None:
        if self.loop.is_closed():
            return
        try:
            asyncio.run_coroutine_threadsafe(_cancel_the_rest(), self.loop).result(5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


async def _cancel_the_rest() -> None:
    """The client's own tasks (reader, pinger, flusher) that its close left behind."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
