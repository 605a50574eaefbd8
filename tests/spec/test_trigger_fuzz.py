"""Any trigger of any type, with any of its properties holding anything, loads or is refused with errors that
name their place; and a polling or realtime trigger that loads opens its source or fails with a SourceError
(what the runner records in the trigger's state), never with a crash."""

from __future__ import annotations

import threading
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from flows_app.spec.errors import FlowValidationError
from flows_app.spec.event_triggers import EVENT_TYPES, EventTriggerSpec
from flows_app.spec.flow import load_flow
from flows_app.spec.triggers import COMMON_KEYS, KEYS, TRIGGER_TYPES
from plugins_app.registry import import_string
from plugins_app.triggers.base import SourceContext, SourceError

from .strategies import TRICKY_TEXT, json_values, load_or_refuse

# Sources whose constructor reaches no network: the others connect on their first poll or receive.
OFFLINE = {"io.kestra.plugin.fs.local.Trigger", "io.kestra.plugin.core.http.Trigger"}


ALL_TYPES = sorted(TRIGGER_TYPES)


@st.composite
def any_trigger(draw, types: list[str] = ALL_TYPES) -> dict[str, Any]:
    name = draw(st.sampled_from(types))
    keys = sorted(KEYS[TRIGGER_TYPES[name]] | COMMON_KEYS - {"id", "type"})
    values = json_values | st.sampled_from(TRICKY_TEXT) | st.sampled_from(["PT1S", "MOVE", "JSON", "/tmp", 3])
    trigger: dict[str, Any] = {"id": "t", "type": name}
    for key in draw(st.lists(st.sampled_from(keys), max_size=6, unique=True)):
        trigger[key] = draw(values)
    return trigger


def flow_with(trigger: dict[str, Any]) -> str:
    tasks = [{"id": "hello", "type": "io.kestra.plugin.core.log.Log", "message": "hi"}]
    return yaml.safe_dump({"id": "f", "namespace": "tests.fuzz", "tasks": tasks, "triggers": [trigger]})


@given(any_trigger())
def test_any_trigger_loads_or_is_refused_with_placed_errors(trigger):
    load_or_refuse(flow_with(trigger))


@given(any_trigger(types=sorted(n for n in EVENT_TYPES if EVENT_TYPES[n].names[0] in OFFLINE)))
def test_an_offline_source_that_loads_opens_or_fails_with_a_source_error(trigger):
    try:
        spec = load_flow(flow_with(trigger)).triggers[0].spec
    except FlowValidationError:  # refusals are the other test's
        return
    assert isinstance(spec, EventTriggerSpec)
    context = SourceContext("tests.fuzz", "f", "t", stop=threading.Event(), allowed_paths=("/tmp",))
    try:
        import_string(spec.kind.source)(dict(spec.properties), context).close()
    except SourceError as exc:
        assert str(exc)
