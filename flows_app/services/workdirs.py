"""Directories shared by the children of a WorkingDirectory, on the one worker that holds them.

1. The first child to run makes the directory: the WorkingDirectory's `inputFiles` are written and its
   cache put back; the WorkingDirectory is pinned to that worker (its `worker` field holds the worker's
   own queue), so the next children are sent there.
2. After each child, files matching `outputFiles` go to internal storage, into the WorkingDirectory's
   outputs: they are there when it ends, for the tasks and flow outputs that read them.
3. When the WorkingDirectory ends (the advance after its last child, on the same worker), its cache is
   saved and the directory removed.
"""
from __future__ import annotations

import io
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

from django.conf import settings

from flows_app.engine.properties import render_properties
from flows_app.engine.snapshot import ExecutionSnapshot, RunState
from flows_app.engine.states import State
from flows_app.engine.variables import build_variables, iso
from flows_app.models import TaskRun
from flows_app.spec.durations import parse_duration
from orchestrator import celery
from plugins_app.core.files import match_output_files, parse_file_map, store_matching, write_files
from plugins_app.registry import get_plugin

from .logs import log_now
from .storage import StorageError, storage, task_run_parts


def sharing_parent(snapshot: ExecutionSnapshot, run: RunState) -> RunState | None:
    """The WorkingDirectory run this run is a child of, if any."""
    if run.parent_id is None:
        return None
    parent = snapshot.run(run.parent_id)
    return parent if shares_directory(snapshot.flow.task(parent.task_id).type) else None


def shares_directory(task_type: str) -> bool:
    return getattr(get_plugin(task_type), "shares_directory", False)


def directory_of(execution_id: str, parent_run_id: str) -> Path:
    return settings.TERN["WORK_DIR"] / execution_id / f"shared-{parent_run_id}"


def pinned_queue(parent_run_id: str) -> str | None:
    """The queue of the worker holding the WorkingDirectory's files, once a child has run."""
    return TaskRun.objects.filter(id=parent_run_id).values_list("worker", flat=True).first() or None


def open_directory(snapshot: ExecutionSnapshot, parent: RunState) -> Path:
    """The shared directory on this worker, made with its input files (and cache) by the first child here.

    The worker that makes it holds it: the WorkingDirectory is pinned to its queue. A child that lands
    elsewhere (re-sent by the tick because the holder stopped answering) starts a new directory here,
    says so, and moves the pin, so the next children follow it."""
    path = directory_of(snapshot.id, parent.id)
    if path.is_dir():
        return path
    if celery.worker_queue:
        held_by = pinned_queue(parent.id)
        TaskRun.objects.filter(id=parent.id).update(worker=celery.worker_queue)
        if held_by and held_by != celery.worker_queue:
            log_now(snapshot.id, "WARN", f"the working directory of '{parent.task_id}' was on {held_by}, which "
                    "stopped answering: a new one starts here, without the files of the tasks before",
                    parent.id, parent.task_id)
    props = _props(snapshot, parent)
    path.mkdir(parents=True)
    _restore_cache(snapshot, parent, props, path)
    write_files(path, parse_file_map(props.inputFiles, "inputFiles"), storage().path_of)
    return path


def store_output_files(snapshot: ExecutionSnapshot, parent: RunState, path: Path) -> None:
    """After a child: the files matching `outputFiles` into internal storage and the parent's outputs."""
    props = _props(snapshot, parent)
    if not props.outputFiles or not path.is_dir():
        return
    parts = _parts(snapshot, parent)
    uris = store_matching(path, props.outputFiles, lambda source, name: storage().put(parts, name, source))
    row = TaskRun.objects.only("outputs").get(id=parent.id)
    TaskRun.objects.filter(id=parent.id).update(outputs={**(row.outputs or {}), "outputFiles": uris})


def release(snapshot: ExecutionSnapshot, parent: RunState, state: State) -> None:
    """The WorkingDirectory ended: save its cache after a success, then remove the directory (if here)."""
    path = directory_of(snapshot.id, parent.id)
    if not path.is_dir():
        return
    try:
        if state.is_success:
            _save_cache(snapshot, parent, path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def worker_taskrun(parent: RunState) -> dict[str, Any]:
    """`workerTaskrun` in templates: the WorkingDirectory's own run, as Kestra's children see it."""
    return {"id": parent.id, "taskId": parent.task_id, "value": parent.value, "startDate": iso(parent.started_at)}


# ---- cache: files kept between executions, in internal storage, for `ttl` ---------------------------

def _cache_parts(snapshot: ExecutionSnapshot, parent: RunState) -> list[str]:
    flow = snapshot.flow
    return [*flow.namespace.split("."), flow.id, "caches", parent.task_id]


def _restore_cache(snapshot: ExecutionSnapshot, parent: RunState, props, path: Path) -> None:
    if props.cache is None:
        return
    files = storage()
    try:
        archive = files.path_of(_cache_uri(snapshot, parent))
    except StorageError:
        return  # no cache yet
    ttl = parse_duration(props.cache.ttl) if props.cache.ttl else None
    if ttl is not None and time.time() - archive.stat().st_mtime > ttl.total_seconds():
        archive.unlink(missing_ok=True)
        return
    with tarfile.open(archive) as tar:
        # our own archive; the "data" filter (Python 3.11.4+) also refuses absolute paths and links out
        tar.extractall(path, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    log_now(snapshot.id, "INFO", f"cache restored into the working directory of '{parent.task_id}'",
            parent.id, parent.task_id)


def _save_cache(snapshot: ExecutionSnapshot, parent: RunState, path: Path) -> None:
    props = _props(snapshot, parent)
    if props.cache is None:
        return
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for relative, absolute in match_output_files(path, tuple(props.cache.patterns)).items():
            tar.add(absolute, arcname=relative)
    storage().put(_cache_parts(snapshot, parent), "cache.tar.gz", buffer.getvalue())


def _cache_uri(snapshot: ExecutionSnapshot, parent: RunState) -> str:
    return "kestra:///" + "/".join([*_cache_parts(snapshot, parent), "cache.tar.gz"])


def _props(snapshot: ExecutionSnapshot, parent: RunState):
    task = snapshot.flow.task(parent.task_id)
    return render_properties(get_plugin(task.type), task, build_variables(snapshot, task, parent))


def _parts(snapshot: ExecutionSnapshot, parent: RunState) -> list[str]:
    flow = snapshot.flow
    return task_run_parts(flow.namespace, flow.id, snapshot.id, parent.task_id, parent.id)
