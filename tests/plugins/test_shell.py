"""The shell plugins run real processes: output, outputs, failures, timeouts and kills, files in the working directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from flows_app.engine.states import State
from plugins_app.base import PluginError, TaskResult
from plugins_app.core.process import EXITED, run_process
from plugins_app.core.shell import Bash, Commands, Script


@dataclass
class FakeContext:
    working_dir: Path
    timeout: float | None = None
    stop: Callable[[], bool] = lambda: False
    task_id: str = "shell"
    task_run_id: str = "run-1"
    execution_id: str = "exec-1"
    attempt: int = 1
    storage: Path | None = None  # internal storage, a folder
    logs: list[tuple[str, str]] = field(default_factory=list)

    def storage_put(self, source: Path, name: str) -> str:
        target = self.storage / self.task_run_id / name.replace("/", "_")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return f"kestra:///{self.task_run_id}/{target.name}"

    def storage_path(self, uri: str) -> Path:
        path = self.storage / uri.removeprefix("kestra:///")
        if not path.is_file():
            raise LookupError(f"'{uri}': no such file in the internal storage")
        return path

    def stored(self, uri: str) -> str:
        return self.storage_path(uri).read_text()

    def render(self, value: Any) -> Any:
        return value

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))

    def should_stop(self) -> bool:
        return self.stop()

    def lines(self, level: str) -> list[str]:
        return [message for lvl, message in self.logs if lvl == level]


@pytest.fixture
def ctx(tmp_path: Path) -> FakeContext:
    (tmp_path / "work").mkdir()
    return FakeContext(working_dir=tmp_path / "work", storage=tmp_path / "storage")


def run(plugin_cls, ctx: FakeContext, **raw: Any):
    plugin = plugin_cls()
    return plugin.run(plugin_cls.Properties.model_validate(raw), ctx)


def outputs_of(result) -> dict:
    return dict(result.outputs if isinstance(result, TaskResult) else result)


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    give_up = time.monotonic() + seconds
    while time.monotonic() < give_up:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def is_dead(pid: int) -> bool:
    """Gone, or a zombie waiting for a PID 1 that may never reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def read_pid(path: Path) -> int:
    assert wait_until(lambda: path.exists() and path.read_text().strip(), 2), f"{path.name} never written"
    return int(path.read_text())


# ---- output ---------------------------------------------------------------------------------------


def test_it_logs_stdout_lines_as_info_and_ends_in_success(ctx):
    result = run(Commands, ctx, commands=["echo hello", "echo world"])

    assert ctx.lines("INFO") == ["hello", "world"]
    assert ctx.lines("ERROR") == []
    assert result == {"exitCode": 0, "vars": {}}


def test_it_streams_lines_while_the_process_runs(ctx):
    seen_before_end = []

    def log(level, message):
        if level == "INFO":
            seen_before_end.append((message, (ctx.working_dir / "done").exists()))

    ctx.log = log

    run(Commands, ctx, commands=["echo first", "sleep 0.3", "touch done"])

    assert seen_before_end == [("first", False)]


def test_it_parses_outputs_lines_into_vars_without_logging_them(ctx):
    result = run(
        Commands,
        ctx,
        commands=[
            """echo '::{"outputs":{"test":"value","int":2}}::'""",
            """echo '::{"outputs":{"bool":true}}::'""",
            """echo '::{"metrics":[{"name":"count","type":"counter","value":1}]}::'""",
        ],
    )

    assert result["vars"] == {"test": "value", "int": 2, "bool": True}
    assert ctx.lines("INFO") == []


