"""The plugin registry: Kestra names of both eras, close-name suggestions, entry points, JSON Schemas."""

from __future__ import annotations

import pytest

from plugins_app import registry
from plugins_app.base import Properties, RunnablePlugin, prop

KESTRA_NAMES = {
    "io.kestra.core.tasks.log.Log": "io.kestra.plugin.core.log.Log",
    "io.kestra.core.tasks.debugs.Return": "io.kestra.plugin.core.debug.Return",
    "io.kestra.core.tasks.debugs.Echo": "io.kestra.plugin.core.debug.Echo",
    "io.kestra.core.tasks.executions.Fail": "io.kestra.plugin.core.execution.Fail",
    "io.kestra.core.tasks.flows.Sequential": "io.kestra.plugin.core.flow.Sequential",
    "io.kestra.core.tasks.flows.Parallel": "io.kestra.plugin.core.flow.Parallel",
    "io.kestra.core.tasks.scripts.Bash": "io.kestra.core.tasks.scripts.Bash",
    "io.kestra.plugin.scripts.shell.Commands": "io.kestra.plugin.scripts.shell.Commands",
    "io.kestra.plugin.scripts.shell.Script": "io.kestra.plugin.scripts.shell.Script",
}


@pytest.mark.parametrize("name,canonical", KESTRA_NAMES.items())
def test_every_core_plugin_answers_to_its_kestra_names(name, canonical):
    assert registry.get_plugin(name).type == canonical
    assert registry.get_plugin(canonical) is registry.get_plugin(name)


def test_an_unknown_type_suggests_close_names():
    with pytest.raises(registry.UnknownPlugin) as info:
        registry.get_plugin("io.kestra.plugin.core.log.Logg")
    assert info.value.suggestions[0] == "io.kestra.plugin.core.log.Log"


@pytest.mark.parametrize("plugin", registry.all_plugins(), ids=lambda p: p.type)
def test_every_plugin_has_a_json_schema_a_title_and_an_example(plugin):
    schema = plugin.json_schema()
    assert schema["title"] == plugin.type and plugin.type in schema["properties"]["type"]["enum"]
    assert plugin.title() and plugin.example.strip()


def test_third_party_plugins_join_through_the_entry_point_group(monkeypatch):
    class Shout(RunnablePlugin):
        """Shout a word."""

        type = "com.example.Shout"

        class Properties(Properties):
            word: str = prop()

        def run(self, props, ctx):
            return {"value": props.word.upper()}

    class FakeEntryPoint:
        def load(self):
            return Shout

    def fake_entry_points(group):
        return [FakeEntryPoint()] if group == registry.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    registry.clear_cache()
    try:
        assert registry.get_plugin("com.example.Shout") is Shout
        from flows_app.spec.flow import load_flow

        spec = load_flow("id: f\nnamespace: t\ntasks:\n  - id: s\n    type: com.example.Shout\n    word: hey\n")
        assert spec.task("s").type == "com.example.Shout"
    finally:
        registry.clear_cache()
