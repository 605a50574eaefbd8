"""Script tasks in Docker containers, on a real engine: output, outputs, failures, files, limits, timeouts and kills.

The engine is DOCKER_HOST's (or the default socket's); `compose/test-docker-engine.sh start DIR` starts one.
Without an engine these tests are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import textwrap
import time
from pathlib import Path

import pytest

from flows_app.models import LogEntry
from flows_app.services.storage import storage
from plugins_app.base import PluginError
from plugins_app.core.docker_runner import LABEL, DockerOptions, run_in_container
from plugins_app.core.process import EXITED, STOPPED
from plugins_app.core.shell import Commands
from plugins_app.core.sizes import parse_bytes

IMAGE = "tern-test/busybox:latest"
APPLETS = (
    "sh",
    "echo",
    "cat",
    "ls",
    "sleep",
    "mkdir",
    "env",
    "printf",
    "pwd",
    "touch",
    "id",
    "test",
    "true",
    "false",
    "rm",
    "head",
    "wc",
)
DOCKER = "io.kestra.plugin.scripts.runner.docker.Docker"
RUNNER = f"""
    containerImage: {IMAGE}
    taskRunner:
      type: {DOCKER}
      pullPolicy: NEVER
      networkMode: none"""


@pytest.fixture(scope="session")
def engine():
    """A client of the test engine, with the busybox test image on it (imported from /bin/busybox if absent)."""
    docker = pytest.importorskip("docker")
    address = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.DockerClient(base_url=address, timeout=30)
        client.ping()
    except docker.errors.DockerException as exc:
        message = f"no Docker engine reachable at {address} ({exc}): see README, Docker runner"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        client.api.import_image_from_data(_busybox_rootfs(), repository=IMAGE.split(":")[0], tag="latest")
    yield client
    client.close()


def _busybox_rootfs() -> bytes:
    """A root filesystem of one static busybox and its applets' links: an image without a registry."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in ("bin", "tmp", "etc"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def own_storage(settings, tmp_path):
    settings.TERN = {**settings.TERN, "STORAGE_DIR": tmp_path / "storage"}


def write_flow(tmp_path: Path, tasks: str, flow_id: str = "docker") -> Path:
    path = tmp_path / f"{flow_id}.yml"
    path.write_text(f"id: {flow_id}\nnamespace: tests.docker\ntasks:\n{textwrap.dedent(tasks).strip(chr(10))}\n")
    return path


def only_run(outcome):
    [run] = outcome.summary["taskRuns"]
    return run


def messages(outcome, level=None):
    logs = LogEntry.objects.filter(execution_id=outcome.execution.id).order_by("id")
    return [entry.message for entry in logs if level is None or entry.level == level]


def containers_of(engine, task_run_id: str) -> list:
    return engine.containers.list(all=True, filters={"label": f"{LABEL}={task_run_id}"})


def wait_until(condition, seconds: float) -> bool:
    give_up = time.monotonic() + seconds
    while time.monotonic() < give_up:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# ---- through the real services (run_flow brings the database) -------------------------------------


def test_commands_run_in_a_container_log_lines_and_set_outputs(engine, run_flow, tmp_path):
    outcome = run_flow(
        write_flow(
            tmp_path,
            f"""
  - id: hello
    type: io.kestra.plugin.scripts.shell.Commands{RUNNER}
    commands:
      - echo "hello from $(cat /proc/1/cmdline | head -c 7)"
      - test "$(pwd)" = "$WORKING_DIR"
      - echo '::{{"outputs":{{"answer":42,"where":"container"}}}}::'
""",
        )
    )

    run = only_run(outcome)
    assert outcome.execution.state == "SUCCESS", messages(outcome)
    assert run["outputs"] == {"exitCode": 0, "vars": {"answer": 42, "where": "container"}}
    assert "hello from /bin/sh" in messages(outcome, "INFO")
    assert containers_of(engine, run["id"]) == []  # removed at the end


def test_container_stderr_is_logged_at_error_and_exit_0_is_a_success(engine, run_flow, tmp_path):
    outcome = run_flow(
        write_flow(
            tmp_path,
            f"""
  - id: noisy
    type: io.kestra.plugin.scripts.shell.Commands{RUNNER}
    commands:
      - echo out
      - echo oops >&2
  - id: old-style
    type: io.kestra.plugin.scripts.shell.Commands{RUNNER}
    warningOnStdErr: true
    commands:
      - echo again >&2
""",
        )
    )

    runs = {r["taskId"]: r for r in outcome.summary["taskRuns"]}
    assert runs["noisy"]["state"] == "SUCCESS", messages(outcome)  # Kestra 0.23 on: the exit code decides
    assert runs["old-style"]["state"] == "WARNING"  # the deprecated warningOnStdErr: true, written out
    assert {"oops", "again"} <= set(messages(outcome, "ERROR"))
    assert "oops" not in messages(outcome, "INFO") and "oops" not in messages(outcome, "WARN")
    assert "out" in messages(outcome, "INFO")


