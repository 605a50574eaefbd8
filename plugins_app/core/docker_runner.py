"""Run one command in a Docker container, the task's working directory bind-mounted at its own path, handing its output lines to the caller as they come, as the process runner does."""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.env import env_bool
from plugins_app.base import PluginError

from .process import EXITED, STOPPED, TIMED_OUT, Ended, LineHandler
from .sizes import parse_bytes

DOCKER_RUNNER = "io.kestra.plugin.scripts.runner.docker.Docker"
DOCKER_RUNNER_NAMES = (
    DOCKER_RUNNER,
    "io.kestra.plugin.scripts.runner.docker.DockerTaskRunner",
)  # the second: 0.16's beta name
LABEL = "tern.task-run"  # every container we start carries the task run's id, to find leftovers
VOLUMES_SETTING = "TERN_DOCKER_VOLUMES"
PULL_POLICIES = ("IF_NOT_PRESENT", "ALWAYS", "NEVER")
DEFAULT_SOCKET = "unix:///var/run/docker.sock"

POLL_SECONDS = 0.1  # how often the deadline and `should_stop` are checked
API_TIMEOUT_SECONDS = 60  # for each call to the engine; the output stream has none (a task may be silent for hours)
READER_JOIN_SECONDS = 2.0  # how long to wait for the output stream to end once the container is gone
QUEUED_LINES = 1000

# Properties of Kestra's Docker runner (and of the deprecated `docker` / `dockerOptions`) that Tern accepts
# and does not apply: a flow written for Kestra still runs, and the log says what was left out.
IGNORED = (
    "config",
    "credentials",
    "deviceRequests",
    "extraHosts",
    "fileHandlingStrategy",
    "killContainerOnStop",
    "portBindings",
    "privileged",
    "resume",
    "shmSize",
    "wait",
    "version",
    "tag",
)


@dataclass(frozen=True)
class DockerOptions:
    """A checked Docker runner: what `run_in_container` needs, in the SDK's units."""

    image: str
    pull_policy: str = "IF_NOT_PRESENT"
    volumes: tuple[str, ...] = ()
    nano_cpus: int | None = None
    mem_limit: int | None = None
    network_mode: str | None = None  # None: the engine's default network
    user: str | None = None
    entrypoint: tuple[str, ...] = ("",)  # Kestra's default: the image's entrypoint is cleared, our argv runs as is
    host: str | None = None
    delete: bool = True


# ---- checking the flow's options ----------------------------------------------------------------


def docker_options(
    raw: Mapping[str, Any] | None, *, image: str | None, where: str, warn: Callable[[str], None]
) -> DockerOptions:
    """Check a `taskRunner`, `docker` or `dockerOptions` map (`where` names it in errors) into DockerOptions.

    `image` is the task's containerImage (or its default); an `image` key in the map wins (the deprecated forms).
    """
    options = {k: v for k, v in (raw or {}).items() if k != "type"}
    image = _text(options.pop("image", None), f"{where}.image") or image
    if not image:
        raise PluginError(
            f"{where}: the Docker runner needs an image: set the task's `containerImage`", retryable=False
        )
    pull_policy = str(options.pop("pullPolicy", None) or "IF_NOT_PRESENT").upper()
    if pull_policy not in PULL_POLICIES:
        raise PluginError(
            f"{where}.pullPolicy: '{pull_policy}' is not one of {', '.join(PULL_POLICIES)}", retryable=False
        )
    checked = DockerOptions(
        image=image,
        pull_policy=pull_policy,
        volumes=_volumes(options.pop("volumes", None), f"{where}.volumes"),
        nano_cpus=_cpus(options.pop("cpu", None), f"{where}.cpu", warn),
        mem_limit=_memory(options.pop("memory", None), f"{where}.memory", warn),
        network_mode=_text(options.pop("networkMode", None), f"{where}.networkMode"),
        user=_text(options.pop("user", None), f"{where}.user"),
        entrypoint=_entrypoint(options.pop("entryPoint", None), f"{where}.entryPoint"),
        host=_text(options.pop("host", None), f"{where}.host"),
        delete=_flag(options.pop("delete", True), f"{where}.delete"),
    )
    known = [k for k in options if k in IGNORED]
    unknown = [k for k in options if k not in IGNORED]
    if known:
        warn(f"{where}: {', '.join(sorted(known))} not supported by Tern's Docker runner: ignored")
    if unknown:
        warn(f"{where}: unknown Docker runner properties ignored: {', '.join(sorted(unknown))}")
    return checked


