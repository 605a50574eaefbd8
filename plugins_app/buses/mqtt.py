"""MQTT tasks under Kestra's names, Publish and Subscribe; and the connection, serde and message helpers the
MQTT trigger sources (plugins_app/triggers/mqtt.py) share with them.

paho-mqtt is imported inside the functions: every worker imports all task classes. A connection's network
loop runs in the caller's thread (paho starts no thread of its own): nothing reconnects behind our back,
and an acknowledgement is written when it is asked for.
"""

from __future__ import annotations

import base64
import binascii
import json
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from flows_app.engine.vocabulary import DurationError, parse_duration
from plugins_app.base import PluginError, Properties, RunnablePlugin, prop

SerdeType = Literal["JSON", "STRING", "BYTES"]
Version = Literal["V3", "V5"]
KEEPALIVE = 60
_SCHEMES = {  # scheme: (default port, TLS, paho transport)
    "tcp": (1883, False, "tcp"),
    "mqtt": (1883, False, "tcp"),
    "ssl": (8883, True, "tcp"),
    "tls": (8883, True, "tcp"),
    "mqtts": (8883, True, "tcp"),
    "ws": (80, False, "websockets"),
    "wss": (443, True, "websockets"),
}


# ---- shared with the trigger sources ------------------------------------------------------------------


class MqttError(Exception):
    """The broker cannot be reached, refused us, or dropped us; the message names the server."""


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    tls: bool
    transport: str
    path: str

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"


def parse_server(server: str) -> Server:
    """Kestra's `server`: `tcp://host:1883` or `ssl://host:8883` (also mqtt, mqtts, tls, ws, wss)."""
    text = str(server or "").strip()
    parts = urlsplit(text if "://" in text else f"tcp://{text}")
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise MqttError(f"'{text}' is not an MQTT server URI such as tcp://localhost:1883 or ssl://host:8883")
    port, tls, transport = _SCHEMES[parts.scheme]
    try:
        port = parts.port or port
    except ValueError:
        raise MqttError(f"'{text}' has no valid port") from None
    return Server(parts.hostname, port, tls, transport, parts.path or "/mqtt")


def decode(serde: str, payload: bytes) -> Any:
    """A payload as Kestra's SerdeType reads it: the JSON value it holds, its text (STRING), or its bytes
    (BYTES), which a flow sees in Base64, as Kestra's JSON shows a byte array. Raises ValueError."""
    if serde == "BYTES":
        return base64.b64encode(payload).decode("ascii")
    text = payload.decode("utf-8", errors="replace")
    return json.loads(text) if serde == "JSON" else text


def encode(serde: str, value: Any) -> bytes:
    """A value as Kestra's SerdeType writes it. JSON: a string that is JSON already as is, any other value
    as JSON. STRING: a string as is, another value as JSON (Kestra writes Java's toString, `{a=1}`).
    BYTES: a Base64 string's bytes, the inverse of `decode`."""
    if serde == "BYTES":
        try:
            return base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("serdeType BYTES sends Base64 text; this value is not") from None
    if isinstance(value, str):
        if serde != "JSON":
            return value.encode()
        try:
            json.loads(value)
            return value.encode()
        except ValueError:
            pass
    return json.dumps(value, default=str, ensure_ascii=False).encode()


def serde_of(value: Any, default: str = "JSON") -> str:
    serde = str(value or default).upper()
    if serde not in ("JSON", "STRING", "BYTES"):
        raise MqttError(f"serdeType '{value}' is not one of JSON, STRING, BYTES")
    return serde


def topics_of(value: Any) -> list[str]:
    """Kestra's `topic`: one topic filter or a list of them."""
    topics = [str(t) for t in value] if isinstance(value, (list, tuple)) else [str(value or "")]
    if not all(topics) or not topics:
        raise MqttError("topic: give a topic (or a list of topics) to subscribe to")
    return topics


def record_of(message: Any, serde: str, v5: bool) -> dict[str, Any]:
    """A received message under the names of Kestra's outputs (RealtimeTrigger's, each line of Subscribe's
    file). `properties`: the ids of the MQTT 5 properties it carries; `correlationData` in Base64."""
    props = getattr(message, "properties", None) if v5 else None
    present = props.json() if props is not None else {}
    correlation = getattr(props, "CorrelationData", None) if props is not None else None
    return {
        "id": message.mid,
        "topic": message.topic,
        "qos": message.qos,
        "properties": [props.getIdentFromName(name) for name in present] if v5 else None,
        "payload": decode(serde, message.payload),
        "retain": bool(message.retain),
        "responseTopic": getattr(props, "ResponseTopic", None) if props is not None else None,
        "correlationData": base64.b64encode(correlation).decode("ascii") if correlation is not None else None,
    }