def test_metrics_lines_are_logged_at_debug(ctx):
    run(
        Commands,
        ctx,
        commands=[
            """echo '::{"metrics":[{"name":"rows","type":"counter","value":5,"tags":{"table":"users"}},'"""
            """'{"name":"load","type":"timer","value":1.5}]}::'""",
            """echo '::{"metrics":{"name":"rows"}}::'""",
        ],
    )

    assert [m for m in ctx.lines("DEBUG") if m.startswith("metric ")] == [
        'metric rows counter = 5 {"table": "users"}',
        "metric load timer = 1.5",
    ]
    assert ctx.lines("WARN") == [
        """Invalid metrics '{"metrics":{"name":"rows"}}': `metrics` must be a list of objects with a `name`"""
    ]


def test_it_warns_about_a_malformed_outputs_line_and_goes_on(ctx):
    result = run(Commands, ctx, commands=["echo '::{\"outputs\":{oops}}::'", "echo after"])

    assert result["exitCode"] == 0
    assert any(message.startswith("Invalid outputs") for message in ctx.lines("WARN"))
    assert ctx.lines("INFO") == ["after"]


def test_it_passes_env_and_working_dir_to_the_process(ctx):
    result = run(
        Commands,
        ctx,
        env={"GREETING": "hi", "PORT": 8080},
        commands=['echo "$GREETING $PORT"', 'echo "$WORKING_DIR"', "pwd"],
    )

    assert result["exitCode"] == 0
    assert ctx.lines("INFO") == ["hi 8080", str(ctx.working_dir), str(ctx.working_dir.resolve())]


# Kestra 0.21 on: stderr lines are ERROR log entries; Kestra 0.23 on: the exit code alone decides the state.


def test_stderr_lines_are_logged_at_error_and_exit_0_is_a_success(ctx):
    result = run(Commands, ctx, commands=["echo out", "echo oops >&2", "echo 'second line' >&2"])

    assert ctx.lines("ERROR") == ["oops", "second line"]
    assert ctx.lines("INFO") == ["out"]
    assert ctx.lines("WARN") == []
    assert result == {"exitCode": 0, "vars": {}}  # a plain dict: SUCCESS, not a WARNING TaskResult


def test_warning_on_stderr_false_written_out_is_a_success_too(ctx):
    result = run(Commands, ctx, warningOnStdErr=False, commands=["echo oops >&2"])

    assert ctx.lines("ERROR") == ["oops"]
    assert result == {"exitCode": 0, "vars": {}}


def test_warning_on_stderr_true_brings_back_the_warning_of_kestra_0_22(ctx):
    result = run(Script, ctx, warningOnStdErr=True, script="echo oops >&2")

    assert ctx.lines("ERROR") == ["oops"]
    assert isinstance(result, TaskResult) and result.state == State.WARNING
    assert result.outputs["exitCode"] == 0


def test_warning_on_stderr_true_without_stderr_is_a_success(ctx):
    result = run(Commands, ctx, warningOnStdErr=True, commands=["echo fine"])

    assert result == {"exitCode": 0, "vars": {}}


def test_an_outputs_line_on_stderr_is_read_not_logged(ctx):
    result = run(Commands, ctx, commands=["""echo '::{"outputs":{"via":"stderr"}}::' >&2"""])

    assert result == {"exitCode": 0, "vars": {"via": "stderr"}}
    assert ctx.lines("ERROR") == []


def test_a_non_zero_exit_fails_whatever_warning_on_stderr_says(ctx):
    with pytest.raises(PluginError, match="exit code 2"):
        run(Commands, ctx, warningOnStdErr=True, commands=["echo 'about to fail' >&2", "exit 2"])

    assert ctx.lines("ERROR") == ["about to fail"]


# ---- failures -------------------------------------------------------------------------------------


def test_a_non_zero_exit_fails_with_the_exit_code(ctx):
    with pytest.raises(PluginError) as error:
        run(Commands, ctx, commands=["""echo '::{"outputs":{"step":1}}::'""", "exit 3"])

    assert str(error.value) == "Command failed with exit code 3"
    assert error.value.outputs == {"exitCode": 3, "vars": {"step": 1}}


