"""Shell tasks (Commands, Script and the seed-era Bash): one shell script, run in the task's working directory as a local process or in a Docker container."""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

from flows_app.engine.vocabulary import MASK_MIN_LENGTH, State, format_duration
from plugins_app.base import PluginError, Properties, RunContext, RunnablePlugin, TaskResult, prop

from .docker_runner import DOCKER_RUNNER, DOCKER_RUNNER_NAMES, LABEL, DockerOptions, docker_options, run_in_container
from .files import InputFiles, parse_file_map, store_matching, write_files
from .process import STOPPED, TIMED_OUT, run_process

PROCESS_RUNNER = "io.kestra.plugin.core.runner.Process"

OUTPUTS = {
    "exitCode": "The shell's exit code (0, since a non-zero code fails the task).",
    "vars": 'Values the script printed as `::{"outputs":{"name":"value"}}::` lines.',
    "outputFiles": "Files matching `outputFiles`, stored in internal storage: path relative to the working "
    "directory -> `kestra:///` URI, for `read()` or another task's `inputFiles`.",
}


def _env_strings(value: Any) -> Any:
    """YAML reads `PORT: 8080` as a number; an environment holds strings, as Kestra renders them."""
    return {k: _env_text(v) for k, v in value.items()} if isinstance(value, dict) else value


def _env_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, (int, float)) else value


Env = Annotated[dict[str, str], BeforeValidator(_env_strings)]
INPUT_FILES = "Files written into the working directory first: name -> content, or an internal storage URI to copy."
WARNING_ON_STDERR = (
    "Deprecated (Kestra 0.23 ignores it): `true` ends a task that exits 0 but wrote to stderr in "
    "WARNING, as up to Kestra 0.22."
)


class ShellProperties(Properties):
    """What Commands and Script share (Kestra's AbstractExecScript)."""

    beforeCommands: list[str] | None = prop(None, description="Commands run first, e.g. to install a tool.")
    env: Env | None = prop(
        None, description="Environment variables added to the worker's own (a container gets these only)."
    )
    interpreter: list[str] = prop(
        ["/bin/sh", "-c"],
        dynamic=False,
        min_length=1,
        description="The program and arguments the script is handed to, as the last argument.",
    )
    warningOnStdErr: bool = prop(False, dynamic=False, description=WARNING_ON_STDERR)
    failFast: bool = prop(
        True,
        dynamic=False,
        description="Stop at the first failing command (`set -e`); if false, the last command decides.",
    )
    inputFiles: InputFiles | None = prop(None, description=INPUT_FILES)
    outputFiles: list[str] | None = prop(None, description="Glob patterns (`*.csv`, `out/**`) of files to return.")
    namespaceFiles: dict[str, Any] | None = prop(
        None, dynamic=False, description="Not supported yet: must not be enabled."
    )
    containerImage: str | None = prop(
        None,
        description="The image the Docker runner runs the task in (default "
        "`ubuntu`, `python` or `node` by task type); ignored by the process runner.",
    )
    taskRunner: dict[str, Any] | None = prop(
        None,
        dynamic=False,
        description=(
            f"Where the task runs: `{{type: {PROCESS_RUNNER}}}` (the default: a local process) or `{{type: {DOCKER_RUNNER}}}` "
            "with `pullPolicy`, `volumes`, `cpu: {cpus}`, `memory: {memory}`, `networkMode`, `user`, `entryPoint`, "
            "`host`, `delete`. Templates in it are rendered."
        ),
    )
    runner: Literal["PROCESS", "DOCKER"] | None = prop(
        None,
        dynamic=False,
        description="Deprecated; use `taskRunner`. DOCKER runs the task in a container set by `docker`.",
    )
    docker: dict[str, Any] | None = prop(
        None,
        dynamic=False,
        description="Deprecated Docker options for `runner: DOCKER`: `image` and the Docker runner's properties.",
    )
    targetOS: Literal["AUTO", "LINUX", "WINDOWS"] = prop(
        "AUTO", dynamic=False, description="Accepted; the worker's OS is used."
    )
    outputDirectory: bool = prop(False, dynamic=False, description="Deprecated; use `outputFiles`.")


