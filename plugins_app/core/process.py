"""Run one command in its own process group under memory and CPU-time limits, hand its output lines to the caller as they come, and stop the whole group on a deadline or on request."""

from __future__ import annotations

import errno
import os
import queue
import re
import resource
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

POLL_SECONDS = 0.1  # how often the deadline and `should_stop` are checked
KILL_GRACE_SECONDS = 2.0  # between SIGTERM and SIGKILL
READER_JOIN_SECONDS = 1.0  # how long to wait for the pipes to close once the group is gone
QUEUED_LINES = 1000  # a full queue blocks the readers, so a chatty process waits for its logs to be written

EXITED, TIMED_OUT, STOPPED = "exited", "timed out", "stopped"

LineHandler = Callable[[str, bool], None]  # (line, is_stderr)


@dataclass(frozen=True)
class Ended:
    """How a process ended: `reason` is EXITED, TIMED_OUT or STOPPED; `exit_code` matters for EXITED only.

    `over_limit` says which of its Limits a failed process ran into, as a sentence for the task's error.
    """

    reason: str
    exit_code: int
    over_limit: str = ""


@dataclass(frozen=True)
class Limits:
    """What each process of a script may use; 0 is no limit. Limits apply per process, inherited by children."""

    memory_mb: int = 0  # writable private memory (RLIMIT_DATA): heap and anonymous mappings
    cpu_seconds: int = 0  # CPU time (RLIMIT_CPU): SIGXCPU at the limit, SIGKILL a second later

    @classmethod
    def configured(cls) -> Limits:
        """TERN_SCRIPT_MEMORY_MB and TERN_SCRIPT_CPU_SECONDS; none outside a Tern process (no Django settings)."""
        # Imported here: plugins import no Django (test_the_heart_stays_free_of_django); a worker has it loaded.
        from django.conf import settings
        from django.core.exceptions import ImproperlyConfigured

        try:
            tern = settings.TERN
        except ImproperlyConfigured:
            return NO_LIMITS
        return cls(memory_mb=tern["SCRIPT_MEMORY_MB"], cpu_seconds=tern["SCRIPT_CPU_SECONDS"])


