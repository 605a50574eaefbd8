"""Starting an execution: its inputs checked and stored, its row created and announced."""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from flows_app import events
from flows_app.engine.inputs import InputsError, Upload, coerce_inputs
from flows_app.models import Execution, Flow, FlowRevision, new_id

from .flows import spec_of
from .storage import execution_parts, remove, storage

# Kestra's system labels (its `Label.java`): set by Tern itself, never by a user.
SYSTEM_PREFIX = "system."
CORRELATION_ID = "system.correlationId"  # the root execution's id, shared by its subflows and ForEachItem children
USERNAME = "system.username"  # who started it, when a user did


class FlowDisabled(Exception):
    pass


class ReservedLabels(ValueError):
    """Labels given at start used the `system.` prefix, which only Tern sets."""


def start_execution(
    flow: Flow,
    inputs: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    trigger: Mapping[str, Any] | None = None,
    parent: Execution | None = None,
    parent_task_run_id: str = "",
    revision: int | None = None,
    local_files: bool = False,
    username: str | None = None,
    flow_revision: FlowRevision | None = None,
    start_key: str | None = None,
    execution_id: str | None = None,
) -> Execution:
    """Check the inputs against the flow's latest revision (or `revision`; InputsError names each bad one)
    and create the execution; it is advanced once the transaction commits.

    FILE inputs go to internal storage; the input's value becomes the file's URI. A path is read only
    from the uploads folder, or from anywhere with `local_files` (the local `tern flow test`).

    The execution carries the flow's labels, then `labels` (a `system.` one is refused: ReservedLabels),
    then its system labels (`_system_labels`). A caller that has read the revision already (a webhook) passes
    it as `flow_revision`.

    A `start_key` starts one execution at most (a schedule's tick, a message's id): a second start with the
    same key raises IntegrityError, and stores nothing. `execution_id`: one the caller made (`new_id()`) to
    store files in the execution's folder before it starts (a trigger's messages)."""
    check_labels(labels or {})
    revision = flow_revision or flow.revisions.defer("source").get(revision=revision or flow.revision)
    spec = spec_of(revision)
    if flow.deleted:
        raise FlowDisabled(f"flow {flow} is deleted")
    if spec.disabled:
        raise FlowDisabled(f"flow {flow} is disabled")
    execution_id = execution_id or new_id()
    folder = execution_parts(spec.namespace, spec.id, execution_id) + ["inputs"]
    try:
        values = coerce_inputs(spec.inputs, inputs or {}, store_file=_file_store(folder, local_files))
    except InputsError:
        remove(folder)
        raise
    try:
        with transaction.atomic():
            execution = Execution.objects.create(
                id=execution_id,
                flow=flow,
                flow_revision=revision,
                inputs=values,
                labels={
                    **_without_system(spec.labels),
                    **(labels or {}),
                    **_system_labels(execution_id, parent, username),
                },
                trigger=dict(trigger) if trigger else None,
                histories=[{"state": "CREATED", "date": timezone.now().isoformat()}],
                parent=parent,
                parent_task_run_id=parent_task_run_id,
                start_key=start_key,
            )
            parent_id = parent.id if parent else None
            events.announce(events.ExecutionCreated(execution.id, spec.namespace, spec.id, parent_id))
    except IntegrityError:
        remove(folder)
        raise
    return execution


def check_labels(labels: Mapping[str, str]) -> None:
    """Refuse labels a user gives that only Tern may set (Kestra: "System labels can only be set by Kestra
    itself")."""
    reserved = sorted(key for key in labels if key.startswith(SYSTEM_PREFIX))
    if reserved:
        raise ReservedLabels(f"labels {', '.join(reserved)}: the `system.` prefix is reserved (Tern sets those)")


def _without_system(labels: Mapping[str, str]) -> dict[str, str]:
    """A flow's labels less its system ones: `system.readOnly` marks the flow, not its executions (Kestra's
    `LabelService.labelsExcludingSystem`)."""
    return {key: value for key, value in labels.items() if not key.startswith(SYSTEM_PREFIX)}


def _system_labels(execution_id: str, parent: Execution | None, username: str | None) -> dict[str, str]:
    """Kestra's rule (`ExecutableUtils.subflowExecution`, `Execution.newExecution`): a child (Subflow,
    ForEachItem) takes every system label of its parent — its correlationId, its username if it has one —;
    any other execution is its own correlation root. `username` is who started it, when a user did. A parent
    from before system labels counts as a root."""
    labels = (
        {key: value for key, value in (parent.labels or {}).items() if key.startswith(SYSTEM_PREFIX)}
        if parent is not None
        else {}
    )
    labels.setdefault(CORRELATION_ID, parent.id if parent is not None else execution_id)
    if username:
        labels[USERNAME] = username
    return labels


def _file_store(folder: list[str], local_files: bool) -> Callable[[str, Any], str]:
    """Put a FILE input (bytes, or a file's path) into internal storage; returns its URI."""
    uploads = (Path(settings.TERN["DATA_DIR"]) / "uploads").resolve()

    def store(input_id: str, value: Any) -> str:
        if isinstance(value, (bytes, bytearray)):
            return storage().put([*folder, input_id], input_id, bytes(value))
        if isinstance(value, Upload):
            return storage().put([*folder, input_id], input_id, value.chunks())
        path = Path(value).resolve()
        if not local_files and not path.is_relative_to(uploads):
            raise PermissionError(errno.EACCES, "only uploaded files are read")
        return storage().put([*folder, input_id], path.name, path)

    return store
