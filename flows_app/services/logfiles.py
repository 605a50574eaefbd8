"""The shape of a task run's log: no line longer than LOG_LINE_MAX_BYTES, and no more than LOG_MAX_LINES
lines in the database; past them (or from the start, with the task's `logToFile`) its lines go on in a file
in internal storage, named by the attempt's `logFile` (Kestra's name), so neither the database nor the live
viewers are flooded and the whole log stays downloadable."""

from __future__ import annotations

from datetime import datetime
from typing import TextIO

from .storage import storage, task_run_parts

SWITCH_PREFIX = "this task run's log goes on in "  # the last database line of a task run that writes to a file


def cut_line(message: str, max_bytes: int) -> str:
    """`message`, or its first `max_bytes` bytes and a marker saying how much was cut."""
    encoded = message.encode()
    if len(encoded) <= max_bytes:
        return message
    kept = encoded[:max_bytes].decode(errors="ignore")  # never half a character
    return f"{kept} … [{len(encoded) - len(kept.encode()):,} more bytes cut (TERN_LOG_LINE_MAX_BYTES)]"


def file_line(timestamp: datetime, level: str, task_id: str, message: str) -> str:
    """One line as the log download writes it."""
    return f"{timestamp.isoformat().replace('+00:00', 'Z')} {level:<5} {task_id or '-'} {message}\n"


class LogFile:
    """The file a task run's attempt writes its log lines to once they no longer go to the database."""

    def __init__(self, namespace: str, flow_id: str, execution_id: str, task_id: str, task_run_id: str, attempt: int):
        self.owner = (namespace, flow_id, execution_id, task_id, task_run_id)
        self.name = f"log-attempt-{attempt}.txt"
        self.uri: str | None = None
        self._file: TextIO | None = None

    def open(self) -> str:
        """Make the file (once); its URI."""
        if self.uri is None:
            self.uri, path = storage().create(task_run_parts(*self.owner), self.name)
            self._file = path.open("a", encoding="utf-8")
        return self.uri

    def write(self, line: str) -> None:
        self.open()
        assert self._file is not None
        self._file.write(line)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def switch_message(uri: str, reason: str) -> str:
    return f"{SWITCH_PREFIX}{uri} ({reason})"