def test_a_failing_first_command_fails_the_task(ctx):
    with pytest.raises(PluginError, match="exit code 1"):
        run(Commands, ctx, commands=["false", "echo still here"])

    assert "still here" not in ctx.lines("INFO")


def test_without_fail_fast_the_last_command_decides(ctx):
    result = run(Commands, ctx, failFast=False, commands=["false", "echo still here"])

    assert result["exitCode"] == 0
    assert ctx.lines("INFO") == ["still here"]


def test_before_commands_run_first(ctx):
    run(Commands, ctx, beforeCommands=["echo before"], commands=["echo main"])

    assert ctx.lines("INFO") == ["before", "main"]


def test_a_missing_interpreter_fails_without_retry(ctx):
    with pytest.raises(PluginError, match="Cannot start") as error:
        run(Commands, ctx, interpreter=["/no/such/shell", "-c"], commands=["true"])

    assert error.value.retryable is False


def test_a_docker_task_runner_never_falls_back_to_a_local_process(ctx):
    engine = f"unix://{ctx.working_dir}/no-engine.sock"
    with pytest.raises(PluginError, match=f"Cannot reach the Docker engine at {engine}") as error:
        run(
            Commands,
            ctx,
            taskRunner={"type": "io.kestra.plugin.scripts.runner.docker.Docker", "host": engine},
            containerImage="ubuntu",
            commands=["touch ran"],
        )

    assert error.value.retryable is True  # the worker's engine may come back
    assert not (ctx.working_dir / "ran").exists()


def test_the_process_task_runner_runs_locally(ctx):
    result = run(Commands, ctx, taskRunner={"type": "io.kestra.plugin.core.runner.Process"}, commands=["echo ok"])

    assert result["exitCode"] == 0


# ---- timeout and kill -----------------------------------------------------------------------------


def test_a_timeout_kills_the_shell_and_its_children(ctx):
    ctx.timeout = 0.5
    started = time.monotonic()

    with pytest.raises(PluginError) as error:
        run(Commands, ctx, commands=["sleep 60 & echo $! > child.pid", "echo $$ > shell.pid", "sleep 60"])

    assert time.monotonic() - started < 2.5
    assert str(error.value) == "Timeout after PT0.5S"
    assert error.value.retryable is True
    shell, grandchild = read_pid(ctx.working_dir / "shell.pid"), read_pid(ctx.working_dir / "child.pid")
    assert wait_until(lambda: is_dead(grandchild), 2)
    assert not Path(f"/proc/{shell}").exists()  # our own child is reaped, not left a zombie


def test_should_stop_kills_the_process_group(ctx):
    stop_file = ctx.working_dir / "shell.pid"
    ctx.stop = stop_file.exists  # stop as soon as the shell is up and has children
    started = time.monotonic()

    with pytest.raises(PluginError) as error:
        run(Commands, ctx, commands=["sleep 60 & echo $! > child.pid", "echo $$ > shell.pid", "sleep 60"])

    assert time.monotonic() - started < 2.5
    assert str(error.value) == "killed"
    assert error.value.retryable is False
    assert wait_until(lambda: is_dead(read_pid(ctx.working_dir / "child.pid")), 2)


def test_children_left_running_are_stopped_when_the_shell_ends(ctx):
    started = time.monotonic()

    result = run(Commands, ctx, commands=["sleep 60 & echo $! > child.pid", "echo done"])

    assert result["exitCode"] == 0
    assert time.monotonic() - started < 2.5
    assert wait_until(lambda: is_dead(read_pid(ctx.working_dir / "child.pid")), 2)


def test_a_group_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    script = "trap '' TERM; sleep 60 & echo $! > child.pid; sleep 60"
    started = time.monotonic()

    ended = run_process(
        ["/bin/sh", "-c", script], cwd=tmp_path, env=os.environ, on_line=lambda *a: None, timeout=0.3, kill_grace=0.3
    )

    assert ended.reason != EXITED
    assert time.monotonic() - started < 2.5
    assert wait_until(lambda: is_dead(read_pid(tmp_path / "child.pid")), 2)


