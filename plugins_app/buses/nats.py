"""NATS tasks: Produce publishes (acknowledged by JetStream when a stream holds the subject), Consume reads a
JetStream subject into a file, Request sends one message and waits for its reply.

They talk to NATS through plugins_app/triggers/nats.py, imported when a task runs (nats-py with it).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from plugins_app.base import PluginError, Properties, RunnablePlugin, prop

FROM = (
    "The messages: a map of `headers` and `data`, a list of them, or the kestra:/// URI of an ION file "
    "of them (one a line). A `data` that is not text is sent as JSON."
)


class NatsProperties(Properties):
    """How to reach the server, as in Kestra's NATS plugin."""

    url: str = prop(description="The server: nats://host:4222; several separated by commas.")
    username: str | None = prop(None, description="Plain-text username (with password).")
    password: str | None = prop(None, description="Plain-text password.")
    token: str | None = prop(None, description="Token authentication.")
    creds: str | None = prop(None, description="The content of a credentials (.creds) file.")


class Produce(RunnablePlugin):
    """Publish messages to a NATS subject: to JetStream, acknowledged, when a stream holds it; else plain NATS."""

    type = "io.kestra.plugin.nats.core.Produce"
    aliases = ("io.kestra.plugin.nats.Produce",)
    outputs = {"messagesCount": "How many messages were published."}
    example = """
- id: produce
  type: io.kestra.plugin.nats.core.Produce
  url: nats://localhost:4222
  subject: orders.created
  from:
    headers:
      source: tern
    data: '{"id": 42}'
"""

    class Properties(NatsProperties):
        subject: str = prop(description="The subject to publish to.")
        from_: Any = prop(alias="from", description=FROM)

    def run(self, props, ctx):
        messages = [_message(value) for value in read_from(props.from_, ctx)]
        return {"messagesCount": _run(_produce(props, messages), props)}


class Consume(RunnablePlugin):
    """Read the messages of a JetStream subject into an ION file (`uri`); each is acked once the file is stored."""

    type = "io.kestra.plugin.nats.core.Consume"
    aliases = ("io.kestra.plugin.nats.Consume",)
    outputs = {
        "messagesCount": "How many messages were read.",
        "uri": "The kestra:/// URI of the file of messages: subject, headers, data, timestamp, one a line.",
    }
    example = """
- id: consume
  type: io.kestra.plugin.nats.core.Consume
  url: nats://localhost:4222
  subject: orders.>
  durableId: orders-reader
  maxRecords: 100
"""

    class Properties(NatsProperties):
        subject: str = prop(description="The subject (wildcards allowed) a JetStream stream holds.")
        durableId: str | None = prop(None, description="A durable consumer, to resume where the last run stopped.")
        since: str | None = prop(None, description="ISO 8601 date-time to start from (deliverPolicy ByStartTime).")
        pollDuration: str = prop("PT2S", description="How long one fetch waits when no message is there.")
        batchSize: int = prop(10, description="Messages asked for per fetch.", ge=1)
        maxRecords: int | None = prop(None, description="Stop once this many messages are read.", ge=1)
        maxDuration: str | None = prop(None, description="Stop fetching after this long.")
        deliverPolicy: str | None = prop(
            None, description="All (the default; ByStartTime with since), Last, New, ByStartTime, LastPerSubject."
        )

    def run(self, props, ctx):
        from plugins_app.triggers import nats as client

        settings = props.model_dump(by_alias=True)
        pull = None
        try:
            poll = client.seconds(settings, "pollDuration", client.POLL_DURATION)
            max_duration = client.seconds(settings, "maxDuration", None)
            pull = client.JetStreamPull(settings, props.durableId, client_name=f"tern.{ctx.task_run_id}")
            pull.open()
            messages = pull.gather(props.batchSize, poll, props.maxRecords, max_duration, stop=ctx.should_stop)
            if ctx.should_stop():
                raise PluginError("killed; the messages read stay in the stream", retryable=False)
            lines = "".join(json.dumps(client.record(m), ensure_ascii=False) + "\n" for m in messages)
            uri = ctx.storage_put(lines.encode(), "messages.ion")
            pull.ack(messages)
        except client.SourceError as exc:
            raise PluginError(str(exc)) from None
        finally:
            if pull is not None:
                pull.close()
        return {"messagesCount": len(messages), "uri": uri}


