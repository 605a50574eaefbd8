"""A Source is one trigger's connection to where its events come from: a folder, a URL, a message bus.

The trigger runner (`flows_app.triggers.runner`, the `tern triggers` process) owns each source in a
thread of its own and calls, for a polling trigger, `poll()` once per `interval`, and for a realtime
one `receive(timeout)` in a loop. Each returned Event becomes one execution, and once that execution
exists (or existed already: a re-delivery) the runner calls `ack` with the events: a crash between the
two re-delivers, never drops. An Event's `key` (a message id, a file's identity) starts one execution
at most, so a re-delivered message does not start a second.

A source raises SourceError (or its client's own connection errors) when it cannot work: the runner
records the error in the trigger's state, logs it, closes the source and opens a new one later, backing
off. A source never sleeps beyond the timeout it is given: the runner must be able to stop it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


class SourceError(Exception):
    """The source cannot work now (unreachable, refused, misconfigured); the message says why."""


@dataclass
class Event:
    variables: dict[str, Any]  # the execution's `trigger.*`, under Kestra's output names for this trigger
    key: str | None = None  # unique per trigger, e.g. a message id: one execution at most; None: no such id
    handle: Any = None  # what `ack` needs: a delivery tag, a stream id, a path
    # A batch trigger's messages: the runner writes them to a file of the execution (one JSON value a
    # line, which is also ION text, Kestra's format) and sets `trigger.uri` to it.
    records: list[Any] | None = None
    # Files that go with the execution (a detected file's copy): called before it starts with
    # `put(name, bytes or path) -> kestra:/// URI` in the execution's folder; it sets the URIs in `variables`.
    store: Callable[[Callable[[str, Any], str]], None] | None = None


@dataclass
class SourceContext:
    """What a source may know of its trigger."""

    namespace: str
    flow_id: str
    trigger_id: str
    stop: threading.Event = field(default_factory=threading.Event)  # set when the runner stops the source
    # Whether this trigger started an execution for an event key beginning with this text (a file seen before).
    seen: Callable[[str], bool] = lambda prefix: False
    # The engine's template rendering, for what a source renders per event (an HTTP response's condition).
    render: Callable[[str, Mapping[str, Any]], str] = lambda text, variables: text
    allowed_paths: tuple[str, ...] = ()  # the folders a file trigger may touch (TERN_TRIGGER_ALLOWED_PATHS)

    @property
    def name(self) -> str:
        """A stable name for the trigger, for a broker: a consumer group, a durable consumer, a client id."""
        return f"tern.{self.namespace}.{self.flow_id}.{self.trigger_id}"


class Source:
    realtime: ClassVar[bool] = False

    def __init__(self, properties: Mapping[str, Any], context: SourceContext):
        """`properties`: the trigger's own properties, their templates rendered."""
        self.properties = properties
        self.context = context

    def poll(self) -> list[Event]:
        """A polling trigger's look: the events there are now (maybe none)."""
        raise NotImplementedError

    def receive(self, timeout: float) -> list[Event]:
        """A realtime trigger's wait: the messages that came within `timeout` seconds (maybe none)."""
        raise NotImplementedError

    def ack(self, events: list[Event]) -> None:
        """The events' executions exist: the broker may forget them (move or delete a file)."""

    def close(self) -> None:
        """Release the connection; called once, also after an error."""
