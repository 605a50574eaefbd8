"""Flows: saved from YAML (kept byte for byte) or JSON, read back, searched, validated, deleted, deployed."""

from __future__ import annotations

import difflib
import re
from typing import Any

import yaml
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from flows_app.models import Flow, FlowRevision
from flows_app.services import audit
from flows_app.services.access import Role
from flows_app.services.flows import delete_flow, save_flow, set_disabled
from flows_app.spec.errors import FlowValidationError
from flows_app.spec.flow import load_flow
from flows_app.spec.yamlsource import load_plain_yaml

from .. import querying, serializers
from ..errors import ApiError, flow_errors, invalid, not_found
from ..paging import ordering, paged
from ..representations import flow_json
from .common import access_of, flag, require, visible_flow

_DOCUMENT_SEPARATOR = re.compile(r"(?m)^---[ \t]*(?:#.*)?$")
SOURCE_BODY = {"application/x-yaml": OpenApiTypes.STR, "application/json": OpenApiTypes.OBJECT}


def source_of(request) -> str:
    """The flow source a request carries: YAML text as sent, or a JSON flow written as YAML."""
    data = request.data
    if isinstance(data, str):
        if not data.strip():
            raise invalid("the body is empty: send the flow's YAML", "source")
        return data
    if isinstance(data, dict) and data:
        return yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True)
    raise invalid("send the flow as YAML (Content-Type: application/x-yaml) or as a JSON object", "source")


def documents(text: str) -> list[str]:
    """The flows of a multi-document YAML body (separated by `---` lines), blank ones dropped."""
    return [part for part in _DOCUMENT_SEPARATOR.split(text) if part.strip()]


def _identity(source: str) -> tuple[str | None, str | None]:
    try:
        spec = load_flow(source)
        return spec.namespace, spec.id
    except FlowValidationError:
        return None, None


def _save(request, source: str, expect: tuple[str, str] | None = None) -> Any:
    """Validate (FlowValidationError: a 422 naming each place), check the caller may write the flow's
    namespace, save, and audit."""
    spec = load_flow(source)
    if expect is not None and (spec.namespace, spec.id) != expect:
        raise invalid(
            f"the source is flow {spec.namespace}.{spec.id}, not {expect[0]}.{expect[1]} (the flow in the path)", "id"
        )
    require(request, spec.namespace, Role.EDITOR)
    saved = save_flow(source)
    if saved.created:
        audit.record_request(request, "flow.saved", str(saved.flow), revision=saved.revision.revision)
    return saved


class FlowCreateView(APIView):
    @extend_schema(request=SOURCE_BODY, responses={200: serializers.FlowWithSource}, operation_id="create_flow")
    def post(self, request, **_):
        source = source_of(request)
        namespace, flow_id = _identity(source)
        exists = namespace and Flow.objects.filter(namespace=namespace, flow_id=flow_id, deleted=False).exists()
        if exists and access_of(request).allows(namespace):  # one who may not see it learns nothing here
            raise ApiError(
                f"flow {namespace}.{flow_id} already exists: PUT it to /flows/{namespace}/{flow_id} to update",
                [{"path": "id", "message": "already exists"}],
                status_code=409,
            )
        saved = _save(request, source)
        return Response(flow_json(saved.flow, saved.revision))


FLOW_SORT = {"id": "flow_id", "namespace": "namespace", "revision": "revision", "updated": "updated_at"}
FLOW_FILTERS = {
    "q": querying.free_text("flow_id", "namespace", "description"),
    "namespace": querying.text("namespace"),
    "flowId": querying.text("flow_id"),
    "id": querying.text("flow_id"),
    "labels": querying.labels("labels"),
}


def visible_flows(request, role: Role = Role.VIEWER):
    access = access_of(request)
    return Flow.objects.filter(access.namespaces_q("namespace", role), deleted=False)


class FlowSearchView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("page", int),
            OpenApiParameter("size", int),
            OpenApiParameter("sort", str, many=True),
            OpenApiParameter("q", str),
            OpenApiParameter("namespace", str, description="this namespace and the ones under it"),
            OpenApiParameter("labels", str, many=True, description="key:value"),
        ],
        responses={200: serializers.PagedFlows},
        operation_id="search_flows",
    )
    def get(self, request, **_):
        query = querying.build(querying.conditions(request.query_params), FLOW_FILTERS)
        order = ordering(request.query_params.getlist("sort"), FLOW_SORT, ["namespace", "flow_id"])
        flows = visible_flows(request).filter(query).order_by(*order)
        return Response(paged(flows, request.query_params, lambda flow: flow_json(flow, source=False)))