class Request(RunnablePlugin):
    """Send one message to a subject and wait for the reply: `response`, or null when none came in time."""

    type = "io.kestra.plugin.nats.core.Request"
    aliases = ("io.kestra.plugin.nats.Request",)
    outputs = {"response": "The reply's data as text, or null when nobody answered within requestTimeout."}
    example = """
- id: ask
  type: io.kestra.plugin.nats.core.Request
  url: nats://localhost:4222
  subject: greet.bob
  from:
    data: Hello from Tern
  requestTimeout: PT2S
"""

    class Properties(NatsProperties):
        subject: str = prop(description="The subject to send the request to.")
        from_: Any = prop(alias="from", description=FROM + " Only the first message is sent.")
        requestTimeout: str = prop("PT5S", description="How long to wait for the reply.")

    def run(self, props, ctx):
        from plugins_app.triggers import nats as client

        values = read_from(props.from_, ctx)
        if not values:
            raise PluginError("from: no message to send", retryable=False)
        try:
            timeout = client.seconds({"requestTimeout": props.requestTimeout}, "requestTimeout", 5.0)
        except client.SourceError as exc:
            raise PluginError(str(exc), retryable=False) from None
        return {"response": _run(_request(props, _message(values[0]), timeout), props)}


def read_from(value: Any, ctx) -> list[Any]:
    """Kestra's `from`: one value, a list, or a kestra:/// URI of an ION file (JSON values are ION)."""
    if isinstance(value, list):
        return value
    if not isinstance(value, str):
        return [value]
    if not value.startswith("kestra://"):
        raise PluginError(f"from: '{value}' is neither a message map, a list nor a kestra:/// URI", retryable=False)
    try:
        text = ctx.storage_path(value).read_text()
    except Exception as exc:  # the storage's own error says which URI and why
        raise PluginError(f"from: {exc}", retryable=False) from None
    decoder, values, at = json.JSONDecoder(), [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return values
        try:
            item, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError as exc:
            line = text.count("\n", 0, at) + 1
            raise PluginError(f"from: line {line} of {value} is not JSON: {exc.msg}", retryable=False) from None
        values.append(item)


def _message(value: Any) -> tuple[bytes, dict[str, str]]:
    """A message's bytes and headers; a value that is not a map is the data itself."""
    if not isinstance(value, dict):
        value = {"data": value}
    data = value.get("data")
    text = "" if data is None else data if isinstance(data, str) else json.dumps(data)
    body = text.encode()
    headers: dict[str, str] = {}
    for name, header in (value.get("headers") or {}).items():
        if isinstance(header, list):
            if len(header) > 1:
                raise PluginError(f"headers.{name}: nats-py sends one value per header, not {header}", retryable=False)
            header = header[0] if header else ""
        headers[str(name)] = str(header)
    return body, headers


async def _produce(props, messages: list[tuple[bytes, dict[str, str]]]) -> int:
    from plugins_app.triggers import nats as client

    connection = await client.connect(props.model_dump(by_alias=True), "tern.produce")
    try:
        js = connection.jetstream()
        stream = await client.stream_of(js, props.subject, client.redact(props.url))
        for body, headers in messages:
            if stream:
                await js.publish(props.subject, body, headers=headers or None)
            else:
                await connection.publish(props.subject, body, headers=headers or None)
        await connection.flush(timeout=10)  # the server has every message once its PONG is back
    finally:
        await connection.close()
    return len(messages)


async def _request(props, message: tuple[bytes, dict[str, str]], timeout: float) -> str | None:
    from nats import errors

    from plugins_app.triggers import nats as client

    connection = await client.connect(props.model_dump(by_alias=True), "tern.request")
    body, headers = message
    try:
        reply = await connection.request(props.subject, body, timeout=timeout, headers=headers or None)
    except (errors.NoRespondersError, TimeoutError):
        return None
    finally:
        await connection.close()
    return reply.data.decode("utf-8", errors="replace")


def _run(coroutine, props) -> Any:
    from nats import errors

    from plugins_app.triggers import nats as client

    try:
        return asyncio.run(coroutine)
    except client.SourceError as exc:
        raise PluginError(str(exc)) from None
    except (errors.Error, OSError) as exc:
        raise PluginError(f"NATS server {client.redact(props.url)}: {client.describe(exc)}") from None
