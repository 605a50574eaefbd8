"""Rows as Kestra's JSON: flows with `source`, executions with `state` and `taskRunList`, log entries, KV.

Plain functions, not serializers: reads are the API's hot path (an execution with its runs is one dict
built from two queries). `serializers.py` describes the same shapes for the OpenAPI document.
"""

from __future__ import annotations

import typing
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

import yaml
from django.utils import timezone

from flows_app.engine.states import State
from flows_app.models import Execution, Flow, FlowRevision, KVEntry, LogEntry, TaskRun
from flows_app.services.secret_inputs import shown_inputs
from flows_app.spec.durations import format_duration
from flows_app.spec.triggers import SCHEDULE
from flows_app.spec.yamlsource import load_plain_yaml

if typing.TYPE_CHECKING:
    from flows_app.models import TriggerState


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def labels_list(labels: Any) -> list[dict[str, str]]:
    """Kestra's JSON form of labels: a list of {key, value}; YAML may write them as a map or as that list."""
    if isinstance(labels, dict):
        return [{"key": str(k), "value": _text(v)} for k, v in labels.items()]
    if isinstance(labels, list):
        return [
            {"key": str(item.get("key")), "value": _text(item.get("value"))}
            for item in labels
            if isinstance(item, dict)
        ]
    return []


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


# ---- flows ----------------------------------------------------------------------------------------


@lru_cache(maxsize=2048)
def _document(checksum: str, source: str) -> dict[str, Any]:
    """A stored source as JSON-safe data (dates as text), cached by its checksum: a revision never changes."""
    try:
        data = load_plain_yaml(source)
    except (yaml.YAMLError, ValueError):
        return {}
    return _json_safe(data) if isinstance(data, dict) else {}


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and value != value:
        return None
    return value


def flow_json(flow: Flow, revision: FlowRevision | None = None, source: bool = True) -> dict[str, Any]:
    """A flow (its latest revision, or `revision`) as Kestra's FlowWithSource; without `source`, its Flow."""
    text = revision.source if revision is not None else flow.source
    checksum = revision.checksum if revision is not None else FlowRevision.checksum_of(text)
    data = dict(_document(checksum, text))
    data.update(
        id=flow.flow_id,
        namespace=flow.namespace,
        revision=revision.revision if revision is not None else flow.revision,
        updated=iso(revision.created_at if revision is not None else flow.updated_at),
        disabled=data.get("disabled") is True,
        deleted=flow.deleted,
        draft=False,
        labels=labels_list(data.get("labels")),
        tasks=data.get("tasks") or [],
    )
    if source:
        data["source"] = text
    return data


# ---- states ---------------------------------------------------------------------------------------


def state_json(current: str, histories: list[dict[str, Any]]) -> dict[str, Any]:
    """Kestra's State: the current state, each state entered with its date, and how long it ran."""
    start = histories[0]["date"] if histories else None
    end = histories[-1]["date"] if histories and State(current).is_terminal else None
    duration = None
    if start is not None:
        finish = datetime.fromisoformat(end) if end else timezone.now()
        duration = format_duration(max(finish - datetime.fromisoformat(start), timedelta(0)))
    return {
        "current": current,
        "histories": [{"state": h["state"], "date": _z(h["date"])} for h in histories],
        "startDate": _z(start),
        "endDate": _z(end),
        "duration": duration,
        # Kestra's JSON also carries its State's getters; its clients' models require them (an end that
        # has not come yet reads as now, as Kestra's getEndDate does).
        "getStartDate": _z(start),
        "getEndDate": _z(end) or iso(timezone.now()),
        "getDuration": duration,
    }


def _z(text: str | None) -> str | None:
    return text.replace("+00:00", "Z") if text else text


