"""Run one command in its own process group, hand its output lines to the caller as they come, and stop the whole group on a deadline or on request."""

from __future__ import annotations

import os
import queue
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
    """How a process ended: `reason` is EXITED, TIMED_OUT or STOPPED; `exit_code` matters for EXITED only."""

    reason: str
    exit_code: int


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    on_line: LineHandler,
    timeout: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    kill_grace: float = KILL_GRACE_SECONDS,
) -> Ended:
    """Run `argv` and wait for it; `on_line` is called on this thread, never on a reader thread.

    When the command ends, times out or is stopped, whatever is left of its process group
    (`cmd &` children included) is terminated, so nothing outlives the task.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    lines: queue.Queue[tuple[str, bool]] = queue.Queue(maxsize=QUEUED_LINES)
    # A new session makes the command the leader of its own process group: one signal reaches its children too.
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    readers = [_start_reader(proc.stdout, False, lines), _start_reader(proc.stderr, True, lines)]
    handler = on_line
    try:
        reason = _wait(proc, lines, on_line, deadline, should_stop)
    except BaseException:
        handler = _ignore  # the caller is failing: only empty the pipes so the readers can end
        raise
    finally:
        stop_group(proc, kill_grace)
        _finish_reading(readers, lines, handler)
    return Ended(reason, exit_code(proc.returncode))


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
) -> str:
    while True:
        _drain(lines, on_line, block=POLL_SECONDS)
        if proc.poll() is not None:
            return EXITED
        if deadline is not None and time.monotonic() >= deadline:
            return TIMED_OUT
        if should_stop():
            return STOPPED


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