def test_a_chatty_process_still_times_out(tmp_path):
    started = time.monotonic()

    ended = run_process(["/bin/sh", "-c", "yes"], cwd=tmp_path, env=os.environ, on_line=lambda *a: None, timeout=0.3)

    assert ended.reason != EXITED
    assert time.monotonic() - started < 2.5


# ---- files ----------------------------------------------------------------------------------------


def test_input_files_are_written_before_the_commands_run(ctx):
    result = run(
        Commands, ctx, inputFiles={"data/in.txt": "from the flow\n", "skipped.txt": None}, commands=["cat data/in.txt"]
    )

    assert result["exitCode"] == 0
    assert ctx.lines("INFO") == ["from the flow"]
    assert not (ctx.working_dir / "skipped.txt").exists()


def test_input_files_may_be_a_json_string(ctx):
    run(Commands, ctx, inputFiles='{"a.txt": "A"}', commands=["cat a.txt"])

    assert ctx.lines("INFO") == ["A"]


def test_an_input_file_outside_the_working_dir_is_refused(ctx):
    with pytest.raises(PluginError, match="not a path inside the working directory"):
        run(Commands, ctx, inputFiles={"../escape.txt": "x"}, commands=["true"])

    assert not (ctx.working_dir.parent / "escape.txt").exists()


def test_output_files_are_matched_by_glob(ctx):
    result = run(
        Commands,
        ctx,
        outputFiles=["*.csv", "out/**"],
        commands=[
            "echo a > one.csv",
            "echo b > two.txt",
            "mkdir -p out/deep",
            "echo c > out/deep/three.json",
            "ln -s /etc/hostname out/link",
        ],
    )

    files = result["outputFiles"]
    assert sorted(files) == ["one.csv", "out/deep/three.json"]
    assert files["one.csv"].startswith("kestra:///")
    assert ctx.stored(files["one.csv"]) == "a\n" and ctx.stored(files["out/deep/three.json"]) == "c\n"


def test_an_internal_storage_uri_in_input_files_is_copied_in(ctx):
    (ctx.storage / "up").mkdir(parents=True)
    (ctx.storage / "up" / "data.csv").write_bytes(b"a,b\n1,2\n")

    run(
        Commands,
        ctx,
        inputFiles={"in/data.csv": "kestra:///up/data.csv\n", "note.txt": "kestra:///up\nnot a URI"},
        commands=["cat in/data.csv", "head -1 note.txt"],
    )

    assert ctx.lines("INFO") == ["a,b", "1,2", "kestra:///up"]


def test_a_missing_storage_file_in_input_files_fails_naming_the_file(ctx):
    with pytest.raises(PluginError) as error:
        run(Script, ctx, inputFiles={"data.csv": "kestra:///gone/data.csv"}, script="touch ran")

    assert str(error.value) == (
        "inputFiles: 'data.csv' cannot be copied from internal storage: "
        "'kestra:///gone/data.csv': no such file in the internal storage"
    )
    assert error.value.retryable is False
    assert not (ctx.working_dir / "ran").exists()


# ---- Script and Bash ------------------------------------------------------------------------------


def test_script_runs_a_multi_line_script(ctx):
    result = run(
        Script,
        ctx,
        beforeCommands=["echo setup"],
        outputFiles=["*"],
        script="""
for i in 1 2 3; do
  echo "line $i"
done
echo '::{"outputs":{"count":3}}::'
""",
    )

    assert ctx.lines("INFO") == ["setup", "line 1", "line 2", "line 3"]
    assert result["vars"] == {"count": 3}
    assert result["outputFiles"] == {}  # the script file itself is gone


def test_script_stops_at_a_failing_line(ctx):
    with pytest.raises(PluginError, match="exit code 1"):
        run(Script, ctx, script="false\necho unreachable\n")

    assert ctx.lines("INFO") == []