def _text(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, (dict, list, bool)):
        raise PluginError(f"{name}: expected a string, got {value!r}", retryable=False)
    return str(value)


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise PluginError(f"{name}: expected true or false, got {value!r}", retryable=False)


def _volumes(value: Any, name: str) -> tuple[str, ...]:
    """`/host/path:/container/path[:ro]` (or a named volume as the source), as `docker run -v` takes them."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PluginError(f"{name}: expected a list of 'host:container' strings", retryable=False)
    for i, spec in enumerate(value):
        parts = spec.split(":") if isinstance(spec, str) else []
        if not 2 <= len(parts) <= 3 or not parts[0] or not parts[1].startswith("/"):
            raise PluginError(
                f"{name}[{i}]: '{spec}' is not 'host:container[:mode]' with an absolute container path", retryable=False
            )
    # A flow that mounts host paths can read and write the worker's machine as root: off unless the
    # worker's operator turns it on, as Kestra's `volume-enabled`.
    if value and not env_bool(VOLUMES_SETTING, False):
        raise PluginError(
            f"{name}: volumes are turned off on this worker; {VOLUMES_SETTING}=true turns them on "
            "(a container then reaches the host paths it names)",
            retryable=False,
        )
    return tuple(value)


def _entrypoint(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ("",)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PluginError(f"{name}: expected a list of strings", retryable=False)
    return tuple(value) or ("",)


def _cpus(value: Any, name: str, warn: Callable[[str], None]) -> int | None:
    """Kestra's `cpu: {cpus: 1.5}` -> Docker's nano-CPUs."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise PluginError(f"{name}: expected a map such as {{cpus: 1.5}}", retryable=False)
    extra = sorted(set(value) - {"cpus"})
    if extra:
        warn(f"{name}: {', '.join(extra)} not supported by Tern's Docker runner: ignored")
    if value.get("cpus") is None:
        return None
    try:
        cpus = float(value["cpus"])
    except (TypeError, ValueError):
        cpus = math.nan
    if not math.isfinite(cpus) or cpus <= 0:
        raise PluginError(f"{name}.cpus: '{value['cpus']}' is not a positive number of CPUs", retryable=False)
    return int(cpus * 1e9)