@dataclass(frozen=True)
class Settings:
    """How to connect: Kestra's connection properties, read once."""

    server: Server
    v5: bool = True
    client_id: str = ""
    persistent: bool = False  # keep the session: clean_session=False (3.1.1), clean_start=False + expiry (5)
    manual_ack: bool = False
    username: str | None = None
    password: str | None = None
    ca: str | None = None  # a CA certificate: PEM text or a file's path
    verify_hostname: bool = True
    auth_method: str | None = None
    connect_timeout: float = 30.0
    receive_maximum: int | None = None  # MQTT 5: how many unacknowledged messages the broker may send us


FENCE_TOPIC = "tern/fence"  # unsubscribed from (never subscribed to) as a round trip
SESSION_EXPIRY = 0xFFFFFFFF  # MQTT 5 "never", as a 3.1.1 persistent session: the broker's config bounds it


def settings_of(values: Mapping[str, Any], *, default_timeout: float = 30.0, **fixed: Any) -> Settings:
    """Settings from Kestra's property names (`server`, `mqttVersion`, `clientId`, `crt`...)."""
    version = str(values.get("mqttVersion") or "V5").upper()
    if version not in ("V3", "V5"):
        raise MqttError(f"mqttVersion '{values.get('mqttVersion')}' is not one of V3, V5")
    timeout = values.get("connectionTimeout")
    try:
        seconds = parse_duration(timeout).total_seconds() if timeout not in (None, "") else default_timeout
    except DurationError as exc:
        raise MqttError(f"connectionTimeout: {exc}") from None
    verify = values.get("httpsHostnameVerificationEnabled")
    return Settings(
        server=parse_server(values.get("server") or ""),
        v5=version == "V5",
        client_id=str(values.get("clientId") or ""),
        username=_text(values.get("username")),
        password=_text(values.get("password")),
        ca=_text(values.get("crt")),
        verify_hostname=verify is None or verify is True or str(verify).lower() == "true",
        auth_method=_text(values.get("authMethod")),
        connect_timeout=seconds if seconds > 0 else 3600.0,  # Kestra: 0 waits as long as it takes
        **fixed,
    )


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


