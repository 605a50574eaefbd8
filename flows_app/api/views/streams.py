"""Server-sent events: an execution's changes (`/executions/{id}/follow`) and its log lines
(`/logs/{id}/follow`), as Kestra streams them.

Each stream subscribes to the execution's Redis channels (fed by the events after commit, see
`flows_app/live.py`) before it reads the database, then reads the database again at each message: nothing
missed, nothing sent twice. A quiet stream gets a comment every 15 s (proxies keep it open) and looks at the
database then too, in case a message was lost. It ends when the execution has ended.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.views import APIView

from flows_app import live
from flows_app.engine.states import State
from flows_app.models import Execution, LogEntry

from .. import serializers
from ..representations import execution_json, log_json, runs_of
from .common import visible_execution
from .executions import SharesTheCreateRoute
from .logs import LEVELS, level_from

QUIET_SECONDS = 15.0


def event_stream(events: AsyncIterator[str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


def sse(event: str, data: str = "") -> str:
    return f"event: {event}\ndata: {data}\n\n"


async def _subscribe(*channels: str):
    from orchestrator.embedded_redis import async_client

    try:
        pubsub = async_client(settings.CELERY_BROKER_URL).pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(*channels)
        return pubsub
    except Exception:
        return None


async def _news(pubsub, seconds: float) -> bool:
    """True once a message came (the ones queued behind it drained), False after `seconds` of quiet."""
    if pubsub is None:
        await asyncio.sleep(min(seconds, 1.0))
        return True  # without Redis, look at the database each second
    try:
        if await pubsub.get_message(timeout=seconds) is None:
            return False
        while await pubsub.get_message(timeout=0) is not None:
            pass
        return True
    except Exception:
        return False


async def _close(pubsub) -> None:
    if pubsub is not None:
        try:
            await pubsub.aclose()
        except Exception:
            pass


def _execution_now(execution_id: str) -> tuple[str | None, tuple, bool]:
    """The execution's JSON, what identifies this version of it, and whether it has ended."""
    execution = Execution.objects.select_related("flow", "flow_revision").filter(id=execution_id).first()
    if execution is None:
        return None, (), True
    runs = runs_of(execution)
    version = (
        execution.state,
        len(execution.histories or ()),
        tuple((r.id, r.state, len(r.attempts or ())) for r in runs),
    )
    return json.dumps(execution_json(execution, runs)), version, State(execution.state).is_terminal


async def execution_events(execution_id: str) -> AsyncIterator[str]:
    pubsub = await _subscribe(live.STATE_CHANNEL.format(execution_id=execution_id))
    seen: tuple | None = None
    try:
        while True:
            data, version, ended = await sync_to_async(_execution_now)(execution_id)
            if data is None:
                return
            if ended:
                yield sse("end", data)
                return
            if version != seen:
                yield sse("progress", data)
                seen = version
            if not await _news(pubsub, QUIET_SECONDS):
                yield ": still running\n\n"
    finally:
        await _close(pubsub)


def _lines_after(execution_id: str, after: int, levels: tuple[str, ...]) -> tuple[list[tuple[int, str]], bool]:
    """Lines stored after id `after`, as JSON, and whether the execution had ended (read first: every line
    of an ended execution is then among them)."""
    execution = Execution.objects.select_related("flow").filter(id=execution_id).first()
    if execution is None:
        return [], True
    ended = State(execution.state).is_terminal
    lines = LogEntry.objects.filter(execution_id=execution_id, id__gt=after, level__in=levels).order_by("id")[:5000]
    namespace, flow_id = execution.flow.namespace, execution.flow.flow_id
    return [(line.id, json.dumps(log_json(line, namespace, flow_id))) for line in lines], ended


async def log_events(execution_id: str, levels: tuple[str, ...]) -> AsyncIterator[str]:
    pubsub = await _subscribe(
        live.CHANNEL.format(execution_id=execution_id), live.STATE_CHANNEL.format(execution_id=execution_id)
    )
    last = 0
    try:
        while True:
            lines, ended = await sync_to_async(_lines_after)(execution_id, last, levels)
            for line_id, data in lines:
                yield sse("progress", data)
                last = line_id
            if len(lines) == 5000:
                continue  # more waiting in the database
            if ended:
                yield sse("end")
                return
            if not await _news(pubsub, QUIET_SECONDS):
                yield ": still running\n\n"
    finally:
        await _close(pubsub)


class ExecutionFollowView(SharesTheCreateRoute, APIView):
    @extend_schema(responses={(200, "text/event-stream"): serializers.Execution}, operation_id="follow_execution")
    def get(self, request, execution_id: str, **_):
        """The execution as it changes: an event `progress` at each change, the last one `end`."""
        execution = visible_execution(request, execution_id)
        return event_stream(execution_events(execution.id))


class LogFollowView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("minLevel", str, enum=list(LEVELS))],
        responses={(200, "text/event-stream"): serializers.LogEntry},
        operation_id="follow_logs_from_execution",
    )
    def get(self, request, execution_id: str, **_):
        """Every log line: the stored ones first, then each as it is stored; `end` once the execution ended."""
        execution = visible_execution(request, execution_id)
        level = level_from(request)
        levels = LEVELS[LEVELS.index(level) :] if level else LEVELS
        return event_stream(log_events(execution.id, levels))
