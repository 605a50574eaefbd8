"""AMQP (RabbitMQ) tasks, and what the AMQP triggers share with them: the connection, Kestra's message shape
and the batch read. py-amqp is imported only when a task runs or a trigger connects."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import field_validator

from flows_app.engine.vocabulary import DurationError, format_duration, parse_duration
from plugins_app.base import PluginError, Properties, RunnablePlugin, prop

CONNECT_TIMEOUT = 10.0  # seconds to reach the broker
IO_TIMEOUT = 10.0  # seconds a call to the broker may take
DEFAULT_BATCH = 500  # a batch without maxRecords or maxDuration: what is there now, up to 500 messages...
DEFAULT_BATCH_TIME = timedelta(seconds=1)  # ...read for at most a second
MAX_BATCH = 10_000  # a batch with only maxDuration: nothing is acknowledged before its end, so it is held in memory
RECORDS_WAIT = timedelta(minutes=1)  # with only maxRecords, Kestra waits a minute for them
EMPTY_QUEUE_PAUSE = 0.1  # seconds between two looks at an empty queue (Kestra's own 100 ms)

# Kestra's Message: its field -> the AMQP basic property, in Kestra's order; `data` is the decoded body.
PROPERTIES = {
    "contentType": "content_type",
    "contentEncoding": "content_encoding",
    "headers": "application_headers",
    "deliveryMode": "delivery_mode",
    "priority": "priority",
    "messageId": "message_id",
    "correlationId": "correlation_id",
    "replyTo": "reply_to",
    "expiration": "expiration",
    "timestamp": "timestamp",
    "type": "type",
    "userId": "user_id",
    "appId": "app_id",
}
MESSAGE_FIELDS = frozenset(PROPERTIES) | {"data"}
REFUSALS = (403, 404, 406, 530)  # access refused, not found, precondition failed, not allowed: retrying will not help


class AmqpProblem(Exception):
    """The broker cannot be used as asked; the message names the broker and says why."""

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    username: str
    password: str
    virtual_host: str

    def __str__(self) -> str:
        return f"AMQP broker {self.host}:{self.port} (virtual host '{self.virtual_host}')"


def server_of(values: Mapping[str, Any]) -> Server:
    """The broker of a task's or trigger's properties: `host`, `port`... or Kestra's deprecated `url`."""
    url, host = values.get("url"), values.get("host")
    port, virtual_host = values.get("port") or 5672, values.get("virtualHost") or "/"
    username, password = values.get("username"), values.get("password")
    if url and host:
        raise AmqpProblem("Cannot define both `url` and `host`", retryable=False)
    if url:
        parts = urlsplit(str(url))
        host, port = parts.hostname, parts.port or port
        if parts.username is not None:
            username, password = unquote(parts.username), unquote(parts.password or "")
        if parts.path:  # Kestra keeps the path whole: amqp://host/my_vhost is the virtual host "/my_vhost"
            virtual_host = unquote(parts.path)
    if not host:
        raise AmqpProblem("missing host: the AMQP broker's host (or the deprecated `url`)", retryable=False)
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise AmqpProblem(f"port: '{port}' is not a port number", retryable=False) from None
    return Server(str(host), port, str(username or "guest"), str(password or "guest"), str(virtual_host))


def explain(server: Server, exc: BaseException) -> AmqpProblem:
    """A py-amqp or socket error as an AmqpProblem that names the broker."""
    from amqp.exceptions import AMQPError

    if isinstance(exc, AmqpProblem):
        return exc
    if isinstance(exc, AMQPError):
        return AmqpProblem(f"{server}: {exc.reply_text or exc}", retryable=exc.reply_code not in REFUSALS)
    if isinstance(exc, socket.gaierror):
        return AmqpProblem(f"{server}: unknown host ({exc.strerror})")
    if isinstance(exc, ConnectionRefusedError):
        return AmqpProblem(f"{server}: connection refused")
    if isinstance(exc, TimeoutError):
        return AmqpProblem(f"{server}: no answer in time")
    return AmqpProblem(f"{server}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}")