def test_bash_runs_seed_era_flows(ctx):
    result = run(Bash, ctx, commands=["echo $0", 'echo \'::{"outputs":{"ok":true}}::\''])

    assert ctx.lines("INFO") == ["/bin/sh"]
    assert result["vars"] == {"ok": True}


def test_bash_stderr_is_logged_at_error_and_exit_0_is_a_success(ctx):
    result = run(Bash, ctx, commands=["echo oops >&2"])

    assert ctx.lines("ERROR") == ["oops"]
    assert result == {"exitCode": 0, "vars": {}}


def test_bash_still_accepts_warning_on_stderr(ctx):
    result = run(Bash, ctx, warningOnStdErr=True, commands=["echo oops >&2"])

    assert isinstance(result, TaskResult) and result.state == State.WARNING
    assert Bash.Properties.model_validate({"commands": ["true"]}).warningOnStdErr is False


def test_bash_exit_on_failed_stops_at_the_first_failure(ctx):
    with pytest.raises(PluginError, match="exit code 1"):
        run(Bash, ctx, commands=["false", "echo unreachable"])

    result = run(Bash, ctx, exitOnFailed=False, commands=["false", "echo reached"])
    assert result["exitCode"] == 0


def test_bash_reads_every_old_output_files_name(ctx):
    result = run(
        Bash,
        ctx,
        outputFiles=["a.txt"],
        outputsFiles=["b.txt"],
        files=["c.txt"],
        commands=["touch a.txt b.txt c.txt d.txt"],
    )

    assert sorted(result["outputFiles"]) == ["a.txt", "b.txt", "c.txt"]


def test_bash_docker_runner_needs_an_image(ctx):
    with pytest.raises(PluginError, match="dockerOptions.image is required with runner: DOCKER"):
        run(Bash, ctx, runner="DOCKER", commands=["touch ran"])

    assert not (ctx.working_dir / "ran").exists()


# ---- properties -----------------------------------------------------------------------------------


def test_commands_are_required():
    with pytest.raises(ValidationError):
        Commands.Properties.model_validate({})
    with pytest.raises(ValidationError):
        Commands.Properties.model_validate({"commands": []})
    with pytest.raises(ValidationError):
        Bash.Properties.model_validate({})


def test_a_script_is_required():
    with pytest.raises(ValidationError):
        Script.Properties.model_validate({"beforeCommands": ["true"]})


def test_kestra_runner_properties_are_accepted():
    props = Commands.Properties.model_validate(
        {
            "commands": ["echo"],
            "containerImage": "ubuntu",
            "taskRunner": {"type": "io.kestra.plugin.core.runner.Process"},
            "docker": {"image": "ubuntu"},
            "runner": "PROCESS",
            "targetOS": "LINUX",
            "namespaceFiles": {"enabled": False},
        }
    )

    assert props.interpreter == ["/bin/sh", "-c"]
    assert props.warningOnStdErr is False  # Kestra 0.23 on: stderr alone never makes a WARNING


def test_unknown_properties_are_refused():
    with pytest.raises(ValidationError):
        Commands.Properties.model_validate({"commands": ["echo"], "comands": ["typo"]})


def test_the_heart_stays_free_of_django():
    code = "import sys, plugins_app.core.shell; assert 'django' not in sys.modules and 'celery' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_a_failing_log_call_still_stops_the_process(ctx):
    def log(level, message):
        if message == "go":
            raise RuntimeError("log store down")

    ctx.log = log
    started = time.monotonic()

    with pytest.raises(RuntimeError, match="log store down"):
        run(Commands, ctx, commands=["echo $$ > shell.pid", "echo go", "sleep 60"])

    assert time.monotonic() - started < 2.5
    assert not Path(f"/proc/{read_pid(ctx.working_dir / 'shell.pid')}").exists()
