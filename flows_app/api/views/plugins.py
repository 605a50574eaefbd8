"""Plugins, as Kestra lists them (not per tenant): every task type, one type's documentation with its JSON
Schema, and the JSON Schema of a whole flow (what an editor needs for autocompletion)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from plugins_app.base import FlowablePlugin
from plugins_app.catalogue import doc
from plugins_app.registry import UnknownPlugin, all_plugins, get_plugin

from ..errors import ApiError
from ..flow_schema import flow_schema, task_schema


class PluginListView(APIView):
    @extend_schema(responses={200: {"type": "array", "items": {"type": "object"}}}, operation_id="list_plugins")
    def get(self, request, **_):
        tasks = [
            {
                "cls": plugin.type,
                "title": plugin.title(),
                "aliases": list(plugin.aliases),
                "flowable": issubclass(plugin, FlowablePlugin),
                "deprecated": False,
            }
            for plugin in all_plugins()
        ]
        return Response([{"name": "core", "title": "Tern core", "group": "io.kestra.plugin.core", "tasks": tasks}])


class PluginView(APIView):
    @extend_schema(responses={200: OpenApiTypes.OBJECT}, operation_id="plugin_documentation")
    def get(self, request, cls: str, **_):
        try:
            plugin = get_plugin(cls)
        except UnknownPlugin as exc:
            raise ApiError(str(exc), status_code=404) from None
        schema = task_schema(plugin)
        return Response({"markdown": doc(cls), "schema": {"properties": schema, "outputs": dict(plugin.outputs)}})


class FlowSchemaView(APIView):
    @extend_schema(responses={200: OpenApiTypes.OBJECT}, operation_id="plugin_schema")
    def get(self, request, schema_type: str, **_):
        if schema_type.lower() != "flow":
            raise ApiError(f"no schema of '{schema_type[:40]}': `flow` is the one there is", status_code=404)
        return Response(flow_schema())