def test_a_non_zero_exit_fails_the_task_with_its_exit_code(engine, run_flow, tmp_path):
    outcome = run_flow(
        write_flow(
            tmp_path,
            f"""
  - id: broken
    type: io.kestra.plugin.scripts.shell.Commands{RUNNER}
    commands:
      - echo before
      - exit 3
      - echo after
""",
        )
    )

    run = only_run(outcome)
    assert run["state"] == "FAILED" and run["outputs"]["exitCode"] == 3
    assert "Command failed with exit code 3" in messages(outcome, "ERROR")
    assert "before" in messages(outcome, "INFO") and "after" not in messages(outcome, "INFO")


def test_input_files_env_and_output_files_cross_the_container_boundary(engine, run_flow, tmp_path):
    outcome = run_flow(
        write_flow(
            tmp_path,
            f"""
  - id: files
    type: io.kestra.plugin.scripts.shell.Commands{RUNNER}
    env:
      GREETING: hi
      PORT: 8080
    inputFiles:
      data/in.txt: "from the flow\\n"
    outputFiles:
      - "*.txt"
      - "out/**"
    commands:
      - cat data/in.txt
      - echo "$GREETING $PORT"
      - echo "$GREETING" > greeting.txt
      - mkdir -p out/deep && echo deep > out/deep/result.json
""",
        )
    )

    run = only_run(outcome)
    assert run["state"] == "SUCCESS", messages(outcome)
    assert messages(outcome, "INFO")[-2:] == ["from the flow", "hi 8080"]
    files = run["outputs"]["outputFiles"]  # found on the worker's side of the mount, then stored
    assert sorted(files) == ["greeting.txt", "out/deep/result.json"]
    assert storage().read(files["greeting.txt"]) == "hi\n" and storage().read(files["out/deep/result.json"]) == "deep\n"


def test_output_files_of_one_container_are_input_files_of_the_next(engine, run_flow, tmp_path):
    outcome = run_flow(
        write_flow(
            tmp_path,
            f"""
  - id: a
    type: io.kestra.plugin.scripts.shell.Commands{RUNNER}
    outputFiles: ["x.txt"]
    commands:
      - echo "made in a container" > x.txt
  - id: b
    type: io.kestra.plugin.scripts.shell.Script{RUNNER}
    inputFiles:
      x.txt: "{{{{ outputs.a.outputFiles['x.txt'] }}}}"
    script: |
      echo "read {{{{ read(outputs.a.outputFiles['x.txt']) | trim }}}}"
      echo "cat $(cat x.txt)"
""",
        )
    )

    assert outcome.execution.state == "SUCCESS", messages(outcome)
    runs = {r["taskId"]: r for r in outcome.summary["taskRuns"]}
    assert runs["a"]["outputs"]["outputFiles"]["x.txt"].startswith("kestra:///")
    assert messages(outcome, "INFO")[-2:] == ["read made in a container", "cat made in a container"]


def test_the_worker_environment_stays_out_of_the_container(engine, run_flow, tmp_path, monkeypatch):
    monkeypatch.setenv("TERN_WORKER_SECRET", "do-not-leak")
    outcome = run_flow(
        write_flow(
            tmp_path,
            f"""
  - id: env
    type: io.kestra.plugin.scripts.shell.Commands{RUNNER}
    commands:
      - echo "secret=${{TERN_WORKER_SECRET:-none}}"
""",
        )
    )

    assert "secret=none" in messages(outcome, "INFO")


def test_a_timeout_kills_the_container_and_removes_it(engine, run_flow, tmp_path):
    started = time.monotonic()
    outcome = run_flow(
        write_flow(
            tmp_path,
            f"""
  - id: slow
    type: io.kestra.plugin.scripts.shell.Commands{RUNNER}
    timeout: PT1S
    commands:
      - sleep 60
""",
        )
    )

    run = only_run(outcome)
    assert run["state"] == "FAILED"
    assert time.monotonic() - started < 20
    [error] = messages(outcome, "ERROR")
    assert (
        error.startswith("Timeout after PT") and error != "Timeout after PT0S"
    )  # about 1s: what was left at the start
    assert containers_of(engine, run["id"]) == []


def test_pull_policy_never_with_a_missing_image_fails_clearly(engine, run_flow, tmp_path):
    outcome = run_flow(
        write_flow(
            tmp_path,
            f"""
  - id: missing
    type: io.kestra.plugin.scripts.shell.Commands
    containerImage: tern-test/not-there:1.0
    taskRunner:
      type: {DOCKER}
      pullPolicy: NEVER
    commands:
      - "true"
""",
        )
    )

    assert only_run(outcome)["state"] == "FAILED"
    assert messages(outcome, "ERROR") == [
        "image 'tern-test/not-there:1.0' is not on the Docker engine and pullPolicy is NEVER"
    ]