class DistinctNamespacesView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("q", str)],
        responses={200: {"type": "array", "items": {"type": "string"}}},
        operation_id="list_distinct_namespaces",
    )
    def get(self, request, **_):
        flows = visible_flows(request)
        q = request.query_params.get("q")
        if q:
            flows = flows.filter(namespace__icontains=q)
        return Response(sorted(set(flows.values_list("namespace", flat=True))))


class NamespaceFlowsView(APIView):
    @extend_schema(responses={200: serializers.Flow(many=True)}, operation_id="list_flows_by_namespace")
    def get(self, request, namespace: str, **_):
        flows = visible_flows(request).filter(namespace=namespace).order_by("flow_id")
        return Response([flow_json(flow, source=False) for flow in flows])

    @extend_schema(
        request={"application/x-yaml": OpenApiTypes.STR},
        parameters=[OpenApiParameter("delete", bool, description="delete the namespace's flows not in the body")],
        responses={200: serializers.Flow(many=True)},
        operation_id="update_flows_in_namespace",
    )
    def post(self, request, namespace: str, **_):
        """Deploy a namespace (GitOps): save every flow of the body; with `delete=true`, delete the others."""
        require_namespace_write(request, namespace)
        text = request.data if isinstance(request.data, str) else ""
        sources = documents(text)
        specs, problems = [], []
        for index, source in enumerate(sources):
            try:
                spec = load_flow(source)
            except FlowValidationError as exc:
                problems += [{**e, "path": f"[{index}].{e['path']}"} for e in flow_errors(exc)]
                continue
            if spec.namespace != namespace:
                problems.append({"path": f"[{index}].namespace", "message": f"is {spec.namespace}, not {namespace}"})
            specs.append((spec, source))
        if problems:
            raise ApiError(f"{len(problems)} problem(s) in the flows: nothing was saved", problems, status_code=422)
        with transaction.atomic():
            saved = [_save(request, source) for _, source in specs]
            if flag(request, "delete"):
                keep = {spec.id for spec, _ in specs}
                for flow in Flow.objects.filter(namespace=namespace, deleted=False).exclude(flow_id__in=keep):
                    delete_flow(flow)
                    audit.record_request(request, "flow.deleted", str(flow))
        return Response([flow_json(s.flow, s.revision, source=False) for s in saved])


def require_namespace_write(request, namespace: str) -> None:
    if not access_of(request).allows(namespace, Role.EDITOR):
        raise ApiError(f"you are not editor of namespace {namespace}", status_code=403)


class FlowView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("revision", int),
            OpenApiParameter("source", bool),
            OpenApiParameter("allowDeleted", bool),
        ],
        responses={
            (200, "application/json"): serializers.FlowWithSource,
            (200, "application/x-yaml"): OpenApiTypes.STR,
        },
        operation_id="flow",
    )
    def get(self, request, namespace: str, flow_id: str, **_):
        flow = visible_flow(request, namespace, flow_id, deleted=flag(request, "allowDeleted"))
        revision = _revision(request, flow)
        if request.accepted_renderer.format == "yaml":
            return Response(revision.source if revision else flow.source)
        return Response(flow_json(flow, revision))

    @extend_schema(request=SOURCE_BODY, responses={200: serializers.FlowWithSource}, operation_id="update_flow")
    def put(self, request, namespace: str, flow_id: str, **_):
        visible_flow(request, namespace, flow_id, Role.EDITOR)
        saved = _save(request, source_of(request), expect=(namespace, flow_id))
        return Response(flow_json(saved.flow, saved.revision))

    @extend_schema(responses={204: None}, operation_id="delete_flow")
    def delete(self, request, namespace: str, flow_id: str, **_):
        flow = visible_flow(request, namespace, flow_id, Role.EDITOR)
        delete_flow(flow)
        audit.record_request(request, "flow.deleted", str(flow))
        return Response(status=204)

    def get_renderers(self):
        from ..rendering import YamlSourceRenderer

        return [*super().get_renderers(), YamlSourceRenderer()]


def _revision(request, flow: Flow) -> FlowRevision | None:
    raw = request.query_params.get("revision")
    if not raw:
        return None
    if not raw.isdigit():
        raise invalid(f"revision: '{raw[:20]}' is not a number", "revision", status_code=400)
    found = flow.revisions.filter(revision=int(raw)).first()
    if found is None:
        raise not_found(f"revision {raw} of flow {flow}")
    return found


class FlowRevisionsView(APIView):
    @extend_schema(responses={200: serializers.FlowWithSource(many=True)}, operation_id="list_flow_revisions")
    def get(self, request, namespace: str, flow_id: str, **_):
        flow = visible_flow(request, namespace, flow_id, deleted=True)
        return Response([flow_json(flow, revision) for revision in flow.revisions.order_by("revision")])


