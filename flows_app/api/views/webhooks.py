"""Webhooks: `GET|POST|PUT /executions/webhook/{namespace}/{flowId}/{key}` starts the flow whose Webhook
trigger has that key. The key is the credential: a wrong key and an unknown flow answer the same 404.

A call with an `Idempotency-Key` header starts at most one execution per key and flow: a repeat (a sender's
retry after a timeout) answers with the execution the first call started."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from django.db import IntegrityError
from django.db.models import F
from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from flows_app.models import Execution, FlowRevision, TriggerState
from flows_app.services.flows import spec_of
from flows_app.services.starting import FlowDisabled, start_execution
from flows_app.spec.triggers import WEBHOOK

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
    """The flow's Webhook trigger with this key, if it fires: an operator may have disabled it (its state
    says so; a flow saved before trigger states existed has none, and its YAML decides)."""
    for trigger in spec_of(revision).triggers:
        expected = trigger.properties.get("key")
        is_webhook = trigger.type == WEBHOOK[0] and isinstance(expected, str)
        if is_webhook and hmac.compare_digest(expected.encode(), key.encode()):
            state = TriggerState.objects.filter(flow_id=revision.flow_id, trigger_id=trigger.id).first()
            fires = state.enabled if state is not None else not trigger.disabled
            return trigger if fires else None
    return None


def _start_key(flow_pk: int, idempotency_key: str | None) -> str | None:
    """The key's digest (any text a sender chooses, of any length), per flow."""
    if not idempotency_key:
        return None
    return f"webhook:{flow_pk}:{hashlib.sha256(idempotency_key.encode()).hexdigest()}"


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
        start_key = _start_key(revision.flow_id, request.headers.get("Idempotency-Key"))
        try:
            execution = start_execution(
                revision.flow,
                {},
                trigger={"id": trigger.id, "type": trigger.type, **variables},
                flow_revision=revision,
                start_key=start_key,
            )
        except FlowDisabled:
            raise ApiError(NOT_FOUND, status_code=404) from None
        except IntegrityError:  # this key started one already: the same answer as the first time
            execution = Execution.objects.select_related("flow_revision").get(start_key=start_key)
            variables = {key: (execution.trigger or {}).get(key) for key in variables}
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