def test_a_bad_image_name_is_a_clear_error(engine, run_flow, tmp_path):
    outcome = run_flow(
        write_flow(
            tmp_path,
            f"""
  - id: bad
    type: io.kestra.plugin.scripts.shell.Commands
    containerImage: "Not An Image!"
    taskRunner:
      type: {DOCKER}
    commands:
      - "true"
""",
        )
    )

    [error] = messages(outcome, "ERROR")
    assert error.startswith("image 'Not An Image!': ") and "invalid reference format" in error


def test_python_tasks_default_to_kestras_python_image(engine, run_flow, tmp_path):
    outcome = run_flow(
        write_flow(
            tmp_path,
            f"""
  - id: py
    type: io.kestra.plugin.scripts.python.Script
    taskRunner:
      type: {DOCKER}
      pullPolicy: NEVER
    script: print("never runs here")
""",
        )
    )

    assert messages(outcome, "ERROR") == ["image 'python' is not on the Docker engine and pullPolicy is NEVER"]


def test_memory_and_cpu_limits_are_applied_and_delete_false_keeps_the_container(engine, run_flow, tmp_path):
    outcome = run_flow(
        write_flow(
            tmp_path,
            f"""
  - id: limited
    type: io.kestra.plugin.scripts.shell.Commands{RUNNER}
      memory:
        memory: 64MB
      cpu:
        cpus: 0.5
      delete: false
      shmSize: 1MB
    commands:
      - echo limited
""",
        )
    )

    run = only_run(outcome)
    assert run["state"] == "SUCCESS", messages(outcome)
    assert any("shmSize not supported" in m for m in messages(outcome, "WARN"))
    [container] = containers_of(engine, run["id"])
    try:
        host_config = container.attrs["HostConfig"]
        assert host_config["Memory"] == 64 * 1024 * 1024
        assert host_config["NanoCpus"] == 500_000_000
        assert host_config["NetworkMode"] == "none"
    finally:
        container.remove(force=True)


def test_the_deprecated_runner_docker_form_and_bash_docker_options_run_in_containers(engine, run_flow, tmp_path):
    outcome = run_flow(
        write_flow(
            tmp_path,
            f"""
  - id: old
    type: io.kestra.plugin.scripts.shell.Commands
    runner: DOCKER
    docker:
      image: {IMAGE}
      pullPolicy: NEVER
      networkMode: none
    commands:
      - echo "old $WORKING_DIR"
  - id: bash
    type: io.kestra.core.tasks.scripts.Bash
    runner: DOCKER
    dockerOptions:
      image: {IMAGE}
      pullPolicy: IF_NOT_PRESENT
      networkMode: none
    commands:
      - echo '::{{"outputs":{{"shell":"'$0'"}}}}::'
      - ls /bin/busybox
""",
        )
    )

    runs = {r["taskId"]: r for r in outcome.summary["taskRuns"]}
    assert outcome.execution.state == "SUCCESS", messages(outcome)
    assert any(m.startswith("old /") for m in messages(outcome, "INFO"))
    assert runs["bash"]["outputs"]["vars"] == {"shell": "/bin/sh"}
    assert "/bin/busybox" in messages(outcome, "INFO")  # busybox's own ls: the image's file system


def test_an_unreachable_engine_is_a_clear_retryable_error(run_flow, tmp_path):
    outcome = run_flow(
        write_flow(
            tmp_path,
            f"""
  - id: nowhere
    type: io.kestra.plugin.scripts.shell.Commands
    containerImage: {IMAGE}
    taskRunner:
      type: {DOCKER}
      host: unix://{tmp_path}/no-engine.sock
    commands:
      - "true"
""",
        )
    )

    assert only_run(outcome)["state"] == "FAILED"
    [error] = messages(outcome, "ERROR")
    assert error.startswith(f"Cannot reach the Docker engine at unix://{tmp_path}/no-engine.sock")
    assert "DOCKER_HOST" in error and "Traceback" not in error


# ---- the runner itself, on the engine ---------------------------------------------------------------


def test_should_stop_kills_the_container(engine, tmp_path):
    started = tmp_path / "started"
    lines = []
    began = time.monotonic()

    ended = run_in_container(
        ["/bin/sh", "-c", "touch started; echo up; sleep 60"],
        DockerOptions(IMAGE, "NEVER", network_mode="none"),
        workdir=tmp_path,
        env={},
        labels={LABEL: "stop-test"},
        on_line=lambda line, err: lines.append(line),
        log=lambda level, message: None,
        should_stop=started.exists,
    )

    assert ended.reason == STOPPED
    assert time.monotonic() - began < 15
    assert lines == ["up"]
    assert wait_until(lambda: containers_of(engine, "stop-test") == [], 10)