def _memory(value: Any, name: str, warn: Callable[[str], None]) -> int | None:
    """Kestra's `memory: {memory: "512MB"}` -> bytes."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise PluginError(f'{name}: expected a map such as {{memory: "512MB"}}', retryable=False)
    extra = sorted(set(value) - {"memory"})
    if extra:
        warn(f"{name}: {', '.join(extra)} not supported by Tern's Docker runner: ignored")
    if value.get("memory") is None:
        return None
    return parse_bytes(value["memory"], f"{name}.memory")


# ---- running ------------------------------------------------------------------------------------


def run_in_container(
    argv: Sequence[str],
    options: DockerOptions,
    *,
    workdir: Path,
    env: Mapping[str, str],
    labels: Mapping[str, str],
    on_line: LineHandler,
    log: Callable[[str, str], None],
    timeout: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Ended:
    """1. connect; 2. get the image as the pull policy says; 3. create the container and attach to its output;
    4. start it and hand over its lines until it ends, the deadline passes or `should_stop`; 5. kill it if it
    still runs, and remove it (unless `delete` is false). `on_line` is called on this thread only."""
    import docker  # imported here: a worker that never runs a container does not need the SDK loaded
    import requests

    deadline = None if timeout is None else time.monotonic() + timeout
    client, streams = _connect(options.host)
    container = None
    try:
        _ensure_image(client, options, log)
        log("DEBUG", f"Starting {argv[0]} in a container of {options.image} (engine {_address(options.host)})")
        container = _create(client, argv, options, workdir, env, labels)
        output = streams.api.attach(container.id, stdout=True, stderr=True, stream=True, logs=True, demux=True)
        lines: queue.Queue[tuple[str, bool] | None] = queue.Queue(maxsize=QUEUED_LINES)
        reader = threading.Thread(target=_read, args=(output, lines), name="tern-docker-output", daemon=True)
        reader.start()
        _start(container, options)
        handler = on_line
        try:
            reason = _wait(reader, lines, on_line, deadline, should_stop)
            if reason != EXITED:
                _kill(container)
            code = _exit_code(container)
        except BaseException:
            handler = _ignore  # the caller is failing: only empty the queue so the reader can end
            _kill(container)
            raise
        finally:
            _finish_reading(reader, lines, handler)
        return Ended(reason, code)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        # the engine failed us mid-way (our own PluginErrors pass through): another attempt may do better
        raise PluginError(f"Docker engine error ({_address(options.host)}): {_explain(exc)}", retryable=True) from None
    finally:
        if container is not None and options.delete:
            _remove(container)
        client.close()
        streams.close()


def _connect(host: str | None):
    """Two clients: one for calls, with a timeout; one for the output stream, without (a quiet task is no
    dead engine). `host`, else DOCKER_HOST and the other DOCKER_* variables, as the docker CLI reads them."""
    import docker

    try:
        if host:
            client = docker.DockerClient(base_url=host, timeout=API_TIMEOUT_SECONDS)
            streams = docker.DockerClient(base_url=host, timeout=None, version=client.api.api_version)
        else:
            client = docker.from_env(timeout=API_TIMEOUT_SECONDS)
            streams = docker.from_env(timeout=None, version=client.api.api_version)
    except docker.errors.DockerException as exc:
        raise PluginError(
            f"Cannot reach the Docker engine at {_address(host)}: {_explain(exc)}. Start the engine, or point the "
            "task runner's `host` (or the worker's DOCKER_HOST) at a running one",
            retryable=True,
        ) from None
    return client, streams


def _address(host: str | None) -> str:
    return host or os.environ.get("DOCKER_HOST") or f"{DEFAULT_SOCKET} (the default)"


def _explain(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip()


def _ensure_image(client, options: DockerOptions, log: Callable[[str, str], None]) -> None:
    import docker

    if options.pull_policy != "ALWAYS":
        try:
            client.images.get(options.image)
            return
        except docker.errors.ImageNotFound:
            if options.pull_policy == "NEVER":
                raise PluginError(
                    f"image '{options.image}' is not on the Docker engine and pullPolicy is NEVER", retryable=False
                ) from None
        except docker.errors.APIError as exc:
            if not exc.is_client_error():
                raise
            raise PluginError(f"image '{options.image}': {_explain(exc)}", retryable=False) from None  # a bad name
    log("INFO", f"Pulling image {options.image}")
    repository, tag = docker.utils.parse_repository_tag(options.image)
    try:
        client.images.pull(repository, tag=tag or "latest")
    except docker.errors.NotFound as exc:
        raise PluginError(f"image '{options.image}' cannot be pulled: {_explain(exc)}", retryable=False) from None
    except docker.errors.APIError as exc:
        # a 4xx is the flow's image name; anything else (registry down, rate limit) may pass
        retryable = not (exc.is_client_error() and exc.status_code != 429)
        raise PluginError(f"image '{options.image}' cannot be pulled: {_explain(exc)}", retryable=retryable) from None


def _create(
    client,
    argv: Sequence[str],
    options: DockerOptions,
    workdir: Path,
    env: Mapping[str, str],
    labels: Mapping[str, str],
):
    """The working directory is mounted at its own path, so WORKING_DIR means the same folder inside the container
    and on the worker, where run_shell writes inputFiles before the start and stores outputFiles after the end."""
    import docker

    path = os.path.abspath(workdir)
    try:
        return client.containers.create(
            options.image,
            command=list(argv),
            entrypoint=list(options.entrypoint),
            environment=dict(env),
            working_dir=path,
            volumes=[f"{path}:{path}:rw", *options.volumes],
            labels=dict(labels),
            network_mode=options.network_mode,
            user=options.user,
            mem_limit=options.mem_limit,
            nano_cpus=options.nano_cpus,
            stdin_open=False,
            tty=False,
            use_config_proxy=False,
        )
    except docker.errors.APIError as exc:
        if exc.is_client_error():
            raise PluginError(f"Docker refused the container: {_explain(exc)}", retryable=False) from None
        raise


def _start(container, options: DockerOptions) -> None:
    import docker

    try:
        container.start()
    except docker.errors.APIError as exc:  # an unknown network, a user the image lacks, a missing command
        raise PluginError(f"the container of {options.image} cannot start: {_explain(exc)}", retryable=False) from None


def _read(output, lines: queue.Queue) -> None:
    """Split the demuxed (stdout, stderr) chunks into lines; None at the end of the stream."""
    pending = {False: b"", True: b""}
    try:
        for stdout, stderr in output:
            for is_stderr, chunk in ((False, stdout), (True, stderr)):
                if not chunk:
                    continue
                *complete, pending[is_stderr] = (pending[is_stderr] + chunk).split(b"\n")
                for raw in complete:
                    lines.put((_decode(raw), is_stderr))
    except Exception:  # the engine closed the stream: whatever came so far is handed over
        pass
    finally:
        for is_stderr, rest in pending.items():
            if rest:
                lines.put((_decode(rest), is_stderr))
        lines.put(None)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").rstrip("\r")


def _wait(
    reader: threading.Thread,
    lines: queue.Queue,
    on_line: LineHandler,
    deadline: float | None,
    should_stop: Callable[[], bool],
) -> str:
    """The output stream ends when the container does: its end is the container's exit."""
    while True:
        if _drain(lines, on_line, block=POLL_SECONDS):
            return EXITED
        if deadline is not None and time.monotonic() >= deadline:
            return TIMED_OUT
        if should_stop():
            return STOPPED


