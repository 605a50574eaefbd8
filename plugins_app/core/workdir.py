"""WorkingDirectory (children share one directory on one worker) and LocalFiles (files in and out of it)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from flows_app.engine.vocabulary import DurationError, parse_duration
from plugins_app.base import (
    LIST,
    FlowablePlugin,
    PluginError,
    Properties,
    RunnablePlugin,
    branch,
    finally_next,
    finally_state,
    prop,
    resolve_children_state,
    sequential_next,
)

from .files import InputFiles, match_output_files, parse_file_map, store_matching, write_files

CACHE_FILE = "cache.tar.gz"


class CacheSpec(Properties):
    patterns: list[str] = prop(description="Glob patterns of the files to keep, e.g. `node_modules/**`.", min_length=1)
    ttl: str | None = prop(None, description="How long a cache stays valid (ISO-8601 duration); none: for ever.")


class WorkingDirectory(FlowablePlugin):
    """Run child tasks one after another in one directory they all share, on one worker.

    Files a child writes are there for the next ones. `inputFiles` are written before the first child
    runs; once the last child ends, files matching `outputFiles` go to internal storage (outputs
    `outputFiles`: path -> URI) and the directory is removed. With `cache`, files matching its
    patterns are kept in internal storage after a successful run and put back at the start of the next
    ones, until `ttl` passes. Children must be runnable tasks: a flowable inside could pause or fan out,
    and the directory lives on one worker.
    """

    type = "io.kestra.plugin.core.flow.WorkingDirectory"
    aliases = ("io.kestra.core.tasks.flows.WorkingDirectory", "io.kestra.core.tasks.flows.Worker")
    shares_directory: ClassVar[bool] = True
    child_fields = {"tasks": LIST, "errors": LIST, "finally": LIST}  # `finally` runs in the directory too
    outputs = {"outputFiles": "Files matching `outputFiles` once the last child ended: path -> internal storage URI."}
    example = """
- id: build
  type: io.kestra.plugin.core.flow.WorkingDirectory
  inputFiles:
    names.txt: |
      ada
      grace
  outputFiles:
    - count.txt
  tasks:
    - id: sort
      type: io.kestra.plugin.scripts.shell.Commands
      commands:
        - sort names.txt > sorted.txt
    - id: count
      type: io.kestra.plugin.scripts.shell.Commands
      commands:
        - wc -l < sorted.txt > count.txt
"""

    class Properties(Properties):
        inputFiles: InputFiles | None = prop(
            None, description="Files written into the directory first: name -> content (or an internal storage URI)."
        )
        outputFiles: list[str] | None = prop(
            None, description="Glob patterns of files to keep once the last child ended."
        )
        cache: CacheSpec | None = prop(
            None, dynamic=False, description="Files kept between executions: `patterns`, `ttl`."
        )
        namespaceFiles: dict[str, Any] | None = prop(
            None, dynamic=False, description="Not supported yet: must not be enabled."
        )

    @classmethod
    def check(cls, raw: Mapping[str, Any]):
        from plugins_app.registry import UnknownPlugin, get_plugin

        issues = []
        for name in ("tasks", "errors", "finally"):
            children = raw.get(name)
            for index, child in enumerate(children if isinstance(children, list) else ()):
                kind = child.get("type") if isinstance(child, dict) else None
                try:
                    plugin = get_plugin(kind) if isinstance(kind, str) else None
                except UnknownPlugin:
                    continue  # reported by the parser
                if plugin is not None and not issubclass(plugin, RunnablePlugin):
                    issues.append(
                        (
                            (name, index, "type"),
                            f"'{kind}' is a flowable task: a WorkingDirectory "
                            "runs only runnable tasks (they share a directory on one worker)",
                        )
                    )
        return issues

    def start(self, ctx):
        if (ctx.props().namespaceFiles or {}).get("enabled"):
            raise PluginError("namespaceFiles are not available yet", retryable=False)
        return {}

    def next_children(self, ctx):
        tasks, errors = branch(ctx.task, "tasks"), branch(ctx.task, "errors")
        return sequential_next(tasks, errors, ctx.children) or finally_next(
            resolve_children_state(tasks, errors, ctx.children), branch(ctx.task, "finally"), ctx.children
        )

    def resolve_state(self, ctx):
        done = resolve_children_state(branch(ctx.task, "tasks"), branch(ctx.task, "errors"), ctx.children)
        return finally_state(done, branch(ctx.task, "finally"), ctx.children)

    def open_directory(self, ctx):
        """The cache is put back first, then the `inputFiles` written (over it)."""
        props = ctx.props()
        directory = Path(ctx.directory)
        if props.cache is not None:
            _restore_cache(ctx, props.cache, directory)
        write_files(directory, parse_file_map(props.inputFiles, "inputFiles"), ctx.storage_path)

    def after_child(self, ctx):
        """Files matching `outputFiles` go to internal storage after each child: there when it ends."""
        props = ctx.props()
        if props.outputFiles:
            ctx.set_outputs({"outputFiles": store_matching(Path(ctx.directory), props.outputFiles, ctx.storage_put)})

    def close_directory(self, ctx, state):
        """After a success, files matching the cache's patterns are kept for the next executions."""
        cache = ctx.props().cache
        if cache is None or not state.is_success:
            return
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for relative, absolute in match_output_files(Path(ctx.directory), tuple(cache.patterns)).items():
                tar.add(absolute, arcname=relative)
        ctx.keep(CACHE_FILE, buffer.getvalue())


def _restore_cache(ctx, cache: CacheSpec, directory: Path) -> None:
    kept = ctx.kept(CACHE_FILE)
    if kept is None:
        return  # no cache yet
    archive, age = kept
    try:
        ttl = parse_duration(cache.ttl) if cache.ttl else None
    except DurationError as exc:
        raise PluginError(f"cache.ttl: {exc}", retryable=False) from None
    if ttl is not None and age > ttl.total_seconds():
        ctx.forget(CACHE_FILE)
        return
    with tarfile.open(archive) as tar:
        # our own archive; the "data" filter (Python 3.11.4+) also refuses absolute paths and links out
        tar.extractall(directory, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    ctx.log("INFO", f"cache restored into the working directory of '{ctx.task.id}'")


class LocalFiles(RunnablePlugin):
    """Put files into the task's working directory, and send files from it to internal storage.

    Useful inside a WorkingDirectory: `inputs` (name -> content or an internal storage URI) are written
    first; then files matching `outputs` (glob patterns) are stored, their URIs in the output `uris`.
    """

    type = "io.kestra.plugin.core.storage.LocalFiles"
    aliases = ("io.kestra.core.tasks.storages.LocalFiles",)
    outputs = {"uris": "Stored files: path in the working directory -> internal storage URI."}
    example = """
- id: files
  type: io.kestra.plugin.core.storage.LocalFiles
  inputs:
    config.json: '{"debug": true}'
  outputs:
    - "*.json"
"""

    class Properties(Properties):
        inputs: InputFiles | None = prop(None, description="Files to write: name -> content or internal storage URI.")
        outputs: list[str] | None = prop(None, description="Glob patterns of files to send to internal storage.")

    def run(self, props, ctx):
        workdir = Path(ctx.working_dir)
        write_files(workdir, parse_file_map(props.inputs, "inputs"), ctx.storage_path, "inputs")
        return {"uris": store_matching(workdir, props.outputs or (), ctx.storage_put)}