class MqttConnection:
    """One paho client and its session. `on_message(message)` receives each message (a paho MQTTMessage)."""

    def __init__(self, settings: Settings, on_message: Callable[[Any], None] | None = None):
        self.settings = settings
        self.name = f"MQTT {settings.server.name}"
        self.on_message = on_message
        self.client: Any = None
        self.session_present = False
        self._connack: Any = None
        self._lost: str | None = None
        self._subacks: dict[int, list[Any]] = {}
        self._unsubacks: set[int] = set()
        self._publish_failures: list[str] = []

    def open(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Connect and wait for the broker's CONNACK, for at most the connection timeout."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        s = self.settings
        options: dict[str, Any] = {} if s.v5 else {"clean_session": not s.persistent}
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=mqtt.MQTTv5 if s.v5 else mqtt.MQTTv311,
            transport=s.server.transport,
            manual_ack=s.manual_ack,
            **options,
        )
        client.connect_timeout = s.connect_timeout
        if s.server.transport == "websockets":
            client.ws_set_options(path=s.server.path)
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.server.tls:
            client.tls_set_context(self._tls_context())
        elif s.ca:
            raise MqttError(f"crt: {s.server.name} is not a TLS server: write ssl://{s.server.name}")
        client.on_connect = lambda _c, _u, flags, reason, _p: self._connected(flags, reason)
        client.on_disconnect = lambda _c, _u, _f, reason, _p: self._disconnected(reason)
        client.on_subscribe = lambda _c, _u, mid, reasons, _p: self._subacks.__setitem__(mid, reasons)
        client.on_publish = lambda _c, _u, mid, reason, _p: self._published(mid, reason)
        client.on_unsubscribe = lambda _c, _u, mid, _r, _p: self._unsubacks.add(mid)
        if self.on_message is not None:
            client.on_message = lambda _c, _u, message: self.on_message(message)
        connect: dict[str, Any] = {}
        if s.v5:
            properties = Properties(PacketTypes.CONNECT)
            if s.persistent:
                properties.SessionExpiryInterval = SESSION_EXPIRY
            if s.receive_maximum:
                properties.ReceiveMaximum = min(s.receive_maximum, 65535)
            if s.auth_method:
                properties.AuthenticationMethod = s.auth_method
            connect = {"clean_start": not s.persistent, "properties": properties}
        self.client = client
        try:
            client.connect(s.server.host, s.server.port, KEEPALIVE, **connect)
        except (OSError, ValueError) as exc:  # refused, unreachable, timed out, TLS refused
            raise MqttError(f"{self.name}: cannot connect: {exc}") from None
        deadline = time.monotonic() + s.connect_timeout
        while self._connack is None:
            if stop() or time.monotonic() >= deadline:
                raise MqttError(f"{self.name}: no answer to CONNECT within {s.connect_timeout:g} s")
            self.pump(0.1)
        if self._connack.is_failure:
            raise MqttError(f"{self.name} refused the connection: {self._connack}")

    def _tls_context(self) -> ssl.SSLContext:
        ca = self.settings.ca
        if ca and ca.lstrip().startswith("-----BEGIN"):
            context = ssl.create_default_context(cadata=ca)
        elif ca:
            if not Path(ca).is_file():
                raise MqttError(f"crt: '{ca[:50]}' is neither a PEM certificate nor a file")
            context = ssl.create_default_context(cafile=ca)
        else:
            context = ssl.create_default_context()
        context.check_hostname = self.settings.verify_hostname
        return context

    def _connected(self, flags: Any, reason: Any) -> None:
        self._connack = reason
        self.session_present = bool(flags.session_present)

    def _disconnected(self, reason: Any) -> None:
        self._lost = str(reason) or "closed"

    def _published(self, mid: int, reason: Any) -> None:
        if getattr(reason, "is_failure", False):
            self._publish_failures.append(f"message {mid}: {reason}")

    def pump(self, timeout: float) -> None:
        """Read and write what the network has for `timeout` seconds at most (calls `on_message`)."""
        import paho.mqtt.client as mqtt

        rc = self.client.loop(max(timeout, 0.0))
        if self._lost is not None or rc != mqtt.MQTT_ERR_SUCCESS:
            raise MqttError(f"{self.name}: the connection ended ({self._lost or mqtt.error_string(rc)})")

    def subscribe(self, topics: list[str], qos: int, *, retained_once: bool = False) -> None:
        """Subscribe and wait for the SUBACK. `retained_once` (MQTT 5): retained messages only for a
        subscription the session did not hold yet, not again at each reconnection."""
        from paho.mqtt.subscribeoptions import SubscribeOptions

        if self.settings.v5:
            handling = (
                SubscribeOptions.RETAIN_SEND_IF_NEW_SUB if retained_once else SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE
            )
            wanted: list[Any] = [(t, SubscribeOptions(qos=qos, retainHandling=handling)) for t in topics]
        else:
            wanted = [(t, qos) for t in topics]
        try:
            _, mid = self.client.subscribe(wanted)
        except ValueError as exc:
            raise MqttError(f"{self.name}: cannot subscribe to {', '.join(topics)}: {exc}") from None
        deadline = time.monotonic() + self.settings.connect_timeout
        while mid not in self._subacks:
            if time.monotonic() >= deadline:
                raise MqttError(f"{self.name}: no answer to SUBSCRIBE {', '.join(topics)}")
            self.pump(0.1)
        refused = [t for t, reason in zip(topics, self._subacks.pop(mid), strict=False) if reason.is_failure]
        if refused:
            raise MqttError(f"{self.name} refused the subscription to {', '.join(refused)}")

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool, properties: Any = None) -> Any:
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if info.rc not in (0,):
            raise MqttError(f"{self.name}: cannot publish to {topic}: rc {info.rc}")
        return info

    def wait_published(self, infos: list[Any], timeout: float) -> None:
        """Until the broker has acknowledged every message (QoS 1, 2), for `timeout` seconds at most."""
        deadline = time.monotonic() + timeout
        while not all(info.is_published() for info in infos):
            if time.monotonic() >= deadline:
                raise MqttError(f"{self.name}: the broker did not acknowledge the messages within {timeout:g} s")
            self.pump(0.1)
        if self._publish_failures:
            raise MqttError(f"{self.name} refused {'; '.join(self._publish_failures[:3])}")

    def ack(self, mid: int, qos: int) -> None:
        import paho.mqtt.client as mqtt

        if qos > 0 and self.client.ack(mid, qos) != mqtt.MQTT_ERR_SUCCESS:
            raise MqttError(f"{self.name}: cannot acknowledge message {mid}: the connection ended")

    def close(self) -> None:
        """A clean DISCONNECT; an unacknowledged message stays in a persistent session, delivered again.
        First a round trip (UNSUBSCRIBE of a filter we never subscribed, answered in order): once it is
        answered, the broker has read every acknowledgement sent before it. Otherwise the next connection
        under our client id could take the session over while some are still unread, and they are lost."""
        if self.client is None:
            return
        client = self.client
        try:
            if self._lost is None and self._connack is not None:
                _, mid = client.unsubscribe(FENCE_TOPIC)
                deadline = time.monotonic() + 1.0
                while mid not in self._unsubacks and time.monotonic() < deadline:
                    self.pump(0.05)
                client.disconnect()
        except (MqttError, OSError):
            pass
        finally:
            self.client = None
            sock = client.socket()
            if sock is not None:
                sock.close()