def _drain(lines: queue.Queue, on_line: LineHandler, block: float) -> bool:
    """Hand over queued lines for up to `block` seconds; True once the end of the stream is reached."""
    give_up = time.monotonic() + block
    try:
        item = lines.get(timeout=block)
        while item is not None:
            on_line(*item)
            if time.monotonic() >= give_up:
                return False
            item = lines.get_nowait()
        lines.put(None)  # keep the end marker for the next look
        return True
    except queue.Empty:
        return False


def _finish_reading(reader: threading.Thread, lines: queue.Queue, on_line: LineHandler) -> None:
    give_up = time.monotonic() + READER_JOIN_SECONDS
    while time.monotonic() < give_up:
        if _drain(lines, on_line, block=0.05):
            return


def _kill(container) -> None:
    """Best effort: it may have ended meanwhile (409), be gone (404), or the engine may be down (then there is
    nothing we can kill, and the error being raised says more than this one)."""
    import docker
    import requests

    try:
        container.kill()
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        pass


def _exit_code(container) -> int:
    return int(container.wait(timeout=API_TIMEOUT_SECONDS).get("StatusCode", -1))


def _remove(container) -> None:
    """Best effort, as `_kill`: the label `tern.task-run` finds what an engine outage left behind."""
    import docker
    import requests

    for _ in range(2):  # force-removal of a just-killed container can race the engine's own clean-up
        try:
            container.remove(force=True)
            return
        except docker.errors.NotFound:
            return
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            continue


def _ignore(line: str, is_stderr: bool) -> None:
    pass
