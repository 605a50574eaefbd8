"""Deleting ended executions: their rows (task runs and logs cascade) and the files they left behind."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.db import transaction

from flows_app.engine.states import State
from flows_app.models import Execution

from .storage import execution_parts, remove


class NotEnded(Exception):
    """The execution has not ended: a worker may still be writing it."""


def delete_execution(execution_id: str) -> bool:
    """Delete one ended execution (see `delete_executions`); False if there is none."""
    return delete_executions([execution_id]) == 1


def delete_executions(execution_ids: Iterable[str]) -> int:
    """Delete ended executions with their task runs, logs and files; returns how many were deleted.

    All or nothing: if one has not ended, NotEnded names it and none is deleted. Subflow children stay
    (their `parent` becomes null). Holds the executions' row locks, so no advance step runs meanwhile."""
    with transaction.atomic():
        executions = list(
            Execution.objects.select_for_update(of=("self",)).select_related("flow").filter(id__in=list(execution_ids))
        )
        if running := [e for e in executions if not State(e.state).is_terminal]:
            raise NotEnded(_refusal(running))
        folders = [execution_parts(e.flow.namespace, e.flow.flow_id, e.id) for e in executions]
        ids = [e.id for e in executions]
        Execution.objects.filter(id__in=ids).delete()
        # Files after commit: a rolled-back delete keeps them.
        transaction.on_commit(lambda: _remove_files(folders, ids))
    return len(executions)


def _refusal(running: list[Execution]) -> str:
    listed = ", ".join(f"{e.id} ({e.state})" for e in running)
    if len(running) == 1:
        return f"execution {listed} has not ended: kill it first, then delete it"
    return f"executions {listed} have not ended: kill them first, then delete them"


def _remove_files(folders: list[list[str]], ids: list[str]) -> None:
    """Internal storage, then what task runs left in the working directory of this machine (a worker's
    own leftovers stay on its machine)."""
    for parts in folders:
        remove(parts)
    for execution_id in ids:
        shutil.rmtree(Path(settings.TERN["WORK_DIR"]) / execution_id, ignore_errors=True)