# ---- tasks ---------------------------------------------------------------------------------------------


class _Connection(Properties):
    server: str = prop(description="The broker's URI: tcp://host:1883, or ssl://host:8883 for TLS.")
    mqttVersion: Version = prop("V5", description="The MQTT version: V3 (3.1.1) or V5.")
    clientId: str | None = prop(None, description="The client identifier, unique on the broker.")
    connectionTimeout: str | None = prop(None, description="How long to wait for the connection (PT30S).")
    httpsHostnameVerificationEnabled: bool | None = prop(None, description="Check the TLS certificate's host name.")
    authMethod: str | None = prop(None, description="MQTT 5 extended authentication method.")
    username: str | None = prop(None, description="The user name.")
    password: str | None = prop(None, description="The password.")
    crt: str | None = prop(None, description="A CA certificate for TLS: PEM text, a kestra:/// URI, or a path.")
    qos: int = prop(1, ge=0, le=2, description="The quality of service: 0, 1 or 2.")


def _connect(props: _Connection, ctx, on_message: Callable[[Any], None] | None = None) -> MqttConnection:
    values = props.model_dump()
    if props.crt and props.crt.startswith("kestra://"):
        if ctx.storage_path is None:
            raise PluginError("crt: this task cannot read internal storage here", retryable=False)
        values["crt"] = str(ctx.storage_path(props.crt))
    try:
        connection = MqttConnection(settings_of(values), on_message)
    except MqttError as exc:
        raise PluginError(str(exc), retryable=False) from None
    _call(connection, connection.open, stop=ctx.should_stop)
    return connection


