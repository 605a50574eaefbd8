"""Flows in and out as files: export a zip of YAML files (by ids or by search), import a zip or a YAML
file. An import checks sizes before it unpacks: a zip is at most 10 000 files and 50 MB unpacked."""

from __future__ import annotations

import io
import zipfile

from django.db import transaction
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from flows_app.models import Flow
from flows_app.services import audit
from flows_app.services.access import Role
from flows_app.services.flows import save_flow
from flows_app.spec.errors import FlowValidationError
from flows_app.spec.flow import load_flow
from flows_app.spec.yamlsource import LIMITS

from .. import querying, serializers
from ..errors import ApiError, invalid
from .common import access_of, flag
from .flows import FLOW_FILTERS, documents, flows_by_ids, visible_flows

MAX_FILES, MAX_UNPACKED = 10_000, 50 * 1024 * 1024


def zip_of(flows: list[Flow]) -> HttpResponse:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for flow in flows:
            archive.writestr(f"{flow.namespace}.{flow.flow_id}.yml", flow.source)
    response = HttpResponse(buffer.getvalue(), content_type="application/octet-stream")
    response["Content-Disposition"] = 'attachment; filename="flows.zip"'
    return response


class ExportByIdsView(APIView):
    @extend_schema(
        request=serializers.FlowIdentity(many=True),
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        operation_id="export_flows_by_ids",
    )
    def post(self, request, **_):
        return zip_of(flows_by_ids(request))


class ExportByQueryView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("namespace", str), OpenApiParameter("q", str)],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        operation_id="export_flows_by_query",
    )
    def get(self, request, **_):
        query = querying.build(querying.conditions(request.query_params), FLOW_FILTERS)
        return zip_of(list(visible_flows(request).filter(query).order_by("namespace", "flow_id")))


def sources_of(upload) -> list[str]:
    """The flow sources of an uploaded zip (its .yml and .yaml files) or YAML file (documents split on `---`)."""
    data = upload.read(MAX_UNPACKED + 1)
    if data[:4] != b"PK\x03\x04":
        return documents(_text(data, upload.name))
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise invalid("fileUpload: not a zip file", "fileUpload", status_code=400) from None
    entries = [e for e in archive.infolist() if not e.is_dir() and e.filename.endswith((".yml", ".yaml"))]
    if len(entries) > MAX_FILES or sum(e.file_size for e in entries) > MAX_UNPACKED:
        raise invalid(
            f"fileUpload: at most {MAX_FILES} flows and {MAX_UNPACKED // 2**20} MB unpacked", "fileUpload", 400
        )
    sources = []
    for entry in sorted(entries, key=lambda e: e.filename):
        if entry.file_size > LIMITS.max_bytes:
            raise invalid(f"{entry.filename}: more than {LIMITS.max_bytes} bytes", "fileUpload", status_code=422)
        sources.append(_text(archive.read(entry), entry.filename))
    return sources


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid(f"{name}: not UTF-8 text", "fileUpload", status_code=422) from None


class ImportView(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"fileUpload": {"type": "string", "format": "binary"}},
            }
        },
        parameters=[OpenApiParameter("failOnError", bool, description="import nothing if one flow is invalid")],
        responses={200: {"type": "array", "items": {"type": "string"}}},
        operation_id="import_flows",
    )
    def post(self, request, **_):
        """Save each flow of the file; answers the sources of those that were not valid (Kestra's answer)."""
        upload = request.FILES.get("fileUpload")
        if upload is None:
            raise invalid("send the file as the form field `fileUpload`", "fileUpload", status_code=400)
        valid, refused = [], []
        for source in sources_of(upload):
            try:
                spec = load_flow(source)
            except FlowValidationError:
                refused.append(source)
                continue
            if not access_of(request).allows(spec.namespace, Role.EDITOR):
                raise ApiError(f"you are not editor of namespace {spec.namespace}", status_code=403)
            valid.append(source)
        if refused and flag(request, "failOnError"):
            raise ApiError(f"{len(refused)} of the flows are invalid: none was imported", status_code=422)
        with transaction.atomic():
            for source in valid:
                saved = save_flow(source)
                if saved.created:
                    audit.record_request(request, "flow.saved", str(saved.flow), revision=saved.revision.revision)
        return Response(refused)
