"""Directories shared by the children of a flowable that `shares_directory` (WorkingDirectory), on the one
worker that holds them. What goes into the directory, and what comes out, is the plugin's business: its
`open_directory`, `after_child` and `close_directory` hooks, handed a WorkspaceContext made here.

1. The first child to run makes the directory and the plugin fills it; the flowable's run is pinned to
   that worker (its `worker` field holds the worker's name), so the next children are sent to that worker.
2. After each child, the plugin's `after_child` (WorkingDirectory stores its `outputFiles`).
3. When the flowable ends (the advance after its last child, on the same worker), `close_directory`, then
   the directory is removed.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.conf import settings

from flows_app.engine.properties import render_properties
from flows_app.engine.snapshot import ExecutionSnapshot, RunState
from flows_app.engine.states import State
from flows_app.engine.variables import build_variables, iso
from flows_app.models import TaskRun
from plugins_app.registry import get_plugin

from . import identity
from .logs import log_now
from .storage import StorageError, storage, task_run_parts


def sharing_parent(snapshot: ExecutionSnapshot, run: RunState) -> RunState | None:
    """The run of the directory-sharing flowable this run is a child of, if any."""
    if run.parent_id is None:
        return None
    parent = snapshot.run(run.parent_id)
    return parent if shares_directory(snapshot.flow.task(parent.task_id).type) else None


def shares_directory(task_type: str) -> bool:
    return getattr(get_plugin(task_type), "shares_directory", False)


def directory_of(execution_id: str, parent_run_id: str) -> Path:
    return settings.TERN["WORK_DIR"] / execution_id / f"shared-{parent_run_id}"


def holder(flow, parent) -> str | None:
    """The worker holding the files of `parent` (a run) when it shares a directory a child has run in."""
    if not shares_directory(flow.task(parent.task_id).type):
        return None
    return _holder(parent.id)


def _holder(parent_run_id: str) -> str | None:
    return TaskRun.objects.filter(id=parent_run_id).values_list("worker", flat=True).first() or None


def open_directory(snapshot: ExecutionSnapshot, parent: RunState) -> Path:
    """The shared directory on this worker, made (and filled by the plugin) by the first child here.

    The worker that makes it holds it: the flowable is pinned to it. A child that lands elsewhere
    (re-sent by the tick because the holder stopped answering) starts a new directory here, says so, and
    moves the pin, so the next children follow it."""
    path = directory_of(snapshot.id, parent.id)
    if path.is_dir():
        return path
    if identity.node:
        held_by = _holder(parent.id)
        TaskRun.objects.filter(id=parent.id).update(worker=identity.node)
        if held_by and held_by != identity.node:
            log_now(
                snapshot.id,
                "WARN",
                f"the working directory of '{parent.task_id}' was on {held_by}, which "
                "stopped answering: a new one starts here, without the files of the tasks before",
                parent.id,
                parent.task_id,
            )
    path.mkdir(parents=True)
    workspace = Workspace(snapshot, parent, path)
    workspace.plugin.open_directory(workspace)
    return path


def after_child(snapshot: ExecutionSnapshot, parent: RunState, path: Path) -> None:
    if path.is_dir():
        workspace = Workspace(snapshot, parent, path)
        workspace.plugin.after_child(workspace)


def release(snapshot: ExecutionSnapshot, parent: RunState, state: State) -> None:
    """The flowable ended: its plugin closes the directory (if it is here), which is then removed."""
    path = directory_of(snapshot.id, parent.id)
    if not path.is_dir():
        return
    try:
        workspace = Workspace(snapshot, parent, path)
        workspace.plugin.close_directory(workspace, state)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def worker_taskrun(parent: RunState) -> dict[str, Any]:
    """`workerTaskrun` in templates: the flowable's own run, as Kestra's WorkingDirectory children see it."""
    return {"id": parent.id, "taskId": parent.task_id, "value": parent.value, "startDate": iso(parent.started_at)}


class Workspace:
    """The WorkspaceContext (plugins_app.base) handed to the hooks of a directory-sharing flowable."""

    def __init__(self, snapshot: ExecutionSnapshot, parent: RunState, directory: Path):
        self._snapshot = snapshot
        self.task = snapshot.flow.task(parent.task_id)
        self.run = parent
        self.directory = directory
        self.plugin = get_plugin(self.task.type)()
        self._props: Any = None

    def props(self) -> Any:
        if self._props is None:
            variables = build_variables(self._snapshot, self.task, self.run)
            self._props = render_properties(type(self.plugin), self.task, variables)
        return self._props

    def log(self, level: str, message: str) -> None:
        log_now(self._snapshot.id, level, message, self.run.id, self.run.task_id)

    def storage_put(self, source: Any, name: str) -> str:
        flow = self._snapshot.flow
        return storage().put(
            task_run_parts(flow.namespace, flow.id, self._snapshot.id, self.run.task_id, self.run.id), name, source
        )

    def storage_path(self, uri: str) -> Path:
        return storage().path_of(uri)

    def kept(self, name: str) -> tuple[Path, float] | None:
        """A file kept between executions for this task (`keep`), with its age in seconds; None if none."""
        try:
            path = storage().path_of("kestra:///" + "/".join([*self._kept_parts(), name]))
        except StorageError:
            return None
        return path, time.time() - path.stat().st_mtime

    def keep(self, name: str, data: bytes) -> None:
        storage().put(self._kept_parts(), name, data)

    def forget(self, name: str) -> None:
        kept = self.kept(name)
        if kept is not None:
            kept[0].unlink(missing_ok=True)

    def set_outputs(self, outputs: Mapping[str, Any]) -> None:
        """Merged into the flowable run's outputs: there when it ends, for the tasks that read them."""
        row = TaskRun.objects.only("outputs").get(id=self.run.id)
        TaskRun.objects.filter(id=self.run.id).update(outputs={**(row.outputs or {}), **outputs})

    def _kept_parts(self) -> list[str]:
        flow = self._snapshot.flow
        return [*flow.namespace.split("."), flow.id, "caches", self.run.task_id]
