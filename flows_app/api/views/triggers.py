"""Flow triggers as Kestra's trigger API: searched, listed per flow, disabled or enabled by an operator
through `flows_app.triggers.control`, the one writer of a trigger's state; a Schedule's backfills started
(`PUT /triggers` with a `backfill`), previewed, paused, resumed and cancelled through `flows_app.triggers.backfills`."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from flows_app.models import TriggerState
from flows_app.services import audit
from flows_app.services.access import Role
from flows_app.spec.triggers import SCHEDULE
from flows_app.triggers import backfills, control

from .. import querying, serializers
from ..errors import ApiError
from ..paging import ordering, paged
from ..representations import trigger_context_json, triggers_json
from .common import access_of, flag, require, visible_flow

SORT = {
    "namespace": "flow__namespace",
    "flowId": "flow__flow_id",
    "triggerId": "trigger_id",
    "nextExecutionDate": "next_date",
    "date": "last_date",
    "updatedDate": "updated_at",
}
DEFAULT_ORDER = ("flow__namespace", "flow__flow_id", "trigger_id")
# Which of a trigger's dates `startDate` and `endDate` filter (Kestra's `dateFilter`).
DATE_FILTERS = {"NEXT_EXECUTION_DATE": "next_date", "LAST_TRIGGERED_DATE": "last_date"}
PAGE = [OpenApiParameter("page", int), OpenApiParameter("size", int), OpenApiParameter("sort", str, many=True)]
FILTERS = [
    OpenApiParameter("q", str, description="in the namespace, flow id or trigger id"),
    OpenApiParameter("namespace", str, description="this namespace and the ones under it"),
    OpenApiParameter("flowId", str),
]
DATE_FILTER = OpenApiParameter(
    "dateFilter", str, enum=list(DATE_FILTERS), description="the date `startDate`/`endDate` filters apply to"
)


def visible_states(request):
    return TriggerState.objects.filter(
        access_of(request).namespaces_q("flow__namespace"), flow__deleted=False
    ).select_related("flow")


def matching(request):
    """The visible trigger states the search parameters select (both of Kestra's spellings)."""
    raw = request.query_params.get("dateFilter") or "NEXT_EXECUTION_DATE"
    column = DATE_FILTERS.get(raw)
    if column is None:
        known = " or ".join(DATE_FILTERS)
        raise ApiError(f"dateFilter: '{raw[:40]}' is not {known}", [{"path": "dateFilter", "message": known}])
    fields = {
        "q": querying.free_text("trigger_id", "flow__flow_id", "flow__namespace"),
        "namespace": querying.text("flow__namespace"),
        "flowId": querying.text("flow__flow_id"),
        "triggerId": querying.text("trigger_id"),
        "startDate": querying.moment(column),
        "endDate": querying.moment(column),
    }
    return visible_states(request).filter(querying.build(querying.conditions(request.query_params), fields))


def visible_trigger(request, identity: dict[str, str], role: Role, where: str = "") -> TriggerState:
    """The trigger `{namespace, flowId, triggerId}` names, if the caller may see its flow (404 otherwise)
    and holds `role` on it (403 otherwise)."""
    flow = visible_flow(request, identity["namespace"], identity["flowId"], role)
    state = TriggerState.objects.select_related("flow").filter(flow=flow, trigger_id=identity["triggerId"]).first()
    if state is None:
        raise ApiError(
            f"flow {flow} has no trigger {identity['triggerId']}",
            [{"path": f"{where}triggerId", "message": "not found"}],
            status_code=404,
        )
    return state


def switch(request, state: TriggerState, disabled: bool) -> TriggerState:
    """Kestra's `disabled`: true disables the trigger whatever its flow says; false lets it follow its flow
    again (a flow or trigger disabled in its source stays so). A change is audited."""
    wanted = True if disabled else None
    if state.disabled == wanted:
        return state
    updated = control.set_disabled(state, wanted)
    audit.record_request(request, "trigger.disabled" if disabled else "trigger.enabled", str(updated))
    return updated


def schedule_of(state: TriggerState):
    """The trigger's Schedule spec, from its flow's latest revision (400 if it is no schedule)."""
    from flows_app.services.flows import spec_of

    flow = state.flow
    spec = spec_of(flow.revisions.defer("source").get(revision=flow.revision))
    trigger = next((t for t in spec.triggers if t.id == state.trigger_id), None)
    if trigger is None or trigger.type != SCHEDULE[0] or trigger.spec is None:
        raise ApiError(
            f"trigger {state} is not a Schedule: only a schedule has ticks to backfill",
            [{"path": "triggerId", "message": "not a Schedule"}],
        )
    return trigger.spec


def checked(serializer_class, data) -> dict:
    """The body as the serializer validates it, else a 400 naming each field (`triggers[0].flowId`)."""
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise ValidationError(_indexed(serializer.errors))
    return serializer.validated_data


def _indexed(detail):
    # DRF keys a list's errors by the items' indexes; as lists, errors.py writes their paths `[0]`.
    if isinstance(detail, dict):
        if detail and all(isinstance(key, int) for key in detail):
            return [_indexed(detail.get(index, {})) for index in range(max(detail) + 1)]
        return {key: _indexed(value) for key, value in detail.items()}
    return detail


class TriggerSearchView(APIView):
    @extend_schema(
        parameters=[*PAGE, *FILTERS, DATE_FILTER],
        responses={200: serializers.PagedTriggers},
        operation_id="search_triggers",
    )
    def get(self, request, **_):
        """Triggers with their state; filters `q`, `namespace`, `flowId`, `triggerId`, `startDate`, `endDate`."""
        order = ordering(request.query_params.getlist("sort"), SORT, DEFAULT_ORDER)
        states = matching(request).order_by(*order, "pk")
        return Response(paged(states, request.query_params, triggers_json))


class FlowTriggersView(APIView):
    @extend_schema(
        parameters=[*PAGE, OpenApiParameter("q", str, description="in the trigger id")],
        responses={200: serializers.PagedTriggerContexts},
        operation_id="search_triggers_for_flow",
    )
    def get(self, request, namespace: str, flow_id: str, **_):
        flow = visible_flow(request, namespace, flow_id)
        states = TriggerState.objects.filter(flow=flow).select_related("flow")
        if request.query_params.get("q"):
            states = states.filter(trigger_id__icontains=request.query_params["q"])
        order = ordering(request.query_params.getlist("sort"), SORT, DEFAULT_ORDER)
        return Response(paged(states.order_by(*order, "pk"), request.query_params, trigger_context_json))


class TriggerView(APIView):
    parser_classes = [JSONParser]  # Kestra's Trigger, as JSON

    @extend_schema(
        request=serializers.TriggerDisabled, responses={200: serializers.TriggerContext}, operation_id="update_trigger"
    )
    def put(self, request, **_):
        """Kestra's update of a trigger: only `disabled` is applied; the rest of the body is ignored."""
        return self._set(request)

    def _set(self, request):
        data = checked(serializers.TriggerDisabled, request.data)
        if data.get("disabled") is None and not data.get("backfill"):
            raise ApiError(
                "nothing to do: give `disabled`, or a `backfill` to start",
                [{"path": "disabled", "message": "required"}],
            )
        state = visible_trigger(request, data, Role.EDITOR)
        if data.get("disabled") is not None:
            state = switch(request, state, data["disabled"])
        if data.get("backfill"):
            asked = data["backfill"]
            try:
                backfills.start_backfill(
                    state,
                    schedule_of(state),
                    asked["start"],
                    asked.get("end"),
                    inputs=asked["inputs"],
                    labels=asked["labels"],
                    only_missing=asked["onlyMissing"],
                    paused=asked["paused"],
                )
            except backfills.BackfillError as exc:
                raise ApiError(
                    str(exc),
                    [{"path": f"backfill.{exc.field}" if exc.field else "backfill", "message": str(exc)}],
                    status_code=409 if not exc.field else 400,
                ) from None
            audit.record_request(request, "backfill.started", str(state), start=asked["start"].isoformat())
        return Response(trigger_context_json(state))


class SetDisabledView(TriggerView):
    """`PUT /triggers/set-disabled`, Kestra 2's path for the same (kestrapy's `disable_trigger_by_id`)."""

    @extend_schema(
        request=serializers.TriggerDisabled,
        responses={200: serializers.TriggerContext},
        operation_id="disable_trigger_by_id",
    )
    def put(self, request, **_):
        """Only `disabled` is applied (`recoverMissedSchedules` is the trigger's own policy)."""
        return self._set(request)


class SetDisabledByTriggersView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=serializers.SetDisabledRequest,
        responses={200: serializers.BulkResponse},
        operation_id="disabled_triggers_by_ids",
    )
    def post(self, request, **_):
        """Every trigger named is checked before any changes; `count` is how many were named."""
        data = checked(serializers.SetDisabledRequest, request.data)
        states = {}
        for index, identity in enumerate(data["triggers"]):
            state = visible_trigger(request, identity, Role.EDITOR, where=f"triggers[{index}].")
            states[state.pk] = state  # a trigger named twice is set once
        with transaction.atomic():
            for state in states.values():
                switch(request, state, data["disabled"])
        return Response({"count": len(data["triggers"])})


