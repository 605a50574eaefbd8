"""The KV store, as Kestra's KV API: a namespace's keys listed, one read, written (a JSON value, or text),
deleted."""

from __future__ import annotations

import json
from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from flows_app.models import KVEntry
from flows_app.services import kv
from flows_app.services.access import Role
from flows_app.spec.durations import DurationError, parse_duration

from .. import serializers
from ..errors import ApiError, invalid, not_found
from ..paging import paged
from ..parsing import PlainTextParser
from ..representations import kv_detail_json, kv_entry_json
from .common import access_of, require


def _live():
    now = timezone.now()
    return KVEntry.objects.exclude(expires_at__lte=now)


def _visible_namespace(request, namespace: str, role: Role = Role.VIEWER) -> str:
    try:
        kv.check_namespace(namespace)
    except ValueError as exc:
        raise invalid(str(exc), "namespace", status_code=400) from None
    if not access_of(request).allows(namespace):
        raise not_found(f"namespace {namespace}")
    require(request, namespace, role)
    return namespace


class NamespaceKeysView(APIView):
    @extend_schema(responses={200: serializers.KVEntry(many=True)}, operation_id="list_keys")
    def get(self, request, namespace: str, **_):
        _visible_namespace(request, namespace)
        return Response([kv_entry_json(e) for e in _live().filter(namespace=namespace).order_by("key")])

    @extend_schema(
        request={
            "application/json": {
                "type": "object",
                "properties": {"keys": {"type": "array", "items": {"type": "string"}}},
            }
        },
        responses={200: {"type": "object", "properties": {"keys": {"type": "array", "items": {"type": "string"}}}}},
        operation_id="delete_key_values",
    )
    def delete(self, request, namespace: str, **_):
        _visible_namespace(request, namespace, Role.EDITOR)
        keys = request.data.get("keys") if isinstance(request.data, dict) else None
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise invalid('send {"keys": [...]}', "keys", status_code=400)
        deleted = [key for key in keys if kv.delete_entry(namespace, key)]
        return Response({"keys": deleted})


class KeyView(APIView):
    parser_classes = [PlainTextParser]

    def get_parsers(self):
        from rest_framework.parsers import JSONParser

        return [PlainTextParser(), JSONParser()]

    @extend_schema(responses={200: serializers.KVDetail}, operation_id="key_value")
    def get(self, request, namespace: str, key: str, **_):
        _visible_namespace(request, namespace)
        entry = _live().filter(namespace=namespace, key=key).first()
        if entry is None:
            raise not_found(f"key {key} in namespace {namespace}")
        return Response(kv_detail_json(entry))

    @extend_schema(
        request={"text/plain": OpenApiTypes.STR, "application/json": OpenApiTypes.ANY},
        parameters=[OpenApiParameter("ttl", str, description="ISO 8601 duration, like PT1H")],
        responses={204: None},
        operation_id="set_key_value",
    )
    def put(self, request, namespace: str, key: str, **_):
        """The body is the value: JSON (a number, true, an object, a "quoted string"), else plain text."""
        _visible_namespace(request, namespace, Role.EDITOR)
        value = request.data
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass  # plain text is a string value
        expires_at = None
        ttl = request.query_params.get("ttl") or request.headers.get("ttl")
        if ttl:
            try:
                expires_at = timezone.now() + max(parse_duration(ttl), timedelta(0))
            except DurationError:
                raise invalid(f"ttl: '{ttl[:30]}' is not a duration (like PT1H)", "ttl", status_code=400) from None
        try:
            kv.put_entry(namespace, kv.check_key(key), kv.check_value(value), expires_at)
        except ValueError as exc:
            raise ApiError(str(exc), [{"path": "value", "message": str(exc)}], status_code=422) from None
        return Response(status=204)

    @extend_schema(responses={200: OpenApiTypes.BOOL}, operation_id="delete_key_value")
    def delete(self, request, namespace: str, key: str, **_):
        _visible_namespace(request, namespace, Role.EDITOR)
        return Response(kv.delete_entry(namespace, key))


class AllKeysView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("page", int), OpenApiParameter("size", int)],
        responses={200: serializers.PagedKV},
        operation_id="list_all_keys",
    )
    def get(self, request, **_):
        entries = _live().filter(access_of(request).namespaces_q("namespace")).order_by("namespace", "key")
        return Response(paged(entries, request.query_params, kv_entry_json))