def _execution_histories(execution: Execution) -> list[dict[str, Any]]:
    if execution.histories:
        return execution.histories
    # An execution from before histories were kept: what its dates tell.
    found = [{"state": "CREATED", "date": execution.created_at.isoformat()}]
    if execution.started_at:
        found.append({"state": "RUNNING", "date": execution.started_at.isoformat()})
    if execution.ended_at:
        found.append({"state": execution.state, "date": execution.ended_at.isoformat()})
    elif execution.state not in ("CREATED", "RUNNING"):
        found.append({"state": execution.state, "date": found[-1]["date"]})
    return found


def _run_histories(run: TaskRun) -> list[dict[str, Any]]:
    """A task run's states, from its dates and attempts (each attempt: started, then ended in its state)."""
    found = [{"state": "CREATED", "date": run.created_at.isoformat()}]
    for attempt in run.attempts or []:
        if attempt.get("startDate"):
            found.append({"state": "RUNNING", "date": attempt["startDate"]})
        if attempt.get("endDate") and attempt.get("state"):
            found.append({"state": attempt["state"], "date": attempt["endDate"]})
    if found[-1]["state"] != run.state:
        moment = run.ended_at or run.started_at or run.created_at
        found.append({"state": run.state, "date": moment.isoformat()})
    return found


def _attempt_json(attempt: dict[str, Any]) -> dict[str, Any]:
    histories = []
    if attempt.get("startDate"):
        histories.append({"state": "RUNNING", "date": attempt["startDate"]})
    state = attempt.get("state") or "RUNNING"
    if attempt.get("endDate"):
        histories.append({"state": state, "date": attempt["endDate"]})
    return {"state": state_json(state if state in State.__members__ else "RUNNING", histories)}


# ---- executions -----------------------------------------------------------------------------------


def task_run_json(run: TaskRun, execution: Execution) -> dict[str, Any]:
    return {
        "id": run.id,
        "executionId": execution.id,
        "namespace": execution.flow.namespace,
        "flowId": execution.flow.flow_id,
        "taskId": run.task_id,
        "parentTaskRunId": run.parent_id,
        "value": run.value,
        "attempts": [_attempt_json(a) for a in run.attempts or []],
        "outputs": run.outputs or {},
        "state": state_json(run.state, _run_histories(run)),
    }


def execution_json(execution: Execution, runs: list[TaskRun] | None = None) -> dict[str, Any]:
    """An execution (its flow and revision selected with it); with `runs`, its taskRunList."""
    flow = execution.flow
    return {
        "id": execution.id,
        "namespace": flow.namespace,
        "flowId": flow.flow_id,
        "flowRevision": execution.flow_revision.revision,
        "state": state_json(execution.state, _execution_histories(execution)),
        "inputs": shown_inputs(execution),
        "outputs": execution.outputs or {},
        "labels": labels_list(execution.labels or {}),
        "taskRunList": [task_run_json(run, execution) for run in runs] if runs is not None else None,
        "parentId": execution.parent_id,
        "originalId": execution.id,
        "trigger": trigger_json(execution.trigger),
        "deleted": False,
        "metadata": {"attemptNumber": 1, "originalCreatedDate": iso(execution.created_at)},
        "scheduleDate": None,
    }


def trigger_json(stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """Kestra's ExecutionTrigger: id, type and the trigger's variables (stored flat, as templates read them)."""
    if not stored:
        return None
    variables = {k: v for k, v in stored.items() if k not in ("id", "type")}
    return {
        "id": str(stored.get("id") or stored.get("type") or ""),
        "type": str(stored.get("type") or ""),
        "variables": variables,
    }


def runs_of(execution: Execution) -> list[TaskRun]:
    return list(TaskRun.objects.filter(execution_id=execution.id).order_by("order", "created_at"))


# ---- logs and KV ----------------------------------------------------------------------------------


def log_json(line: LogEntry, namespace: str, flow_id: str) -> dict[str, Any]:
    return {
        "namespace": namespace,
        "flowId": flow_id,
        "taskId": line.task_id or None,
        "executionId": line.execution_id,
        "taskRunId": line.task_run_id,
        "attemptNumber": line.attempt,
        "timestamp": iso(line.timestamp),
        "level": line.level,
        "message": line.message,
        "thread": None,
    }


def kv_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, (int, float)):
        return "NUMBER"
    if isinstance(value, str):
        return "STRING"
    return "JSON"