class Commands(RunnablePlugin):
    """Run shell commands in a subprocess or a Docker container.

    `beforeCommands` then `commands` are joined with newlines into one script, run by the
    interpreter (`/bin/sh -c` by default). As in Kestra, `failFast` (default true) puts `set -e`
    first, so a failing command fails the task even when it is not the last one.
    Lines on stdout are logged at INFO and lines on stderr at ERROR (Kestra 0.21 on). The exit code
    alone decides the ending, as in Kestra 0.23 on: 0 is SUCCESS whatever went to stderr, anything
    else FAILED. Only `warningOnStdErr: true` written in the flow brings back the WARNING on stderr
    of Kestra up to 0.22; Kestra itself now ignores the property.
    The task runs as a local process on the worker unless `taskRunner` is Kestra's Docker runner
    (or, deprecated, `runner: DOCKER` with `docker`): then it runs in a container of `containerImage`
    (default `ubuntu`), the working directory mounted at its own path, on the engine at the runner's
    `host`, else the worker's DOCKER_HOST. Other task runners (Kubernetes, cloud batch) fail the task.
    An `inputFiles` value that is a `kestra:///` URI is copied from internal storage; files matching
    `outputFiles` are stored there once the script succeeds (output `outputFiles`: path -> URI).
    `::{"metrics":[…]}::` lines are logged at DEBUG, one `metric <name> <type> = <value>` line each:
    Tern records metrics in the task's log until it has a metrics store.
    """

    type = "io.kestra.plugin.scripts.shell.Commands"
    outputs = OUTPUTS
    example = """
- id: report
  type: io.kestra.plugin.scripts.shell.Commands
  env:
    GREETING: hello
  commands:
    - echo "$GREETING" > greeting.txt
    - echo '::{"outputs":{"lines":1}}::'
  outputFiles:
    - "*.txt"
"""

    class Properties(ShellProperties):
        commands: list[str] = prop(description="The commands to run, one per line of the script.", min_length=1)

    default_image = "ubuntu"  # Kestra's containerImage default for this task type

    def run(self, props, ctx):
        return run_shell(script_job(props, ctx, props.commands, default_image=self.default_image), ctx)


class Script(RunnablePlugin):
    """Run an inline shell script in a subprocess or a Docker container.

    The script is written to a file in the working directory and sourced (`. ./file`) by the
    interpreter after `beforeCommands`, so `set -e` (`failFast`) applies inside it as in Kestra,
    where the script ran inline. Defaults and runners as for Commands.
    """

    type = "io.kestra.plugin.scripts.shell.Script"
    outputs = OUTPUTS
    example = """
- id: count
  type: io.kestra.plugin.scripts.shell.Script
  script: |
    for i in 1 2 3; do echo "line $i"; done
    echo '::{"outputs":{"count":3}}::'
"""

    class Properties(ShellProperties):
        script: str = prop(description="The script's text (not a path: use Commands to run a file).", min_length=1)

    default_image = "ubuntu"

    def run(self, props, ctx):
        name = f".tern-script-{secrets.token_hex(4)}.sh"
        return run_shell(
            script_job(props, ctx, [f". ./{name}"], scratch={name: props.script}, default_image=self.default_image), ctx
        )


class Bash(RunnablePlugin):
    """Run shell commands in a subprocess or a Docker container (the seed-era Bash task).

    Kestra's defaults: `interpreter` `/bin/sh` with `interpreterArgs` `["-c"]`, `exitOnFailed`
    true (`set -o errexit` first). Its `warningOnStdErr` defaulted to true until Kestra 0.23 made it
    "not used anymore"; here it is false unless written, as for Commands. `outputFiles`, `outputsFiles` and
    `files` are all read as glob patterns in the working directory; the old
    `{{ outputFiles.name }}` temporary-file variables are not provided.
    `runner: DOCKER` runs the commands in a container of `dockerOptions.image`, as Commands does
    with the Docker task runner.
    """

    type = "io.kestra.core.tasks.scripts.Bash"
    outputs = OUTPUTS
    example = """
- id: bash
  type: io.kestra.core.tasks.scripts.Bash
  commands:
    - echo "The current execution is {{ execution.id }}"
"""

    class Properties(Properties):
        commands: list[str] = prop(description="The commands to run, one per line of the script.", min_length=1)
        interpreter: str = prop("/bin/sh", dynamic=False, min_length=1, description="The program that runs the script.")
        interpreterArgs: list[str] = prop(["-c"], dynamic=False, description="Arguments before the script.")
        exitOnFailed: bool = prop(
            True, dynamic=False, description="Stop at the first failing command (`set -o errexit`)."
        )
        env: Env | None = prop(
            None, description="Environment variables added to the worker's own (a container gets these only)."
        )
        inputFiles: InputFiles | None = prop(None, description=INPUT_FILES)
        outputFiles: list[str] | None = prop(None, dynamic=False, description="Glob patterns of files to return.")
        outputsFiles: list[str] | None = prop(None, dynamic=False, description="Deprecated name of `outputFiles`.")
        files: list[str] | None = prop(None, description="Deprecated name of `outputFiles`.")
        warningOnStdErr: bool = prop(False, dynamic=False, description=WARNING_ON_STDERR)
        runner: Literal["PROCESS", "DOCKER"] = prop(
            "PROCESS", dynamic=False, description="PROCESS (a local process) or DOCKER (a container)."
        )
        dockerOptions: dict[str, Any] | None = prop(
            None,
            dynamic=False,
            description=(
                "For `runner: DOCKER`: `image` (required), and `pullPolicy`, `volumes`, `cpu`, `memory`, `networkMode`, "
                "`user`, `entryPoint`, `host` as for the Docker task runner."
            ),
        )

    def run(self, props, ctx):
        container = None
        if props.runner == "DOCKER":
            if not (props.dockerOptions or {}).get("image"):
                raise PluginError("dockerOptions.image is required with runner: DOCKER", retryable=False)
            container = docker_options(
                ctx.render(props.dockerOptions),
                image=None,
                where="dockerOptions",
                warn=lambda message: ctx.log("WARN", message),
            )
        lines = (["set -o errexit"] if props.exitOnFailed else []) + list(props.commands)
        patterns = (*(props.outputFiles or ()), *(props.outputsFiles or ()), *(props.files or ()))
        job = ShellJob(
            argv=(props.interpreter, *props.interpreterArgs, "\n".join(lines)),
            env=props.env or {},
            input_files=parse_file_map(props.inputFiles),
            output_patterns=patterns,
            warning_on_stderr=props.warningOnStdErr,
            container=container,
        )
        return run_shell(job, ctx)


