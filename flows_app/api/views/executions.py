"""Executions: started with inputs (multipart, as Kestra's clients send them), read, searched, killed,
resumed and deleted."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from flows_app import live
from flows_app.engine.inputs import InputsError, Upload
from flows_app.engine.states import State
from flows_app.models import Execution
from flows_app.services import audit
from flows_app.services.access import Role
from flows_app.services.deletion import NotEnded, delete_executions
from flows_app.services.executions import NotPaused, NotRunning, kill_execution, pause_execution, resume_execution
from flows_app.services.restarts import CannotReopen, replay_execution, restart_execution, set_task_run_state
from flows_app.services.starting import FlowDisabled, ReservedLabels, start_execution

from .. import querying, serializers
from ..errors import ApiError, invalid, not_found
from ..paging import ordering, paged
from ..representations import execution_json, runs_of
from .common import access_of, flag, require, visible_execution, visible_flow


def inputs_of(request) -> dict[str, Any]:
    """Form fields as text (a repeated field as a list) and uploaded files as Uploads, or a JSON object."""
    if isinstance(request.data, dict) and not hasattr(request.data, "getlist"):
        return dict(request.data)
    values: dict[str, Any] = {}
    for key in request.data:
        items = request.data.getlist(key)
        values[key] = items[0] if len(items) == 1 else items
    for key, value in values.items():
        texts = [key, *(v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str))]
        if any("\x00" in text for text in texts):  # no database stores one
            raise invalid(f"inputs.{key[:40]}: a NUL character is not allowed", f"inputs.{key[:40]}", status_code=400)
    for key in request.FILES:
        upload = request.FILES[key]
        values[key] = Upload(upload.name or key, upload.chunks)  # copied to storage in chunks, not read whole
    return values


def labels_of(request) -> dict[str, str]:
    """`labels=key:value`, repeated (Kestra's form)."""
    labels = {}
    for item in request.query_params.getlist("labels"):
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise invalid(f"labels: '{item[:60]}' is not key:value", "labels", status_code=400)
        labels[key] = value
    return labels


def execution_response(request, execution: Execution, status: int = 200, created: bool = False) -> Response:
    data = execution_json(execution, runs_of(execution))
    if created:
        data["url"] = request.build_absolute_uri(f"/admin/flows_app/execution/{execution.id}/change/")
    return Response(data, status=status)


def reload(execution_id: str) -> Execution:
    return Execution.objects.select_related("flow", "flow_revision").get(id=execution_id)


class ExecutionCreateView(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        parameters=[
            OpenApiParameter("wait", bool, description="answer when the execution has ended"),
            OpenApiParameter("labels", str, many=True, description="key:value"),
            OpenApiParameter("revision", int),
        ],
        request={"multipart/form-data": {"type": "object", "additionalProperties": True}},
        responses={200: serializers.CreatedExecution},
        operation_id="create_execution",
    )
    def post(self, request, namespace: str, flow_id: str, **_):
        flow = visible_flow(request, namespace, flow_id, Role.EDITOR)
        revision = request.query_params.get("revision")
        if revision is not None and not revision.isdigit():
            raise invalid(f"revision: '{revision[:20]}' is not a number", "revision", status_code=400)
        if revision is not None and not flow.revisions.filter(revision=int(revision)).exists():
            raise not_found(f"revision {revision} of flow {flow}")
        labels = labels_of(request)
        wait = flag(request, "wait")
        try:
            execution = start_execution(
                flow,
                inputs_of(request),
                labels=labels,
                revision=int(revision) if revision else None,
                username=request.user.get_username(),
            )
        except (FlowDisabled, ReservedLabels) as exc:
            raise ApiError(str(exc), status_code=422) from None
        if wait:
            live.wait_for_end(execution.id, settings.TERN["API_WAIT_SECONDS"], lambda: _state_of(execution.id))
        return execution_response(request, reload(execution.id), created=True)


class SharesTheCreateRoute:
    """For `GET /executions/{id}/follow` and `/file`: their paths have the shape of `POST
    /executions/{namespace}/{flowId}`, which starts a flow; in Kestra the routes differ only by their method.
    A POST here starts the flow named `follow` (or `file`) of that namespace."""

    @extend_schema(exclude=True)
    def post(self, request, execution_id: str, **_):
        flow_id = request.path.rstrip("/").rsplit("/", 1)[-1]
        return ExecutionCreateView().post(request, namespace=execution_id, flow_id=flow_id)


def _state_of(execution_id: str) -> str | None:
    from django.db import close_old_connections

    close_old_connections()
    return Execution.objects.filter(id=execution_id).values_list("state", flat=True).first()


class ExecutionView(APIView):
    @extend_schema(responses={200: serializers.Execution}, operation_id="execution")
    def get(self, request, execution_id: str, **_):
        return execution_response(request, visible_execution(request, execution_id))

    @extend_schema(responses={204: None}, operation_id="delete_execution")
    def delete(self, request, execution_id: str, **_):
        execution = visible_execution(request, execution_id, Role.EDITOR)
        try:
            delete_executions([execution.id])
        except NotEnded as exc:
            raise ApiError(str(exc), status_code=409) from None
        audit.record_request(request, "execution.deleted", execution.id)
        return Response(status=204)


class KillView(APIView):
    @extend_schema(responses={202: serializers.Execution}, operation_id="kill_execution")
    def delete(self, request, execution_id: str, **_):
        execution = visible_execution(request, execution_id, Role.EDITOR)
        if not kill_execution(execution.id):
            raise ApiError(
                f"execution {execution.id} has already ended ({reload(execution.id).state})", status_code=409
            )
        audit.record_request(request, "execution.killed", execution.id)
        return execution_response(request, reload(execution.id), status=202)


# An editor's action on an execution: (the service, what it raises when it cannot act now, the audit's word).
ACTIONS = {
    "restart": (restart_execution, CannotReopen, "execution.restarted"),
    "pause": (pause_execution, NotRunning, "execution.paused"),
    "resume": (resume_execution, (NotPaused, InputsError), "execution.resumed"),  # by ids: no onResume inputs
}


def act_on(request, execution_id: str, action: str):
    """One execution: 404 if one may not see it, 403 if one may not change it, 409 if it cannot be done now."""
    act, cannot, audited = ACTIONS[action]
    execution = visible_execution(request, execution_id, Role.EDITOR)
    try:
        act(execution.id)
    except cannot as exc:
        raise ApiError(str(exc), status_code=409) from None
    audit.record_request(request, audited, execution.id)
    return execution_response(request, reload(execution.id))


class PauseView(APIView):
    @extend_schema(request=None, responses={200: serializers.Execution}, operation_id="pause_execution")
    def post(self, request, execution_id: str, **_):
        """Pause a running execution: the task runs under way finish, nothing new starts until it is resumed."""
        return act_on(request, execution_id, "pause")


class ResumeView(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        request={"multipart/form-data": {"type": "object", "additionalProperties": True}},
        responses={200: serializers.Execution},
        operation_id="resume_execution",
    )
    def post(self, request, execution_id: str, **_):
        execution = visible_execution(request, execution_id, Role.EDITOR)
        try:
            resume_execution(execution.id, inputs_of(request))
        except NotPaused as exc:
            raise ApiError(str(exc), status_code=409) from None
        audit.record_request(request, "execution.resumed", execution.id)
        return execution_response(request, reload(execution.id))


class RestartView(APIView):
    @extend_schema(request=None, responses={200: serializers.Execution}, operation_id="restart_execution")
    def post(self, request, execution_id: str, **_):
        """Run a FAILED or KILLED execution again from its failed task runs (a new attempt of each)."""
        return act_on(request, execution_id, "restart")


class ReplayView(APIView):
    @extend_schema(
        request=None,
        parameters=[OpenApiParameter("taskRunId", str, description="replay from this task run (default: the start)")],
        responses={200: serializers.Execution},
        operation_id="replay_execution",
    )
    def post(self, request, execution_id: str, **_):
        """A new execution of the same revision and inputs; with `taskRunId`, the runs that ended before it
        are copied and the rest run anew."""
        execution = visible_execution(request, execution_id, Role.EDITOR)
        try:
            replay = replay_execution(execution.id, request.query_params.get("taskRunId") or None)
        except CannotReopen as exc:
            raise ApiError(str(exc), status_code=409) from None
        audit.record_request(request, "execution.replayed", execution.id, replay=replay.id)
        return execution_response(request, reload(replay.id))


class TaskRunStateView(APIView):
    @extend_schema(
        request=serializers.StateRequest, responses={200: serializers.Execution}, operation_id="update_task_run_state"
    )
    def post(self, request, execution_id: str, **_):
        """Give an ended task run of an ended execution another state; the execution goes on from there."""
        execution = visible_execution(request, execution_id, Role.EDITOR)
        body = serializers.StateRequest(data=request.data if isinstance(request.data, dict) else {})
        body.is_valid(raise_exception=True)
        wanted = body.validated_data["state"]
        if wanted not in State.__members__:
            raise invalid(f"state: '{wanted[:20]}' is not a state", "state")
        try:
            set_task_run_state(execution.id, body.validated_data["taskRunId"], State(wanted))
        except CannotReopen as exc:
            raise ApiError(str(exc), status_code=409) from None
        audit.record_request(request, "execution.task_state_set", execution.id, **body.validated_data)
        return execution_response(request, reload(execution.id))


EXECUTION_SORT = {
    "id": "id",
    "state.startDate": "created_at",
    "state.endDate": "ended_at",
    "state.current": "state",
    "namespace": "flow__namespace",
    "flowId": "flow__flow_id",
}
EXECUTION_FILTERS = {
    "q": querying.free_text("id", "flow__flow_id", "flow__namespace"),
    "namespace": querying.text("flow__namespace"),
    "flowId": querying.text("flow__flow_id"),
    "state": querying.text("state"),
    "labels": querying.labels("labels"),
    "startDate": querying.moment("created_at"),
    "endDate": querying.moment("created_at"),
    "timeRange": querying.time_range("created_at"),
    "executionId": querying.text("id"),
    "parentId": querying.text("parent_id"),
    "triggerExecutionId": querying.text("parent_id"),
}


def visible_executions(request, role: Role = Role.VIEWER):
    return Execution.objects.filter(access_of(request).namespaces_q("flow__namespace", role))


def search(request):
    query = querying.build(querying.conditions(request.query_params), EXECUTION_FILTERS)
    order = ordering(request.query_params.getlist("sort"), EXECUTION_SORT, ["-created_at"])
    executions = (
        visible_executions(request)
        .filter(query)
        .select_related("flow", "flow_revision")
        .prefetch_related("task_runs")
        .order_by(*order, "id")
    )
    return paged(executions, request.query_params, _with_runs)


def _with_runs(execution: Execution) -> dict[str, Any]:
    runs = sorted(execution.task_runs.all(), key=lambda run: (run.order, run.created_at))
    return execution_json(execution, runs)


SEARCH_PARAMETERS = [
    OpenApiParameter("page", int),
    OpenApiParameter("size", int),
    OpenApiParameter("sort", str, many=True, description="field:asc or field:desc"),
    OpenApiParameter("q", str),
    OpenApiParameter("namespace", str),
    OpenApiParameter("flowId", str),
    OpenApiParameter("state", str, many=True),
    OpenApiParameter("labels", str, many=True, description="key:value"),
    OpenApiParameter("startDate", str, description="ISO 8601"),
    OpenApiParameter("endDate", str, description="ISO 8601"),
]


class ExecutionSearchView(APIView):
    @extend_schema(
        parameters=SEARCH_PARAMETERS, responses={200: serializers.PagedExecutions}, operation_id="search_executions"
    )
    def get(self, request, **_):
        return Response(search(request))


class FlowExecutionsView(APIView):
    """Kestra 0.x's listing: `GET /executions?namespace=...&flowId=...`."""

    @extend_schema(
        parameters=SEARCH_PARAMETERS,
        responses={200: serializers.PagedExecutions},
        operation_id="search_executions_by_flow_id",
    )
    def get(self, request, **_):
        return Response(search(request))


class ExecutionBulkView(APIView):
    """Kill, delete, restart, pause or resume many executions at once: by ids (a JSON list), or by the search
    filters."""

    action = ""  # kill, delete (DELETE); restart, pause, resume (POST)
    by = "ids"

    @extend_schema(
        request={"application/json": {"type": "array", "items": {"type": "string"}}},
        responses={200: serializers.BulkResponse},
    )
    def post(self, request, **_):
        """Restart, pause or resume many executions: those that cannot are left as they are, and not counted."""
        act, cannot, done = ACTIONS[self.action]
        executions = self._chosen(request)
        for execution in executions:
            require(request, execution.flow.namespace, Role.EDITOR)
        count = 0
        for execution in executions:
            try:
                act(execution.id)
            except cannot:
                continue
            count += 1
            audit.record_request(request, done, execution.id)
        return Response({"count": count})

    @extend_schema(
        request={"application/json": {"type": "array", "items": {"type": "string"}}},
        responses={200: serializers.BulkResponse},
    )
    def delete(self, request, **_):
        executions = self._chosen(request)
        for execution in executions:
            require(request, execution.flow.namespace, Role.EDITOR)
        if self.action == "kill":
            count = sum(1 for e in executions if kill_execution(e.id))
        else:
            ended = [e.id for e in executions if State(e.state).is_terminal]
            if len(ended) != len(executions) and not flag(request, "includeNonTerminated", True):
                raise ApiError("some executions have not ended", status_code=409)
            with transaction.atomic():
                count = delete_executions(ended)
        for execution in executions:
            audit.record_request(request, f"execution.{'killed' if self.action == 'kill' else 'deleted'}", execution.id)
        return Response({"count": count})

    def _chosen(self, request) -> list[Execution]:
        if self.by == "query":
            query = querying.build(querying.conditions(request.query_params), EXECUTION_FILTERS)
            return list(visible_executions(request).filter(query).select_related("flow")[:10_000])
        ids = request.data if isinstance(request.data, list) else None
        if ids is None or not all(isinstance(i, str) for i in ids):
            raise invalid("send a JSON list of execution ids", "body", status_code=400)
        return [visible_execution(request, i) for i in ids]