NO_LIMITS = Limits()


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    on_line: LineHandler,
    timeout: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    kill_grace: float = KILL_GRACE_SECONDS,
    limits: Limits | None = None,
) -> Ended:
    """Run `argv` and wait for it; `on_line` is called on this thread, never on a reader thread.

    `limits` defaults to the configured ones (TERN_SCRIPT_MEMORY_MB, TERN_SCRIPT_CPU_SECONDS).
    When the command ends, times out or is stopped, whatever is left of its process group
    (`cmd &` children included) is terminated, so nothing outlives the task.
    """
    limits = Limits.configured() if limits is None else limits
    deadline = None if timeout is None else time.monotonic() + timeout
    lines: queue.Queue[tuple[str, bool]] = queue.Queue(maxsize=QUEUED_LINES)
    watch = _LimitWatch(limits, on_line)
    # A new session makes the command the leader of its own process group: one signal reaches its children too.
    proc = subprocess.Popen(
        _limited(argv, limits, cwd, env),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    readers = [_start_reader(proc.stdout, False, lines), _start_reader(proc.stderr, True, lines)]
    handler = watch.line
    try:
        reason = _wait(proc, lines, watch.line, deadline, should_stop, watch)
    except BaseException:
        handler = _ignore  # the caller is failing: only empty the pipes so the readers can end
        raise
    finally:
        stop_group(proc, kill_grace)
        _finish_reading(readers, lines, handler)
    over_limit = watch.over_limit(proc.returncode) if reason == EXITED else ""
    return Ended(reason, exit_code(proc.returncode), over_limit)


def exit_code(returncode: int) -> int:
    """A signal death as a shell (and Java's Process) reports it: 128 + signal number."""
    return 128 - returncode if returncode < 0 else returncode


def stop_group(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM the process group, SIGKILL it if anything is left after `grace`, and reap the leader."""
    pgid = proc.pid  # the leader of a new session: its pid is the group id
    if _signal_group(pgid, signal.SIGTERM):
        give_up = time.monotonic() + grace
        while time.monotonic() < give_up:
            proc.poll()  # reap the leader so it does not count as alive
            if not _group_alive(pgid):
                break
            time.sleep(0.02)
        else:
            _signal_group(pgid, signal.SIGKILL)
    proc.wait()


# ---- limits -----------------------------------------------------------------------------------

# `preexec_fn` could call setrlimit in the child, but it is unsafe in a threaded worker, and
# resource.prlimit on the child's pid races its first allocations. So POSIX sh sets the limits and
# execs the command: argv goes in as positional parameters and only our integers are in the script.
# It costs one exec of /bin/sh per task: 0.4 ms measured.
_LIMITED_SH = "/bin/sh"

# What a runtime prints when an allocation fails: Python, C (strerror), Node/V8, C++, the JVM, bash.
_OUT_OF_MEMORY = re.compile(
    r"MemoryError|Cannot allocate memory|out of memory|OutOfMemory|bad_alloc|allocation failed|memory exhausted",
    re.IGNORECASE,
)


def _limited(argv: Sequence[str], limits: Limits, cwd: Path, env: Mapping[str, str]) -> list[str]:
    """`argv`, prefixed by a shell that sets the limits first; unchanged when there are none."""
    if limits == NO_LIMITS:
        return list(argv)
    _check_executable(argv[0], cwd, env)
    steps = []
    if limits.memory_mb > 0:
        data = _capped(limits.memory_mb * 1024, resource.RLIMIT_DATA, scale=1024)
        steps.append(f"ulimit -d {data}")  # KiB; both soft and hard, so the script cannot raise it
    if limits.cpu_seconds > 0:
        # Soft then hard: the kernel sends SIGXCPU at the soft limit, but SIGKILL alone when both are reached at once.
        steps.append(f"ulimit -St {_capped(limits.cpu_seconds, resource.RLIMIT_CPU)}")
        steps.append(f"ulimit -Ht {_capped(limits.cpu_seconds + 1, resource.RLIMIT_CPU)}")
    return [_LIMITED_SH, "-c", " && ".join([*steps, 'exec "$@"']), "sh", *argv]


def _capped(value: int, which: int, scale: int = 1) -> int:
    """No higher than the worker's own hard limit, which the child could not raise (`ulimit` would fail)."""
    hard = resource.getrlimit(which)[1]
    return value if hard == resource.RLIM_INFINITY else min(value, hard // scale)


def _check_executable(program: str, cwd: Path, env: Mapping[str, str]) -> None:
    """Raise as Popen would for a missing or non-executable program, which `exec` in the shell would only report
    as exit code 127 or 126, like a failing script."""
    if "/" in program:
        path = str(Path(cwd, program))
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
    elif shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


class _LimitWatch:
    """Tells which limit, if any, a failed process ran into.

    CPU: from how it died and its CPU time. Memory: a failed allocation sends no signal, and ru_maxrss is no help
    (RLIMIT_DATA stops a big allocation before it is resident; the forked child's maxrss starts at the worker's),
    so it is what the runtime prints on stderr when an allocation fails.
    """

    def __init__(self, limits: Limits, on_line: LineHandler):
        self.limits = limits
        self.on_line = on_line
        self.usage: resource.struct_rusage | None = None  # the leader's and its reaped children's (os.wait4)
        self.said_out_of_memory = False

    def line(self, text: str, is_stderr: bool) -> None:
        if is_stderr and self.limits.memory_mb > 0 and not self.said_out_of_memory:
            self.said_out_of_memory = bool(_OUT_OF_MEMORY.search(text))
        self.on_line(text, is_stderr)

    def over_limit(self, returncode: int) -> str:
        if returncode == 0:
            return ""
        cpu, memory = self.limits.cpu_seconds, self.limits.memory_mb
        if cpu > 0 and self._out_of_cpu(returncode):
            return f"the script used more than its {cpu} s of CPU time (TERN_SCRIPT_CPU_SECONDS)"
        if memory > 0 and self.said_out_of_memory:
            return f"the script ran out of its {memory} MB of memory (TERN_SCRIPT_MEMORY_MB)"
        return ""

    def _out_of_cpu(self, returncode: int) -> bool:
        """Killed by SIGXCPU (a shell reports a child's death by it as 128 + SIGXCPU), or by the SIGKILL that
        follows a second later when SIGXCPU is ignored."""
        if returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            return True
        if returncode not in (-signal.SIGKILL, 128 + signal.SIGKILL) or self.usage is None:
            return False
        return self.usage.ru_utime + self.usage.ru_stime >= self.limits.cpu_seconds


# ---- steps ------------------------------------------------------------------------------------


def _start_reader(stream, is_stderr: bool, lines: queue.Queue) -> threading.Thread:
    def read() -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                lines.put((raw.decode("utf-8", "replace").rstrip("\r\n"), is_stderr))

    name = "tern-process-stderr" if is_stderr else "tern-process-stdout"
    thread = threading.Thread(target=read, name=name, daemon=True)
    thread.start()
    return thread


def _wait(
    proc: subprocess.Popen,
    lines: queue.Queue,
    on_line: LineHandler,
    deadline: float | None,
    should_stop: Callable[[], bool],
    watch: _LimitWatch,
) -> str:
    while True:
        _drain(lines, on_line, block=POLL_SECONDS)
        if _reap(proc, watch):
            return EXITED
        if deadline is not None and time.monotonic() >= deadline:
            return TIMED_OUT
        if should_stop():
            return STOPPED


def _reap(proc: subprocess.Popen, watch: _LimitWatch) -> bool:
    """Whether the leader has ended; reaps it with os.wait4, which also gives its resource usage."""
    if proc.returncode is not None:
        return True
    try:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    except ChildProcessError:  # reaped elsewhere: the status is all that is left
        return proc.poll() is not None
    if pid == 0:
        return False
    watch.usage = usage
    proc.returncode = os.waitstatus_to_exitcode(status)
    return True


def _drain(lines: queue.Queue, on_line: LineHandler, block: float) -> None:
    """Hand over queued lines for up to `block` seconds (waiting that long for the first one):
    a chatty process cannot keep the caller from checking its deadline."""
    give_up = time.monotonic() + block
    try:
        item = lines.get(timeout=block)
        while True:
            on_line(*item)
            if time.monotonic() >= give_up:
                return
            item = lines.get_nowait()
    except queue.Empty:
        return


def _finish_reading(readers: list[threading.Thread], lines: queue.Queue, on_line: LineHandler) -> None:
    """Hand over the last lines while the readers reach the end of the pipes.

    A grandchild that left the group (setsid) may hold a pipe open: after READER_JOIN_SECONDS we stop waiting.
    """
    give_up = time.monotonic() + READER_JOIN_SECONDS
    while any(r.is_alive() for r in readers) and time.monotonic() < give_up:
        _drain(lines, on_line, block=0.05)
    for _ in range(lines.qsize()):
        on_line(*lines.get_nowait())


def _ignore(line: str, is_stderr: bool) -> None:
    pass


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal the group; False when it has no process left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # a member we may not signal (setuid): nothing more we can do about it
    return True


def _group_alive(pgid: int) -> bool:
    """Whether a live (non-zombie) process is left in the group.

    Zombies are skipped: orphans are reaped by PID 1, which in some containers never does it.
    """
    if not _signal_group(pgid, 0):
        return False
    try:
        entries = os.listdir("/proc")
    except OSError:  # no procfs: trust the kernel's answer, zombies included
        return True
    return any(entry.isdigit() and _live_member(entry, pgid) for entry in entries)


def _live_member(pid: str, pgid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("utf-8", "replace")
    except OSError:
        return False
    # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    return len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X")