# ---- one shell run, whichever plugin asked for it -----------------------------------------------


@dataclass(frozen=True)
class ShellJob:
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    input_files: Mapping[str, str | None] = field(default_factory=dict)  # the flow's: text or a storage URI
    output_patterns: tuple[str, ...] = ()
    warning_on_stderr: bool = False  # the deprecated `warningOnStdErr: true`: exit 0 with stderr lines is WARNING
    scratch: Mapping[str, str] = field(default_factory=dict)  # our own files (name -> text), gone before outputs
    container: DockerOptions | None = None  # None: a local process


def run_shell(job: ShellJob, ctx: RunContext) -> Mapping[str, Any] | TaskResult:
    """1. write the input files; 2. run, logging lines as they come; 3. turn the ending into outputs (output
    files sent to internal storage) or an error."""
    workdir = Path(ctx.working_dir)
    write_files(workdir, job.input_files, ctx.storage_path)
    for name, text in job.scratch.items():
        (workdir / name).write_text(text, encoding="utf-8")
    printed = _Printed(ctx)
    timeout = ctx.timeout  # what is left now; the context counts down, and the error names the whole allowance
    try:
        if job.container is None:
            ctx.log("DEBUG", f"Starting {job.argv[0]} in {workdir}")
            ended = run_process(
                job.argv,
                cwd=workdir,
                env={**os.environ, **job.env, "WORKING_DIR": str(workdir)},
                on_line=printed.line,
                timeout=timeout,
                should_stop=ctx.should_stop,
            )
        else:  # the worker's own environment stays out of the container
            ended = run_in_container(
                job.argv,
                job.container,
                workdir=workdir,
                env={**job.env, "WORKING_DIR": str(workdir)},
                labels={LABEL: ctx.task_run_id, "tern.execution": ctx.execution_id},
                on_line=printed.line,
                log=ctx.log,
                timeout=timeout,
                should_stop=ctx.should_stop,
            )
    except (FileNotFoundError, PermissionError) as exc:  # from starting the interpreter, not from the script
        raise PluginError(f"Cannot start '{job.argv[0]}': {exc.strerror}", retryable=False) from exc
    finally:
        for name in job.scratch:
            (workdir / name).unlink(missing_ok=True)

    if ended.reason == TIMED_OUT:
        raise PluginError(f"Timeout after {format_duration(timedelta(seconds=round(timeout or 0, 1)))}", retryable=True)
    if ended.reason == STOPPED:
        raise PluginError("killed", retryable=False)
    outputs: dict[str, Any] = {"exitCode": ended.exit_code, "vars": printed.vars}
    if ended.exit_code != 0:
        why = f": {ended.over_limit}" if ended.over_limit else ""
        raise PluginError(f"Command failed with exit code {ended.exit_code}{why}", outputs=outputs)
    if job.output_patterns:
        outputs["outputFiles"] = store_matching(workdir, job.output_patterns, ctx.storage_put)
    if printed.stderr_lines and job.warning_on_stderr:
        return TaskResult(outputs, state=State.WARNING)
    return outputs