def kv_entry_json(entry: KVEntry) -> dict[str, Any]:
    return {
        "key": entry.key,
        "namespace": entry.namespace,
        "description": None,
        "creationDate": iso(entry.updated_at),
        "updateDate": iso(entry.updated_at),
        "expirationDate": iso(entry.expires_at),
    }


def kv_detail_json(entry: KVEntry) -> dict[str, Any]:
    return {"type": kv_type(entry.value), "value": entry.value, "revision": 1, "updated": iso(entry.updated_at)}


# ---- triggers -------------------------------------------------------------------------------------


def written_trigger(state: TriggerState) -> dict[str, Any] | None:
    """The trigger as its flow's latest revision writes it (JSON-safe), or None if the flow no longer has it."""
    flow = state.flow
    triggers = _document(FlowRevision.checksum_of(flow.source), flow.source).get("triggers")
    for item in triggers if isinstance(triggers, list) else []:
        if isinstance(item, dict) and item.get("id") == state.trigger_id:
            return item
    return None


def abstract_trigger_json(state: TriggerState, written: dict[str, Any] | None) -> dict[str, Any] | None:
    """Kestra's AbstractTrigger: every property as written, with `id`, `type` and `disabled` always there."""
    if written is None:
        return None
    return {
        **written,
        "id": state.trigger_id,
        "type": str(written.get("type") or state.type),
        "disabled": written.get("disabled") is True,
    }


def trigger_context_json(state: TriggerState, written: dict[str, Any] | None = None) -> dict[str, Any]:
    """Kestra's Trigger (a TriggerContext): `date` is when it last started an execution, `disabled` the
    operator's switch (its flow's `disabled` is apart, as in Kestra). After them, Tern's own: `type`,
    `enabled` (whether it fires: its flow, the trigger and an operator all let it), the last execution it
    started, and its last error with the failures in a row."""
    flow = state.flow
    if written is None:
        written = written_trigger(state)
    stop_after = (written or {}).get("stopAfter")
    return {
        "tenantId": "main",
        "namespace": flow.namespace,
        "flowId": flow.flow_id,
        "triggerId": state.trigger_id,
        "date": iso(state.last_date),
        "nextExecutionDate": iso(state.next_date)
        if state.type == SCHEDULE[0]
        else None,  # a Flow trigger's is a cursor
        "stopAfter": [str(s) for s in stop_after] if isinstance(stop_after, list) else None,
        "disabled": state.disabled is True,
        "updatedDate": iso(state.updated_at),
        "type": state.type,
        "enabled": state.enabled,
        "lastExecutionId": state.last_execution_id or None,
        "lastError": state.last_error or None,
        "errorCount": state.error_count,
        "retryAt": iso(state.retry_at),
        "backfill": backfill_json(state),
    }


def backfill_json(state: TriggerState) -> dict[str, Any] | None:
    """The trigger's backfill under way, else its last one."""
    from flows_app.models import Backfill

    found = Backfill.objects.filter(trigger_state=state).order_by("-created_at", "-pk").first()
    if found is None:
        return None
    return {
        "start": iso(found.start),
        "end": iso(found.end),
        "currentDate": iso(found.current_date),
        "paused": found.state == Backfill.PAUSED,
        "inputs": found.inputs,
        "labels": found.labels,
        "state": found.state,
        "done": found.done,
        "total": found.total,
        "started": found.started,
        "onlyMissing": found.only_missing,
    }


def triggers_json(state: TriggerState) -> dict[str, Any]:
    """Kestra's `Triggers` of a search: the trigger as written, and its context (its flow selected with it)."""
    written = written_trigger(state)
    return {
        "abstractTrigger": abstract_trigger_json(state, written),
        "triggerContext": trigger_context_json(state, written),
    }
