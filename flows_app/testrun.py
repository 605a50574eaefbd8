"""`tern flow test`: one execution of a flow file to its end, in this process, through the real services."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from flows_app import dispatch, events
from flows_app.engine.inputs import InputsError
from flows_app.models import Execution
from flows_app.services.executions import start_execution
from flows_app.services.flows import save_flow
from flows_app.spec.errors import FlowValidationError, SpecWarning
from flows_app.spec.flow import load_flow, read_source


class InvalidFlow(Exception):
    """The flow or its inputs are invalid; the message says where."""


@dataclass
class Outcome:
    execution: Execution
    summary: dict[str, Any]


def load_flows_dir(directory: Path, skip: Path | None = None, warn: Callable[[str], None] | None = None) -> None:
    """Save every flow of a directory (for subflows); an invalid one is reported and skipped."""
    for path in sorted(directory.iterdir()):
        if path.suffix not in (".yml", ".yaml") or not path.is_file():
            continue
        if skip is not None and path.resolve() == skip.resolve():
            continue
        try:
            save_flow(read_source(path))
        except OSError as exc:
            if warn:
                warn(f"{path.name}: skipped, cannot read: {exc.strerror}")
        except FlowValidationError as exc:
            if warn:
                warn(f"{path.name}: skipped, invalid flow:\n{exc}")


def run_flow_file(
    path: Path,
    inputs: Mapping[str, Any] | None = None,
    flows_dir: Path | None = None,
    on_log: Callable[[events.LogLine], None] | None = None,
    timeout: float | None = None,
    on_warnings: Callable[[tuple[SpecWarning, ...]], None] | None = None,
) -> Outcome:
    """`on_warnings` hears the flow's warnings (what it says that Tern does not do yet) before the run starts."""
    try:
        source = read_source(path)
        warnings = load_flow(source).warnings
    except OSError as exc:
        raise InvalidFlow(f"{path}: cannot read: {exc.strerror}") from None
    except FlowValidationError as exc:
        raise InvalidFlow(f"{path}: invalid flow\n{exc}") from None
    if warnings and on_warnings is not None:
        on_warnings(warnings)
    if flows_dir is not None:
        load_flows_dir(flows_dir, skip=path, warn=lambda m: print(m, file=sys.stderr))
    try:
        saved = save_flow(source)
    except FlowValidationError as exc:
        raise InvalidFlow(f"{path}: invalid flow\n{exc}") from None
    runner = dispatch.InlineDispatcher(threads=settings.TERN["INLINE_THREADS"])
    printing = events.subscribed(events.LogLinesWritten, _each_line(on_log)) if on_log else nullcontext()
    try:
        with dispatch.using(runner), printing:
            try:
                execution = start_execution(saved.flow, inputs or {}, local_files=True)
            except InputsError as exc:
                raise InvalidFlow(str(exc)) from None
            runner.run_until_done(execution.id, timeout=timeout)
    finally:
        runner.close()
    execution.refresh_from_db()
    return Outcome(execution, summarize(execution))


def _each_line(on_log: Callable[[events.LogLine], None]) -> Callable[[events.LogLinesWritten], None]:
    def handle(event: events.LogLinesWritten) -> None:
        for line in event.lines:
            on_log(line)

    return handle


def summarize(execution: Execution) -> dict[str, Any]:
    return {
        "id": execution.id,
        "namespace": execution.flow.namespace,
        "flowId": execution.flow.flow_id,
        "state": execution.state,
        "taskRuns": [
            {
                "id": run.id,
                "taskId": run.task_id,
                "parentTaskRunId": run.parent_id,
                "value": run.value,
                "state": run.state,
                "attempts": len(run.attempts),
                "outputs": run.outputs,
            }
            for run in execution.task_runs.order_by("order")
        ],
        "outputs": execution.outputs,
    }