def script_job(
    props: ShellProperties,
    ctx: RunContext,
    commands: Sequence[str],
    *,
    scratch: Mapping[str, str] | None = None,
    default_image: str | None = None,
) -> ShellJob:
    """Commands and Script: one script of `set -e`, `beforeCommands`, then `commands`, like Kestra's ScriptService."""
    container = _container_of(props, ctx, default_image)
    lines = (["set -e"] if props.failFast else []) + list(props.beforeCommands or ()) + list(commands)
    return ShellJob(
        argv=(*props.interpreter, "\n".join(lines)),
        env=props.env or {},
        input_files=parse_file_map(props.inputFiles),
        output_patterns=tuple(props.outputFiles or ()),
        warning_on_stderr=props.warningOnStdErr,
        scratch=scratch or {},
        container=container,
    )


def _container_of(props: ShellProperties, ctx: RunContext, default_image: str | None) -> DockerOptions | None:
    """The Docker options when the task asks for a container; None for a local process (the default)."""
    if props.namespaceFiles and props.namespaceFiles.get("enabled"):
        raise PluginError("namespaceFiles are not available yet", retryable=False)
    image = props.containerImage or default_image
    warn = lambda message: ctx.log("WARN", message)  # noqa: E731
    if props.taskRunner is not None:
        kind = str(props.taskRunner.get("type") or "")
        if kind == PROCESS_RUNNER or kind.endswith(".runner.Process"):
            return None
        if kind in DOCKER_RUNNER_NAMES:
            return docker_options(ctx.render(props.taskRunner), image=image, where="taskRunner", warn=warn)
        raise PluginError(
            f"task runner '{kind}' is not available: use type {PROCESS_RUNNER} or {DOCKER_RUNNER}", retryable=False
        )
    if props.runner == "DOCKER":
        return docker_options(ctx.render(props.docker or {}), image=image, where="docker", warn=warn)
    if props.containerImage or props.docker:
        ctx.log(
            "WARN",
            "containerImage/docker ignored: no Docker taskRunner is set, so Tern runs this task as a "
            "local process, not in a container",
        )
    return None


# ---- what the process printed -------------------------------------------------------------------

_COMMAND_LINE = re.compile(r"^::(\{.*\})::$")


class _Printed:
    """`::{json}::` lines are messages to the orchestrator (outputs, metrics, values to mask); every other
    line is logged, stdout at INFO and stderr at ERROR, as Kestra's log consumer does since 0.21."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.vars: dict[str, Any] = {}
        self.stderr_lines = 0

    def line(self, text: str, is_stderr: bool) -> None:
        if is_stderr:
            self.stderr_lines += 1  # every line counts, `::{…}::` ones too, as Kestra's stdErrLineCount
        match = _COMMAND_LINE.match(text.strip())
        if match:
            self._command(match.group(1))
            return
        self.ctx.log("ERROR" if is_stderr else "INFO", text)

    def _command(self, payload: str) -> None:
        try:
            command = json.loads(payload)
        except ValueError as exc:
            shown = "a mask line" if '"mask"' in payload else f"'{payload}'"  # a mistyped mask line holds a secret
            self.ctx.log("WARN", f"Invalid outputs {shown}: {exc}")
            return
        if not isinstance(command, dict):
            return
        self._mask(command.get("mask"))  # first: the warnings below repeat the payload
        outputs = command.get("outputs")
        if isinstance(outputs, dict):
            self.vars.update(outputs)
        elif outputs is not None:
            self.ctx.log("WARN", f"Invalid outputs '{payload}': `outputs` must be a JSON object")
        self._metrics(command.get("metrics"), payload)

    def _mask(self, values: Any) -> None:
        """`"mask": "value"` or a list of values: masked from now on in the task's logs, outputs and error."""
        if values is None:
            return
        mask = getattr(self.ctx, "mask", None)  # RunContext implementations older than masking have none
        for value in values if isinstance(values, list) else [values]:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                self.ctx.log("WARN", "Invalid mask: `mask` must be a text or a list of texts")
            elif len(str(value).strip()) < MASK_MIN_LENGTH:
                self.ctx.log("WARN", f"A mask value under {MASK_MIN_LENGTH} characters is not masked")
            elif mask is None:
                self.ctx.log("WARN", "A mask value was given, but this task cannot mask values")
            else:
                mask(str(value))

    def _metrics(self, metrics: Any, payload: str) -> None:
        """Kestra's `[{"name", "type", "value", "tags"}]`, logged until Tern has a metrics store."""
        if metrics is None:
            return
        if not isinstance(metrics, list) or not all(isinstance(m, dict) and "name" in m for m in metrics):
            self.ctx.log("WARN", f"Invalid metrics '{payload}': `metrics` must be a list of objects with a `name`")
            return
        for m in metrics:
            tags = f" {json.dumps(m['tags'])}" if m.get("tags") else ""
            self.ctx.log("DEBUG", f"metric {m['name']} {m.get('type', 'counter')} = {m.get('value')}{tags}")