class SetDisabledByQueryView(APIView):
    @extend_schema(
        parameters=[
            *FILTERS,
            DATE_FILTER,
            OpenApiParameter("disabled", bool, description="true (the default) disables; false: as the flow says"),
        ],
        request=None,
        responses={200: serializers.BulkResponse},
        operation_id="disabled_triggers_by_query",
    )
    def post(self, request, **_):
        """The triggers a search selects (`disabled=true` by default, as Kestra). `count` is how many were set."""
        disabled = flag(request, "disabled", default=True)
        states = list(matching(request).order_by(*DEFAULT_ORDER))
        for state in states:
            require(request, state.flow.namespace, Role.EDITOR)
        with transaction.atomic():
            for state in states:
                switch(request, state, disabled)
        return Response({"count": len(states)})


# ---- backfills ---------------------------------------------------------------------------------------


class BackfillPreviewView(APIView):
    """Tern's: what a backfill would start, before it starts (`onlyMissing` skips ticks that have one)."""

    parser_classes = [JSONParser]

    @extend_schema(
        request=serializers.BackfillPreviewRequest,
        responses={200: serializers.BackfillPreview},
        operation_id="preview_backfill",
    )
    def post(self, request, **_):
        data = checked(serializers.BackfillPreviewRequest, request.data)
        state = visible_trigger(request, data, Role.VIEWER)
        asked = data["backfill"]
        end = asked.get("end") or timezone.now()
        if end < asked["start"]:
            raise ApiError("the end is before the start", [{"path": "backfill.end", "message": "before the start"}])
        found = backfills.preview(schedule_of(state), state, asked["start"], end, asked["onlyMissing"])
        return Response(
            {"executions": found.executions, "first": found.first, "last": found.last, "ticks": found.ticks}
        )