def test_lines_are_split_across_chunks_and_a_last_line_without_newline_is_kept(engine, tmp_path):
    lines = []

    ended = run_in_container(
        ["/bin/sh", "-c", "printf 'a\\nb'; sleep 0.2; printf 'c\\nd'; printf 'e' >&2"],
        DockerOptions(IMAGE, "NEVER", network_mode="none"),
        workdir=tmp_path,
        env={},
        labels={LABEL: "split-test"},
        on_line=lambda line, err: lines.append((line, err)),
        log=lambda level, message: None,
    )

    assert (ended.reason, ended.exit_code) == (EXITED, 0)
    assert [line for line, err in lines if not err] == ["a", "bc", "d"]  # stdout and stderr are separate streams:
    assert [line for line, err in lines if err] == ["e"]  # only the order within each is known


def test_a_bad_volume_spec_is_a_clear_error_before_anything_runs(tmp_path):
    with pytest.raises(PluginError, match=r"taskRunner.volumes\[0\]: 'nonsense' is not 'host:container"):
        Commands().run(
            Commands.Properties.model_validate(
                {"commands": ["true"], "containerImage": IMAGE, "taskRunner": {"type": DOCKER, "volumes": ["nonsense"]}}
            ),
            _Ctx(tmp_path),
        )


# ---- no engine needed -------------------------------------------------------------------------------


class _Ctx:
    task_id, task_run_id, execution_id, attempt, timeout = "t", "r", "e", 1, None

    def __init__(self, working_dir):
        self.working_dir = working_dir
        self.logs = []

    def render(self, value):
        return value

    def log(self, level, message):
        self.logs.append((level, message))

    def should_stop(self):
        return False


def test_a_bad_memory_spec_is_a_clear_error_naming_the_property(tmp_path):
    ctx = _Ctx(tmp_path)
    with pytest.raises(PluginError) as error:
        Commands().run(
            Commands.Properties.model_validate(
                {
                    "commands": ["touch ran"],
                    "containerImage": IMAGE,
                    "taskRunner": {"type": DOCKER, "memory": {"memory": "lots"}},
                }
            ),
            ctx,
        )

    assert str(error.value) == "taskRunner.memory.memory: 'lots' is not a size such as 512MB, 1GB or 512Mi"
    assert error.value.retryable is False
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize(
    "text, size",
    [
        ("512MB", 512 * 2**20),
        ("512Mb", 512 * 2**20),
        ("512mi", 512 * 2**20),
        ("1GB", 2**30),
        ("0.5GB", 2**29),
        ("6m", 6 * 2**20),
        ("1024", 1024),
        (2048, 2048),
        ("64 KiB", 64 * 1024),
    ],
)
def test_memory_sizes_are_read_as_kestra_and_docker_write_them(text, size):
    assert parse_bytes(text, "memory") == size


@pytest.mark.parametrize("text", ["", "MB", "-1MB", "12XB", "0", "1.5.2GB", True, "i"])
def test_bad_memory_sizes_are_refused(text):
    with pytest.raises(PluginError, match="memory"):
        parse_bytes(text, "memory")


def test_other_task_runners_fail_instead_of_running_locally(tmp_path):
    with pytest.raises(
        PluginError, match="task runner 'io.kestra.plugin.ee.kubernetes.runner.Kubernetes' is not available"
    ):
        Commands().run(
            Commands.Properties.model_validate(
                {"commands": ["touch ran"], "taskRunner": {"type": "io.kestra.plugin.ee.kubernetes.runner.Kubernetes"}}
            ),
            _Ctx(tmp_path),
        )

    assert not (tmp_path / "ran").exists()


def test_volumes_are_refused_unless_the_worker_turns_them_on(tmp_path, monkeypatch):
    from plugins_app.core.docker_runner import docker_options

    raw = {"type": DOCKER, "volumes": ["/srv/data:/data:ro"]}
    monkeypatch.delenv("TERN_DOCKER_VOLUMES", raising=False)
    with pytest.raises(
        PluginError,
        match=r"taskRunner.volumes: volumes are turned off on this worker; "
        r"TERN_DOCKER_VOLUMES=true turns them on",
    ):
        docker_options(raw, image=IMAGE, where="taskRunner", warn=lambda message: None)
    monkeypatch.setenv("TERN_DOCKER_VOLUMES", "true")
    assert docker_options(raw, image=IMAGE, where="taskRunner", warn=lambda message: None).volumes == (
        "/srv/data:/data:ro",
    )
