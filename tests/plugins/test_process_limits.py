"""Script processes run under the memory and CPU-time limits: going past one fails the task and names it, the worker lives on."""

from __future__ import annotations

import os
import resource
import shutil
import sys

import pytest

from plugins_app.base import PluginError
from plugins_app.core.process import EXITED, Limits, run_process
from plugins_app.core.shell import Commands
from tests.plugins.test_shell import FakeContext, run

ALLOCATE_6_GB = f"{sys.executable} -c 'b = bytearray(6 * 1024**3)'"
SPIN = f"{sys.executable} -c 'while True: pass'"


@pytest.fixture
def ctx(tmp_path) -> FakeContext:
    (tmp_path / "work").mkdir()
    return FakeContext(working_dir=tmp_path / "work", storage=tmp_path / "storage", timeout=30)


@pytest.fixture
def limits(settings):
    """Set the script limits for one test: limits(memory_mb=…, cpu_seconds=…)."""

    def set_limits(*, memory_mb: int = 4096, cpu_seconds: int = 0) -> None:
        settings.TERN = {**settings.TERN, "SCRIPT_MEMORY_MB": memory_mb, "SCRIPT_CPU_SECONDS": cpu_seconds}

    return set_limits


def test_a_script_over_its_cpu_time_fails_naming_the_cpu_limit(ctx, limits):
    limits(cpu_seconds=1)

    with pytest.raises(PluginError) as error:
        run(Commands, ctx, commands=[SPIN])

    assert str(error.value).endswith("the script used more than its 1 s of CPU time (TERN_SCRIPT_CPU_SECONDS)")


def test_a_script_that_ignores_sigxcpu_is_still_stopped_and_named(ctx, limits):
    limits(cpu_seconds=1)
    ignore_sigxcpu = "import signal; signal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True: pass"

    with pytest.raises(PluginError, match=r"more than its 1 s of CPU time \(TERN_SCRIPT_CPU_SECONDS\)"):
        run(Commands, ctx, interpreter=[sys.executable, "-c"], failFast=False, commands=[ignore_sigxcpu])


def test_a_script_allocating_past_the_memory_limit_fails_naming_it_and_the_worker_lives_on(ctx, limits):
    limits(memory_mb=4096)

    with pytest.raises(PluginError) as error:
        run(Commands, ctx, commands=[ALLOCATE_6_GB])

    assert str(error.value) == (
        "Command failed with exit code 1: the script ran out of its 4096 MB of memory (TERN_SCRIPT_MEMORY_MB)"
    )
    assert any("MemoryError" in line for line in ctx.lines("ERROR"))  # the script's, not this process's


def test_a_script_growing_step_by_step_runs_out_of_memory_too(ctx, limits):
    limits(memory_mb=200)
    grow = "chunks = []\nwhile True: chunks.append(bytearray(10 * 1024**2))"

    with pytest.raises(PluginError, match=r"ran out of its 200 MB of memory \(TERN_SCRIPT_MEMORY_MB\)"):
        run(Commands, ctx, interpreter=[sys.executable, "-c"], failFast=False, commands=[grow])


def test_normal_scripts_run_under_the_default_limits(ctx, limits):
    limits()
    commands = [f"{sys.executable} -c 'print(sum(range(10)))'", "python3 -c 1", "sh -c 'echo shell'"]
    if shutil.which("node"):
        commands.append("node -e 'console.log(1 + 1)'")

    result = run(Commands, ctx, commands=commands)

    assert result["exitCode"] == 0
    assert ctx.lines("INFO") == ["45", "shell", *(["2"] if shutil.which("node") else [])]


def test_zero_means_no_limit(ctx, limits):
    limits(memory_mb=0, cpu_seconds=0)

    result = run(Commands, ctx, commands=["ulimit -d", "ulimit -t"])

    assert ctx.lines("INFO") == [_shown(resource.RLIMIT_DATA, 1024), _shown(resource.RLIMIT_CPU, 1)]  # the worker's
    assert result["exitCode"] == 0


def test_the_limits_are_set_in_the_script_process(ctx, limits):
    limits(memory_mb=100, cpu_seconds=7)

    run(Commands, ctx, commands=["ulimit -d", "ulimit -t", "ulimit -Ht"])

    assert ctx.lines("INFO") == [str(100 * 1024), "7", "8"]


def test_a_failure_under_the_limits_is_an_ordinary_exit_code(ctx, limits):
    limits(memory_mb=100, cpu_seconds=5)

    with pytest.raises(PluginError) as error:
        run(Commands, ctx, commands=["echo 'something went wrong' >&2", "exit 3"])

    assert str(error.value) == "Command failed with exit code 3"


def test_a_missing_program_still_cannot_start_under_limits(ctx, limits):
    limits(memory_mb=100)

    with pytest.raises(PluginError, match="Cannot start '/no/such/shell'") as error:
        run(Commands, ctx, interpreter=["/no/such/shell", "-c"], commands=["true"])

    assert error.value.retryable is False


def test_run_process_takes_explicit_limits(tmp_path):
    lines: list[str] = []

    ended = run_process(
        ["sh", "-c", "ulimit -t"],
        cwd=tmp_path,
        env=os.environ,
        on_line=lambda line, is_stderr: lines.append(line),
        limits=Limits(cpu_seconds=3),
    )

    assert (ended.reason, ended.exit_code, ended.over_limit) == (EXITED, 0, "")
    assert lines == ["3"]


def _shown(which: int, unit: int) -> str:
    """The worker's own soft limit as `ulimit` prints it."""
    soft = resource.getrlimit(which)[0]
    return "unlimited" if soft == resource.RLIM_INFINITY else str(soft // unit)
