"""Webhooks: `GET|POST|PUT /executions/webhook/{namespace}/{flowId}/{key}` starts the flow whose Webhook
trigger has that key. The key is the credential: a wrong key and an unknown flow answer the same 404."""

from __future__ import annotations

import hmac
import json
from typing import Any

from django.db.models import F
from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from flows_app.models import FlowRevision
from flows_app.services.flows import spec_of
from flows_app.services.starting import FlowDisabled, start_execution
from flows_app.spec.flow import WEBHOOK

from .. import serializers
from ..errors import ApiError
from ..representations import labels_list, state_json

NOT_FOUND = "no flow with this webhook"


class RawBody(BaseParser):
    """Any body, kept as bytes: a webhook's sender chooses the content type."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None) -> bytes:
        return stream.read() if stream is not None else b""


def _latest_revision(namespace: str, flow_id: str) -> FlowRevision | None:
    """The flow's latest revision, with its flow, in one query (a webhook is a hot path)."""
    return (
        FlowRevision.objects.select_related("flow")
        .defer("source", "flow__source")
        .filter(flow__namespace=namespace, flow__flow_id=flow_id, flow__deleted=False, revision=F("flow__revision"))
        .first()
    )


def _trigger(revision: FlowRevision, key: str):
    for trigger in spec_of(revision).triggers:
        expected = trigger.properties.get("key")
        is_webhook = trigger.type == WEBHOOK[0] and not trigger.disabled and isinstance(expected, str)
        if is_webhook and hmac.compare_digest(expected.encode(), key.encode()):
            return trigger
    return None


def _body(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    if "json" in content_type or text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


class WebhookView(APIView):
    http_method_names = ["get", "post", "put"]
    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [RawBody]

    @extend_schema(responses={200: serializers.WebhookResponse}, operation_id="trigger_execution_by_webhook", auth=[])
    def get(self, request, namespace: str, flow_id: str, key: str, **_):
        return self._start(request, namespace, flow_id, key)

    @extend_schema(
        request={"application/json": OpenApiTypes.ANY, "text/plain": OpenApiTypes.STR},
        responses={200: serializers.WebhookResponse},
        operation_id="trigger_execution_by_post_webhook",
        auth=[],
    )
    def post(self, request, namespace: str, flow_id: str, key: str, **_):
        return self._start(request, namespace, flow_id, key)

    @extend_schema(
        request={"application/json": OpenApiTypes.ANY, "text/plain": OpenApiTypes.STR},
        responses={200: serializers.WebhookResponse},
        operation_id="trigger_execution_by_put_webhook",
        auth=[],
    )
    def put(self, request, namespace: str, flow_id: str, key: str, **_):
        return self._start(request, namespace, flow_id, key)

    def _start(self, request, namespace: str, flow_id: str, key: str):
        revision = _latest_revision(namespace, flow_id)
        trigger = _trigger(revision, key) if revision is not None else None
        if trigger is None:
            raise ApiError(NOT_FOUND, status_code=404)
        raw = request.body
        variables = {
            "body": _body(raw, request.content_type or ""),
            "headers": {name.lower(): [value] for name, value in request.headers.items()},
            "parameters": {name: request.query_params.getlist(name) for name in request.query_params},
        }
        try:
            execution = start_execution(
                revision.flow, {}, trigger={"id": trigger.id, "type": trigger.type, **variables}, flow_revision=revision
            )
        except FlowDisabled:
            raise ApiError(NOT_FOUND, status_code=404) from None
        return Response(
            {
                "id": execution.id,
                "namespace": namespace,
                "flowId": flow_id,
                "flowRevision": execution.flow_revision.revision,
                "state": state_json(execution.state, execution.histories),
                "labels": labels_list(execution.labels),
                "trigger": {"id": trigger.id, "type": trigger.type, "variables": variables},
                "url": request.build_absolute_uri(f"/admin/flows_app/execution/{execution.id}/change/"),
            }
        )
