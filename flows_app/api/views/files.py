"""Files in internal storage (task outputs, FILE inputs), downloaded by their `kestra:///` URI — only through
the execution that owns them: the URI must lie in the execution's own folder."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from flows_app.services.storage import SCHEME, StorageError, execution_parts, storage

from ..errors import ApiError, invalid
from .common import visible_execution
from .executions import SharesTheCreateRoute


def owned_file(request, execution_id: str):
    execution = visible_execution(request, execution_id)
    uri = request.query_params.get("path") or ""
    if not uri.startswith(SCHEME):
        raise invalid(f"path: '{uri[:80]}' is not a kestra:/// URI", "path", status_code=400)
    try:
        return storage().path_in(uri, execution_parts(execution.flow.namespace, execution.flow.flow_id, execution.id))
    except StorageError:
        raise ApiError(f"no file {uri[:200]} in execution {execution.id}", status_code=404) from None


class ExecutionFileView(SharesTheCreateRoute, APIView):
    @extend_schema(
        parameters=[OpenApiParameter("path", str, required=True, description="kestra:///...")],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        operation_id="download_file_from_execution",
    )
    def get(self, request, execution_id: str, **_):
        path = owned_file(request, execution_id)
        return FileResponse(path.open("rb"), as_attachment=True, filename=path.name)


class ExecutionFileMetaView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("path", str, required=True)],
        responses={200: OpenApiTypes.OBJECT},
        operation_id="file_metadatas_from_execution",
    )
    def get(self, request, execution_id: str, **_):
        path = owned_file(request, execution_id)
        return Response({"size": path.stat().st_size})