def connect(server: Server, *, heartbeat: int = 0, confirm_publish: bool = False) -> Any:
    """An open amqp.Connection, or AmqpProblem."""
    import amqp

    host = f"[{server.host}]" if ":" in server.host else server.host
    connection = amqp.Connection(
        host=f"{host}:{server.port}",
        userid=server.username,
        password=server.password,
        virtual_host=server.virtual_host,
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=IO_TIMEOUT,
        write_timeout=IO_TIMEOUT,
        heartbeat=heartbeat,
        confirm_publish=confirm_publish,
    )
    try:
        connection.connect()
    except Exception as exc:
        drop(connection)
        raise explain(server, exc) from None
    return connection


def drop(connection: Any, graceful: bool = False) -> None:
    """Close a connection, quietly; its unacknowledged messages go back to their queues."""
    try:
        if graceful:
            connection.close()  # the broker has put the messages back once it answers
            return
    except Exception:
        pass
    try:
        connection.collect()
    except Exception:
        pass


# ---- messages ---------------------------------------------------------------------------------


def decode(message: Any, serde: str) -> dict[str, Any]:
    """An AMQP message as Kestra's Message: its properties (the ones set) and `data`, the body decoded."""
    record: dict[str, Any] = {}
    for field, name in PROPERTIES.items():
        value = message.properties.get(name)
        if value is not None:
            record[field] = _readable(field, value)
    body = message.body
    text = body if isinstance(body, str) else bytes(body).decode("utf-8", errors="replace")
    if serde == "JSON":
        try:
            record["data"] = json.loads(text)
        except ValueError as exc:
            which = record.get("messageId") or f"#{message.delivery_tag}"
            raise AmqpProblem(f"message {which} is not JSON ({exc}); serdeType is JSON", retryable=False) from None
    else:
        record["data"] = text
    return record


def _readable(field: str, value: Any) -> Any:
    if field == "headers":  # Kestra gives each header as text
        return {str(k): _header_text(v) for k, v in value.items()}
    if field == "timestamp":
        return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")
    if field == "expiration" and str(value).isdigit():  # milliseconds, shown as Kestra's Duration
        return format_duration(timedelta(milliseconds=int(value)))
    return value


