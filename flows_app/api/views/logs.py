"""An execution's logs: as JSON, filtered by task run and minimum level, or as a text file."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from flows_app.models import LogEntry

from .. import serializers
from ..errors import invalid
from ..representations import iso, log_json
from .common import visible_execution

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
LOG_PARAMETERS = [
    OpenApiParameter("minLevel", str, enum=list(LEVELS)),
    OpenApiParameter("taskRunId", str),
    OpenApiParameter("taskId", str),
    OpenApiParameter("attempt", int),
]


def level_from(request) -> str | None:
    """The `minLevel` asked for (Kestra's names; WARNING read as WARN), or None."""
    level = request.query_params.get("minLevel") or request.query_params.get("level")
    if not level:
        return None
    level = "WARN" if level.upper() == "WARNING" else level.upper()
    if level not in LEVELS:
        raise invalid(f"minLevel: '{level[:10]}' is not one of {', '.join(LEVELS)}", "minLevel", status_code=400)
    return level


def lines_of(request, execution):
    lines = LogEntry.objects.filter(execution_id=execution.id)
    params = request.query_params
    level = level_from(request)
    if level:
        lines = lines.filter(level__in=LEVELS[LEVELS.index(level) :])
    if params.get("taskRunId"):
        lines = lines.filter(task_run_id=params["taskRunId"])
    if params.get("taskId"):
        lines = lines.filter(task_id=params["taskId"])
    if params.get("attempt"):
        if not params["attempt"].isdigit():
            raise invalid("attempt: a number is needed", "attempt", status_code=400)
        lines = lines.filter(attempt=int(params["attempt"]))
    return lines.order_by("id")


class ExecutionLogsView(APIView):
    @extend_schema(
        parameters=LOG_PARAMETERS,
        responses={200: serializers.LogEntry(many=True)},
        operation_id="list_logs_from_execution",
    )
    def get(self, request, execution_id: str, **_):
        execution = visible_execution(request, execution_id)
        namespace, flow_id = execution.flow.namespace, execution.flow.flow_id
        return Response([log_json(line, namespace, flow_id) for line in lines_of(request, execution)[:100_000]])


class ExecutionLogsDownloadView(APIView):
    @extend_schema(
        parameters=LOG_PARAMETERS, responses={(200, "text/plain"): str}, operation_id="download_logs_from_execution"
    )
    def get(self, request, execution_id: str, **_):
        execution = visible_execution(request, execution_id)
        text = "".join(
            f"{iso(line.timestamp)} {line.level:<5} {line.task_id or '-'} {line.message}\n"
            for line in lines_of(request, execution).iterator()
        )
        response = HttpResponse(text, content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{execution.id}.log"'
        return response
