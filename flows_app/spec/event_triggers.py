"""Triggers fed by events outside Tern: a folder, a URL, a message bus. Each type is one `EventKind` here
(its Kestra names, its properties, which are required); `tern triggers` runs them (flows_app/triggers/runner).

A *polling* trigger looks every `interval` (Kestra's default, one minute); a *realtime* one holds its
connection open and starts an execution per message. The properties stay as written: most are
templates (`{{ secret('PASSWORD') }}`), rendered when the trigger connects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ..engine.condition_parsing import parse_conditions
from ..engine.conditions import Condition
from .errors import ErrorCollector, Path
from .properties import read_duration, read_states

DEFAULT_INTERVAL = timedelta(minutes=1)
POLLING_KEYS = {"interval"}
BATCH_KEYS = POLLING_KEYS | {"maxRecords", "maxDuration"}


@dataclass(frozen=True)
class EventKind:
    names: tuple[str, ...]  # Kestra's names: the current one first
    source: str  # the dotted path of its Source class (plugins_app/triggers)
    keys: frozenset[str]  # its own properties, besides every trigger's (COMMON_KEYS)
    required: tuple[str, ...] = ()
    realtime: bool = False
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)  # properties with fixed values
    late: frozenset[str] = frozenset()  # templates the source renders itself, per event (a response condition)


def _kind(
    names: list[str],
    source: str,
    keys: set[str],
    required: list[str] | tuple[str, ...] = (),
    realtime: bool = False,
    choices: Mapping[str, tuple[Any, ...]] | None = None,
    late: list[str] | tuple[str, ...] = (),
) -> EventKind:
    own = set(keys) | (set() if realtime else POLLING_KEYS)
    return EventKind(tuple(names), source, frozenset(own), tuple(required), realtime, choices or {}, frozenset(late))


SOURCES = "plugins_app.triggers"
SERDE = {"serdeType": ("STRING", "JSON")}
# Kestra's plugin-mqtt 1.x (`mqttVersion` was `version` before Kestra 0.22, which now names a plugin's version).
MQTT_KEYS = {"server", "mqttVersion", "clientId", "topic", "qos", "serdeType", "username", "password", "crt"}
MQTT_KEYS |= {"connectionTimeout", "httpsHostnameVerificationEnabled", "authMethod"}
MQTT_CHOICES = {"serdeType": ("JSON", "STRING", "BYTES"), "mqttVersion": ("V3", "V5"), "qos": (0, 1, 2)}
# JetStream's deliver policies as Kestra spells them (jnats' enum names), and in capitals: Tern reads both.
NATS_POLICY = {
    "deliverPolicy": ("All", "Last", "New", "ByStartSequence", "ByStartTime", "LastPerSubject")
    + ("ALL", "LAST", "NEW", "BY_START_SEQUENCE", "BY_START_TIME", "LAST_PER_SUBJECT")
}

EVENT_KINDS: tuple[EventKind, ...] = (
    _kind(
        ["io.kestra.plugin.fs.local.Trigger"],
        f"{SOURCES}.files.FolderSource",
        {"from", "action", "moveDirectory", "recursive", "maxFiles", "regExp", "on", "stateKey", "stateTtl"},
        required=["from"],
        choices={"action": ("NONE", "MOVE", "DELETE"), "on": ("CREATE_OR_UPDATE", "CREATE")},
    ),
    _kind(
        ["io.kestra.plugin.core.http.Trigger", "io.kestra.plugin.fs.http.Trigger"],
        f"{SOURCES}.http.HttpSource",
        {"uri", "method", "body", "contentType", "headers", "formData", "options", "responseCondition"}
        | {"encryptBody", "sslOptions", "auth"},
        required=["uri"],
        late=["responseCondition"],
    ),
    # Message buses: a polling `Trigger` starts one execution per batch (`trigger.uri`, a file of the
    # messages, and their count), a `RealtimeTrigger` one per message.
    _kind(
        ["io.kestra.plugin.redis.list.Trigger", "io.kestra.plugin.redis.TriggerList"],
        f"{SOURCES}.redis.ListBatchSource",
        {"url", "key", "serdeType", "count"} | BATCH_KEYS,
        required=["url", "key"],
        choices=SERDE,
    ),
    _kind(
        ["io.kestra.plugin.redis.list.RealtimeTrigger"],
        f"{SOURCES}.redis.ListRealtimeSource",
        {"url", "key", "serdeType"},
        required=["url", "key"],
        realtime=True,
        choices=SERDE,
    ),
    _kind(
        ["io.kestra.plugin.redis.pubsub.Trigger"],
        f"{SOURCES}.redis.PubSubBatchSource",
        {"url", "channel", "serdeType"} | BATCH_KEYS,
        required=["url", "channel"],
        choices=SERDE,
    ),
    _kind(
        ["io.kestra.plugin.redis.pubsub.RealtimeTrigger"],
        f"{SOURCES}.redis.PubSubRealtimeSource",
        {"url", "channel", "serdeType"},
        required=["url", "channel"],
        realtime=True,
        choices=SERDE,
    ),
    _kind(
        ["io.kestra.plugin.mqtt.Trigger"],
        f"{SOURCES}.mqtt.MqttBatchSource",
        MQTT_KEYS | BATCH_KEYS,
        required=["server", "topic"],
        choices=MQTT_CHOICES,
    ),
    _kind(
        ["io.kestra.plugin.mqtt.RealtimeTrigger"],
        f"{SOURCES}.mqtt.MqttRealtimeSource",
        MQTT_KEYS,
        required=["server", "topic"],
        realtime=True,
        choices=MQTT_CHOICES,
    ),
    _kind(
        ["io.kestra.plugin.amqp.Trigger"],
        f"{SOURCES}.amqp.AmqpBatchSource",
        {"url", "host", "port", "username", "password", "virtualHost", "queue", "consumerTag", "serdeType"}
        | {"autoAck"}
        | BATCH_KEYS,
        required=["queue"],
        choices=SERDE,
    ),
    _kind(
        ["io.kestra.plugin.amqp.RealtimeTrigger"],
        f"{SOURCES}.amqp.AmqpRealtimeSource",
        {"url", "host", "port", "username", "password", "virtualHost", "queue", "consumerTag", "serdeType"}
        | {"autoAck"},
        required=["queue"],
        realtime=True,
        choices=SERDE,
    ),
    _kind(
        ["io.kestra.plugin.nats.core.Trigger", "io.kestra.plugin.nats.Trigger"],
        f"{SOURCES}.nats.NatsBatchSource",
        {"url", "username", "password", "token", "creds", "subject", "durableId", "deliverPolicy", "since"}
        | {"pollDuration", "batchSize"}
        | BATCH_KEYS,
        required=["url", "subject"],
        choices=NATS_POLICY,
    ),
    _kind(
        ["io.kestra.plugin.nats.core.RealtimeTrigger", "io.kestra.plugin.nats.RealtimeTrigger"],
        f"{SOURCES}.nats.NatsRealtimeSource",
        {"url", "username", "password", "token", "creds", "subject", "durableId", "deliverPolicy", "since"}
        | {"batchSize"},
        required=["url", "subject"],
        realtime=True,
        choices=NATS_POLICY,
    ),
)

EVENT_TYPES: dict[str, EventKind] = {name: kind for kind in EVENT_KINDS for name in kind.names}


@dataclass(frozen=True)
class EventTriggerSpec:
    kind: EventKind
    properties: Mapping[str, Any]  # its own properties, as written (templates rendered at connect time)
    interval: timedelta = DEFAULT_INTERVAL  # a polling trigger's; a realtime one ignores it
    labels: Mapping[str, str] = field(default_factory=dict)
    conditions: tuple[Condition, ...] = ()
    stop_after: tuple[str, ...] = ()

    @property
    def realtime(self) -> bool:
        return self.kind.realtime


def parse_event_trigger(
    raw: Mapping[str, Any], path: Path, errors: ErrorCollector, labels: Callable[[Any, Path], dict[str, str]]
) -> EventTriggerSpec:
    kind = EVENT_TYPES[raw["type"]]
    for key in kind.required:
        if raw.get(key) in (None, ""):
            errors.add(path + (key,), f"missing {key}: a {type_label(kind.names[0])} trigger needs it")
    for key, allowed in kind.choices.items():
        value = raw.get(key)
        if value is not None and value not in allowed and not _is_template(value):
            errors.add(path + (key,), f"'{value}' is not one of {', '.join(map(str, allowed))}")
    interval = read_duration(raw.get("interval"), path + ("interval",), errors) if not kind.realtime else None
    if interval is not None and interval <= timedelta(0):
        errors.add(path + ("interval",), "must be longer than zero")
        interval = None
    for key in ("maxDuration", "pollDuration"):
        if key in kind.keys:
            read_duration(raw.get(key), path + (key,), errors)
    for key in ("maxRecords", "maxFiles", "batchSize", "count"):
        value = raw.get(key)
        bad = isinstance(value, bool) or not isinstance(value, int) or value < 1
        if key in kind.keys and value is not None and not _is_template(value) and bad:
            errors.add(path + (key,), f"'{value}' is not a whole number of at least 1")
    if raw.get("action") == "MOVE" and not raw.get("moveDirectory"):
        errors.add(path + ("moveDirectory",), "missing moveDirectory: action MOVE moves each file there")
    own = {k: v for k, v in raw.items() if k in kind.keys}
    return EventTriggerSpec(
        kind=kind,
        properties=own,
        interval=interval or DEFAULT_INTERVAL,
        labels=labels(raw.get("labels"), path + ("labels",)),
        conditions=parse_conditions(raw.get("conditions"), path + ("conditions",), errors, kind="schedule"),
        stop_after=read_states(raw.get("stopAfter"), path + ("stopAfter",), errors),
    )


def type_label(name: str) -> str:
    """`Schedule`, but `local.Trigger` or `mqtt.RealtimeTrigger`, whose last word alone says little."""
    parts = name.split(".")
    return ".".join(parts[-2:]) if parts[-1].endswith("Trigger") else parts[-1]


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value