def _header_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def messages_of(value: Any, stored: Callable[[str], Any] | None) -> Iterator[Mapping[str, Any]]:
    """Kestra's `from`: a kestra:/// file of one message a line, a list, or one message. A map of Message fields
    (`data`, `headers`, `messageId`...) is a message; any other value is a message's data."""
    if isinstance(value, str) and value.strip().startswith("kestra://"):
        if stored is None:
            raise PluginError(f"from: {value} is a file, and this task has no internal storage", retryable=False)
        with open(stored(value.strip()), encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    try:
                        yield _message(json.loads(line))
                    except ValueError:
                        raise PluginError(f"from: line {number} of {value} is not JSON", retryable=False) from None
        return
    for item in value if isinstance(value, list) else [value]:
        yield _message(item)


def _message(item: Any) -> Mapping[str, Any]:
    return item if isinstance(item, dict) and set(item) <= MESSAGE_FIELDS else {"data": item}


def encode(message: Mapping[str, Any], serde: str) -> Any:
    """Kestra's Message as an amqp.Message; a message without `messageId` gets a fresh one, so that a trigger
    reading it starts one execution for it however often it is delivered."""
    import amqp

    data = message.get("data")
    if serde == "JSON":
        body = json.dumps(data)
    else:
        body = "" if data is None else data if isinstance(data, str) else json.dumps(data)
    properties: dict[str, Any] = {"message_id": str(uuid.uuid4())}
    for field, name in PROPERTIES.items():
        value = message.get(field)
        if value is not None:
            properties[name] = _wire(field, value)
    return amqp.Message(body.encode("utf-8"), **properties)


def _wire(field: str, value: Any) -> Any:
    try:
        if field == "headers":
            if not isinstance(value, dict):
                raise ValueError("must be a map")
            return value
        if field in ("deliveryMode", "priority"):
            return int(value)
        if field == "expiration":  # a duration; the broker wants milliseconds, as text
            return str(int(parse_duration(value) / timedelta(milliseconds=1)))
        if field == "timestamp":
            return _epoch_seconds(value)
    except (DurationError, TypeError, ValueError) as exc:
        raise PluginError(f"from: {field} '{value}': {exc}", retryable=False) from None
    return str(value)


def _epoch_seconds(value: Any) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    text = re.sub(r"(\.\d{6})\d+", r"\1", str(value).strip())  # Java writes nanoseconds; Python reads micro
    moment = datetime.fromisoformat(text)
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


# ---- batches ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    records: int  # stop once this many are read
    duration: timedelta  # stop once reading took this long
    wait: bool  # wait for messages when the queue is empty (else stop there)


def limits_of(max_records: Any, max_duration: Any) -> Limits:
    """Kestra's maxRecords and maxDuration; with neither, what is there now (within Tern's default bounds)."""
    try:
        records = int(max_records) if max_records not in (None, "") else None
        duration = parse_duration(max_duration) if max_duration not in (None, "") else None
    except (DurationError, TypeError, ValueError) as exc:
        raise AmqpProblem(f"maxRecords / maxDuration: {exc}", retryable=False) from None
    if records is not None and records < 1:
        raise AmqpProblem(f"maxRecords: '{records}' is not a whole number of at least 1", retryable=False)
    if records is None and duration is None:
        return Limits(DEFAULT_BATCH, DEFAULT_BATCH_TIME, wait=False)
    return Limits(records or MAX_BATCH, duration or RECORDS_WAIT, wait=True)


def gather(
    channel: Any, queue: str, serde: str, limits: Limits, *, no_ack: bool, pause: Callable[[float], bool]
) -> list[tuple[int, dict[str, Any]]]:
    """Read up to `limits` of the queue's messages, one basic.get at a time, acknowledging none (unless
    `no_ack`): (delivery tag, Kestra's Message) pairs. `pause(seconds)` waits and says whether to stop."""
    got: list[tuple[int, dict[str, Any]]] = []
    deadline = time.monotonic() + limits.duration.total_seconds()
    while len(got) < limits.records and time.monotonic() < deadline:
        message = channel.basic_get(queue, no_ack=no_ack)
        if message is not None:
            got.append((message.delivery_tag, decode(message, serde)))
        elif not limits.wait or pause(min(EMPTY_QUEUE_PAUSE, max(deadline - time.monotonic(), 0))):
            break
    return got


def records_file(records: list[dict[str, Any]]) -> bytes:
    """One JSON value a line: ION text too, as Kestra's tasks read it."""
    return b"".join(json.dumps(record, default=str).encode() + b"\n" for record in records)


# ---- tasks ------------------------------------------------------------------------------------


Serde = Literal["STRING", "JSON"]


class AmqpConnection(Properties):
    """How to reach the broker: `host`, `port`, `username`, `password`, `virtualHost` (or the deprecated `url`)."""

    url: str | None = prop(None, description="Deprecated in Kestra: amqp://user:password@host:port/virtualHost.")
    host: str | None = prop(None, description="The broker's host (required unless `url` is given).")
    port: str | int = prop("5672", description="The broker's port.")
    username: str | None = prop(None, description="The user (the broker's default, guest, when not set).")
    password: str | None = prop(None, description="The password.")
    virtualHost: str = prop("/", description="The virtual host.")


class Broker:
    """A task's connection and channel, and its errors as PluginErrors that name the broker."""

    def __init__(self, props: AmqpConnection, confirm_publish: bool = False):
        try:
            self.server = server_of(props.model_dump())
        except AmqpProblem as exc:
            raise PluginError(str(exc), retryable=False) from None
        self.confirm_publish = confirm_publish

    def __enter__(self) -> Broker:
        self.connection = self.call(connect, self.server, confirm_publish=self.confirm_publish)
        try:
            self.channel = self.call(self.connection.channel)
        except PluginError:
            drop(self.connection)
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        drop(self.connection, graceful=exc_info[0] is None)  # an error may have left the connection unusable

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except PluginError:
            raise
        except Exception as exc:
            problem = explain(self.server, exc)
            raise PluginError(str(problem), retryable=problem.retryable) from None

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call one of the channel's methods."""
        return self.call(getattr(self.channel, method), *args, **kwargs)


class Publish(RunnablePlugin):
    """Publish messages to an exchange with a routing key; output `messagesCount`."""

    type = "io.kestra.plugin.amqp.Publish"
    outputs = {"messagesCount": "How many messages were published."}
    example = """
- id: publish
  type: io.kestra.plugin.amqp.Publish
  host: localhost
  username: guest
  password: "{{ secret('AMQP_PASSWORD') }}"
  exchange: orders
  routingKey: new
  serdeType: JSON
  from:
    - data: {"id": 1}
      headers: {source: tern}
"""

    class Properties(AmqpConnection):
        exchange: str = prop(description="The exchange (the empty string: the default one, routing to a queue).")
        routingKey: str | None = prop(None, description="The routing key.")
        from_: Any = prop(
            alias="from", description="A kestra:/// file of one message a line, a list of messages, or one message."
        )
        serdeType: Serde = prop("STRING", description="How `data` becomes the body: STRING (text) or JSON.")

    def run(self, props, ctx):
        count = 0
        with Broker(props, confirm_publish=True) as broker:  # confirmed: a published message is the broker's
            for message in messages_of(props.from_, ctx.storage_path):
                broker("basic_publish", encode(message, props.serdeType), props.exchange, props.routingKey or "")
                count += 1
        ctx.log("INFO", f"published {count} message(s) to exchange '{props.exchange}' of {broker.server}")
        return {"messagesCount": count}


class Consume(RunnablePlugin):
    """Read a queue's messages, up to `maxRecords` or for `maxDuration`, into a file; outputs `uri` and `count`."""

    type = "io.kestra.plugin.amqp.Consume"
    outputs = {"uri": "The kestra:/// file of the messages, one a line.", "count": "How many were read."}
    example = """
- id: consume
  type: io.kestra.plugin.amqp.Consume
  host: localhost
  queue: orders
  maxRecords: 100
  maxDuration: PT10S
"""

    class Properties(AmqpConnection):
        queue: str = prop(description="The queue; it must exist.")
        consumerTag: str = prop("Kestra", description="Accepted for Kestra: messages are read one by one (basic.get).")
        autoAck: bool = prop(False, description="The broker forgets each message once read, not once stored.")
        serdeType: Serde = prop("STRING", description="How a body becomes `data`: STRING (text) or JSON.")
        maxRecords: int | None = prop(None, description="Stop after this many messages.", ge=1)
        maxDuration: str | None = prop(None, description="Stop after this long, e.g. PT30S.")

    def run(self, props, ctx):
        if props.maxRecords is None and props.maxDuration is None:
            raise PluginError("maxDuration or maxRecords must be set to avoid infinite loop", retryable=False)
        try:
            limits = limits_of(props.maxRecords, props.maxDuration)
        except AmqpProblem as exc:
            raise PluginError(str(exc), retryable=False) from None
        if ctx.timeout is not None and ctx.timeout < limits.duration.total_seconds():
            limits = Limits(limits.records, timedelta(seconds=ctx.timeout), limits.wait)

        def pause(seconds: float) -> bool:
            time.sleep(seconds)
            return ctx.should_stop()

        with Broker(props) as broker:
            got = broker.call(
                gather, broker.channel, props.queue, props.serdeType, limits, no_ack=props.autoAck, pause=pause
            )
            # 1. store the file, 2. only then let the broker forget the messages
            uri = ctx.storage_put(records_file([record for _, record in got]), "messages.ion")
            if got and not props.autoAck:
                broker("basic_ack", got[-1][0], multiple=True)
        return {"uri": uri, "count": len(got)}


class CreateQueue(RunnablePlugin):
    """Declare a queue (nothing changes when it exists alike); output `queue`."""

    type = "io.kestra.plugin.amqp.CreateQueue"
    outputs = {"queue": "The queue's name."}
    example = """
- id: queue
  type: io.kestra.plugin.amqp.CreateQueue
  host: localhost
  name: orders
"""

    class Properties(AmqpConnection):
        name: str = prop(description="The queue's name.")
        durability: bool = prop(True, description="The queue survives a broker restart.")
        exclusive: bool = prop(False, description="Only this connection may use it (so it ends with the task).")
        autoDelete: bool = prop(False, description="The broker deletes it once its last consumer leaves.")
        args: dict[str, Any] | None = prop(None, description="Its arguments, e.g. x-message-ttl.")

    def run(self, props, ctx):
        with Broker(props) as broker:
            broker(
                "queue_declare",
                props.name,
                durable=props.durability,
                exclusive=props.exclusive,
                auto_delete=props.autoDelete,
                arguments=props.args or {},
            )
        return {"queue": props.name}


class DeclareExchange(RunnablePlugin):
    """Declare an exchange (nothing changes when it exists alike); output `exchange`."""

    type = "io.kestra.plugin.amqp.DeclareExchange"
    outputs = {"exchange": "The exchange's name."}
    example = """
- id: exchange
  type: io.kestra.plugin.amqp.DeclareExchange
  host: localhost
  name: orders
  exchangeType: TOPIC
"""

    class Properties(AmqpConnection):
        name: str = prop(description="The exchange's name.")
        exchangeType: Literal["DIRECT", "FANOUT", "TOPIC", "HEADERS"] = prop("DIRECT", description="Its type.")
        durability: bool = prop(True, description="The exchange survives a broker restart.")
        autoDelete: bool = prop(False, description="The broker deletes it once its last binding goes.")
        internal: bool = prop(False, description="Clients cannot publish to it, only other exchanges.")
        args: dict[str, Any] | None = prop(None, description="Its arguments, e.g. alternate-exchange.")

        @field_validator("exchangeType", mode="before")
        @classmethod
        def _any_case(cls, value: Any) -> Any:
            return value.upper() if isinstance(value, str) else value

    def run(self, props, ctx):
        from amqp import spec

        with Broker(props) as broker:
            # py-amqp's exchange_declare always sends internal=False: the method itself, to honour `internal`
            broker(
                "send_method",
                spec.Exchange.Declare,
                "BssbbbbbF",
                (0, props.name, props.exchangeType.lower(), False, props.durability, props.autoDelete)
                + (props.internal, False, props.args or {}),
                wait=spec.Exchange.DeclareOk,
            )
        return {"exchange": props.name}


class QueueBind(RunnablePlugin):
    """Bind a queue to an exchange with a routing key; outputs `queue` and `exchange`."""

    type = "io.kestra.plugin.amqp.QueueBind"
    outputs = {"queue": "The queue's name.", "exchange": "The exchange's name."}
    example = """
- id: bind
  type: io.kestra.plugin.amqp.QueueBind
  host: localhost
  exchange: orders
  queue: new-orders
  routingKey: new
"""

    class Properties(AmqpConnection):
        exchange: str = prop(description="The exchange.")
        queue: str = prop(description="The queue.")
        routingKey: str | None = prop(None, description="The binding's routing key.")
        args: dict[str, Any] | None = prop(None, description="The binding's arguments (a headers exchange's).")

    def run(self, props, ctx):
        with Broker(props) as broker:
            broker("queue_bind", props.queue, props.exchange, props.routingKey or "", arguments=props.args or {})
        return {"queue": props.queue, "exchange": props.exchange}