def _call(connection: MqttConnection, step: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a step; an MQTT failure becomes a PluginError that may pass (the connection) or will not (a refusal)."""
    try:
        return step(*args, **kwargs)
    except MqttError as exc:
        connection.close()
        raise PluginError(str(exc), retryable="refused" not in str(exc)) from None


def _rows(source: Any, ctx) -> Iterator[Any]:
    """Kestra's `from`: a kestra:/// URI of an ION file (Tern writes one JSON value a line), a list, or one value."""
    if isinstance(source, str) and source.startswith("kestra://"):
        if ctx.storage_path is None:
            raise PluginError("from: this task cannot read internal storage here", retryable=False)
        with Path(ctx.storage_path(source)).open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError:
                        raise PluginError(f"from: line {number} of {source} is not JSON", retryable=False) from None
        return
    yield from source if isinstance(source, (list, tuple)) else [source]


class Publish(RunnablePlugin):
    """Publish messages to an MQTT topic, from a list, one value, or an internal storage file; each is
    acknowledged by the broker (QoS 1, 2) before the task ends."""

    type = "io.kestra.plugin.mqtt.Publish"
    outputs = {"messagesCount": "The number of messages published."}
    example = """
- id: publish
  type: io.kestra.plugin.mqtt.Publish
  server: tcp://localhost:1883
  topic: kestra/sensors/cpu
  serdeType: JSON
  from:
    type: sensors
    value: 1.23
"""

    class Properties(_Connection):
        topic: str = prop(description="The topic to publish to.")
        from_: Any = prop(alias="from", description="A list, one value, or a kestra:/// URI of an ION file.")
        serdeType: SerdeType = prop("JSON", description="How values are written: JSON, STRING, or BYTES (Base64).")
        retain: bool = prop(False, description="Whether the broker keeps the last message for new subscribers.")
        responseTopic: str | None = prop(None, description="MQTT 5: the topic a responder should reply to.")
        correlationData: str | None = prop(None, description="MQTT 5: data a responder echoes back, in Base64.")

    def run(self, props, ctx):
        properties = self._properties(props)
        connection = _connect(props, ctx)
        infos, count = [], 0
        try:
            for row in _rows(props.from_, ctx):
                try:
                    payload = encode(props.serdeType, row)
                except ValueError as exc:
                    raise PluginError(f"from: value {count + 1}: {exc}", retryable=False) from None
                infos.append(
                    _call(connection, connection.publish, props.topic, payload, props.qos, props.retain, properties)
                )
                count += 1
                if len(infos) >= 100:  # paho holds the rest until acknowledgements make room
                    _call(connection, connection.wait_published, infos, connection.settings.connect_timeout)
                    infos = []
            _call(connection, connection.wait_published, infos, connection.settings.connect_timeout)
        finally:
            connection.close()
        ctx.log("INFO", f"published {count} messages to {props.topic}")
        return {"messagesCount": count}

    @staticmethod
    def _properties(props) -> Any:
        if props.mqttVersion != "V5" or (props.responseTopic is None and props.correlationData is None):
            return None  # MQTT 3.1.1 has no message properties: Kestra ignores them too
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties as MqttProperties

        properties = MqttProperties(PacketTypes.PUBLISH)
        if props.responseTopic is not None:
            properties.ResponseTopic = props.responseTopic
        if props.correlationData is not None:
            try:
                properties.CorrelationData = base64.b64decode(props.correlationData, validate=True)
            except (binascii.Error, ValueError):
                raise PluginError(
                    "correlationData must be Base64-encoded, as it is binary on the wire", retryable=False
                ) from None
        return properties


class Subscribe(RunnablePlugin):
    """Subscribe to MQTT topics and write the messages received to an internal storage file, until
    `maxRecords` messages or `maxDuration` (one of the two must be set). A clean session, as Kestra's:
    only messages published while the task listens (and retained ones) are received."""

    type = "io.kestra.plugin.mqtt.Subscribe"
    outputs = {"messagesCount": "The number of messages received.", "uri": "A file of them, one a line (ION)."}
    example = """
- id: subscribe
  type: io.kestra.plugin.mqtt.Subscribe
  server: tcp://localhost:1883
  topic:
    - kestra/sensors/cpu
    - kestra/sensors/mem
  serdeType: JSON
  maxRecords: 10
  maxDuration: PT30S
"""

    class Properties(_Connection):
        topic: str | list[str] = prop(description="A topic (filter) or a list of them.")
        serdeType: SerdeType = prop("JSON", description="How payloads are read: JSON, STRING, or BYTES (Base64).")
        maxRecords: int | None = prop(None, ge=1, description="Stop after this many messages.")
        maxDuration: str | None = prop(None, description="Stop after this long, e.g. PT30S.")

    def run(self, props, ctx):
        if props.maxRecords is None and props.maxDuration is None:
            raise PluginError(
                "maxDuration or maxRecords must be set: without them Subscribe never ends", retryable=False
            )
        try:
            seconds = parse_duration(props.maxDuration).total_seconds() if props.maxDuration else None
            topics = topics_of(props.topic)
        except (DurationError, MqttError) as exc:
            raise PluginError(str(exc), retryable=False) from None
        path = Path(ctx.working_dir) / "messages.ion"
        count = 0
        with path.open("w", encoding="utf-8") as out:
            v5 = props.mqttVersion == "V5"

            def write(message: Any) -> None:
                nonlocal count
                try:
                    record = record_of(message, props.serdeType, v5)
                except ValueError:
                    raise MqttError(f"a message on {message.topic} is not JSON: {message.payload[:80]!r}") from None
                out.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
                count += 1

            connection = _connect(props, ctx, on_message=write)
            try:
                _call(connection, connection.subscribe, topics, props.qos)
                deadline = time.monotonic() + seconds if seconds is not None else None
                while not ctx.should_stop():
                    if props.maxRecords is not None and count >= props.maxRecords:
                        break
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    _call(connection, connection.pump, 0.1)
            finally:
                connection.close()
        ctx.log("INFO", f"received {count} messages from {', '.join(topics)}")
        return {"messagesCount": count, "uri": ctx.storage_put(path, "messages.ion")}