class FlowDiffView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("from", int, required=True), OpenApiParameter("to", int, required=True)],
        responses={200: serializers.RevisionDiff},
        operation_id="diff_flow_revisions",
    )
    def get(self, request, namespace: str, flow_id: str, **_):
        """A unified diff between two revisions' sources."""
        flow = visible_flow(request, namespace, flow_id, deleted=True)
        numbers = []
        for name in ("from", "to"):
            raw = request.query_params.get(name, "")
            if not raw.isdigit():
                raise invalid(f"{name}: a revision number is needed", name, status_code=400)
            numbers.append(int(raw))
        rows = {r.revision: r for r in flow.revisions.filter(revision__in=numbers)}
        for number in numbers:
            if number not in rows:
                raise not_found(f"revision {number} of flow {flow}")
        before, after = rows[numbers[0]], rows[numbers[1]]
        diff = difflib.unified_diff(
            before.source.splitlines(keepends=True),
            after.source.splitlines(keepends=True),
            fromfile=f"revision {before.revision}",
            tofile=f"revision {after.revision}",
        )
        return Response({"from": before.revision, "to": after.revision, "diff": "".join(diff)})


class ValidateView(APIView):
    @extend_schema(
        request={"application/x-yaml": OpenApiTypes.STR},
        responses={200: serializers.Violation(many=True)},
        operation_id="validate_flows",
    )
    def post(self, request, **_):
        """Check flows without saving them: one answer per YAML document, with every error's path and line."""
        text = request.data if isinstance(request.data, str) else source_of(request)
        answers = []
        for index, source in enumerate(documents(text)):
            answer: dict[str, Any] = {"index": index, "outdated": False, "deprecationPaths": [], "infos": []}
            try:
                spec = load_flow(source)
            except FlowValidationError as exc:
                errors = flow_errors(exc)
                answer.update(
                    constraints="\n".join(str(e) for e in exc.errors), errors=errors, warnings=[], namespace=None
                )
                namespace, flow_id = _loose_identity(source)
                answer.update(namespace=namespace, flow=flow_id)
            else:
                answer.update(
                    namespace=spec.namespace,
                    flow=spec.id,
                    constraints=None,
                    errors=[],
                    warnings=[str(w) for w in spec.warnings],
                )
            answers.append(answer)
        return Response(answers)


def _loose_identity(source: str) -> tuple[str | None, str | None]:
    """The namespace and id an invalid flow says it has, read within the loader's limits."""
    try:
        data = load_plain_yaml(source)
    except (yaml.YAMLError, ValueError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    ns, fid = data.get("namespace"), data.get("id")
    return (ns if isinstance(ns, str) else None), (fid if isinstance(fid, str) else None)


class FlowBulkView(APIView):
    """`POST|DELETE /flows/{enable,disable,delete}/by-ids` with `[{namespace, id}]`, or `/by-query` with filters."""

    action = ""  # enable, disable, delete
    by = "ids"  # or "query"

    @extend_schema(request=serializers.FlowIdentity(many=True), responses={200: serializers.BulkResponse})
    def post(self, request, **_):
        return self._run(request)

    @extend_schema(request=serializers.FlowIdentity(many=True), responses={200: serializers.BulkResponse})
    def delete(self, request, **_):
        return self._run(request)

    def _run(self, request):
        if self.by == "ids":
            flows = flows_by_ids(request)
        else:
            query = querying.build(querying.conditions(request.query_params), FLOW_FILTERS)
            flows = list(visible_flows(request).filter(query))
        for flow in flows:
            require(request, flow.namespace, Role.EDITOR)
        count = 0
        with transaction.atomic():
            for flow in flows:
                if self.action == "delete":
                    changed = delete_flow(flow)
                else:
                    changed = set_disabled(flow, self.action == "disable").created
                if changed:
                    count += 1
                    audit.record_request(request, f"flow.{self.action}d", str(flow))
        return Response({"count": count})


def flows_by_ids(request) -> list[Flow]:
    """The flows a `[{namespace, id}]` JSON body names (each one the caller may see, else a 404)."""
    items = request.data if isinstance(request.data, list) else None
    if items is None:
        raise invalid("send a JSON list of {namespace, id}", "body", status_code=400)
    flows = []
    for index, item in enumerate(items):
        if not (isinstance(item, dict) and isinstance(item.get("namespace"), str) and isinstance(item.get("id"), str)):
            raise invalid("expected {namespace, id}", f"[{index}]", status_code=400)
        flows.append(visible_flow(request, item["namespace"], item["id"]))
    return flows