def act_on_backfill(request, change, action: str) -> Response:
    """`change` (pause, resume or cancel) on the backfill under way of the trigger the body names."""
    data = checked(serializers.TriggerIdentity, request.data)
    state = visible_trigger(request, data, Role.EDITOR)
    backfill = backfills.active_backfill(state)
    if backfill is None:
        raise ApiError(
            f"trigger {state} has no backfill under way", [{"path": "backfill", "message": "none"}], status_code=404
        )
    try:
        change(backfill)
    except backfills.BackfillError as exc:
        raise ApiError(str(exc), status_code=409) from None
    audit.record_request(request, f"backfill.{action}", str(state))
    return Response(trigger_context_json(state))


class BackfillPauseView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=serializers.TriggerIdentity, responses={200: serializers.TriggerContext}, operation_id="pause_backfill"
    )
    def put(self, request, **_):
        """Pause the trigger's backfill: what it started goes on, nothing more starts until it is resumed."""
        return act_on_backfill(request, lambda backfill: backfills.set_paused(backfill, True), "paused")


class BackfillUnpauseView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=serializers.TriggerIdentity,
        responses={200: serializers.TriggerContext},
        operation_id="unpause_backfill",
    )
    def put(self, request, **_):
        return act_on_backfill(request, lambda backfill: backfills.set_paused(backfill, False), "resumed")


class BackfillDeleteView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=serializers.TriggerIdentity, responses={200: serializers.TriggerContext}, operation_id="delete_backfill"
    )
    def post(self, request, **_):
        """Cancel the trigger's backfill for good (Kestra's delete): what it started goes on."""
        return act_on_backfill(request, backfills.cancel, "cancelled")
