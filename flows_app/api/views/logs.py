"""An execution's logs: as JSON, filtered by task run and minimum level, or as a text file."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Q
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from flows_app.models import LogEntry
from flows_app.services.logfiles import SWITCH_PREFIX, file_line
from flows_app.services.storage import StorageError, execution_parts, storage

from .. import serializers
from ..errors import invalid
from ..representations import log_json
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


def lines_of(request, execution, with_file_lines: bool = False):
    """The execution's lines as asked; `with_file_lines`: whatever the level asked, with the lines that name
    a log file (the download then puts the file's lines of that level after them)."""
    lines = LogEntry.objects.filter(execution_id=execution.id)
    params = request.query_params
    level = level_from(request)
    if level:
        wanted = Q(level__in=LEVELS[LEVELS.index(level) :])
        if with_file_lines:
            wanted |= Q(task_run_id__isnull=False, message__startswith=SWITCH_PREFIX)
        lines = lines.filter(wanted)
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
        level = level_from(request)
        text = "".join(_downloaded(lines_of(request, execution, with_file_lines=True).iterator(), execution, level))
        response = HttpResponse(text, content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{execution.id}.log"'
        return response


def _downloaded(lines, execution, level: str | None) -> Iterator[str]:
    """The lines as text; a task run's lines that went on in a log file (logToFile, or past the database's
    share) follow the line that says so."""
    for line in lines:
        yield file_line(line.timestamp, line.level, line.task_id, line.message)
        if line.task_run_id and line.message.startswith(SWITCH_PREFIX):
            yield from _file_lines(line.message[len(SWITCH_PREFIX) :].split(" ", 1)[0], execution, level)


def _file_lines(uri: str, execution, level: str | None) -> Iterator[str]:
    try:  # only this execution's own files
        path = storage().path_in(uri, execution_parts(execution.flow.namespace, execution.flow.flow_id, execution.id))
    except StorageError:
        return  # removed with the execution's files, or not one of them
    wanted = set(LEVELS[LEVELS.index(level) :]) if level else None
    keep = True
    with path.open(encoding="utf-8") as lines:
        for text in lines:
            if wanted is not None:
                parts = text.split(" ", 2)
                if len(parts) > 1 and parts[1] in LEVELS:  # else the next line of a multi-line message
                    keep = parts[1] in wanted
            if keep:
                yield text
