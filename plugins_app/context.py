"""The RunContext a runnable plugin is handed: rendering, logging, a working directory, a stop signal.

It holds callables given by the engine, so plugins never import the engine or the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TaskRunContext:
    task_id: str
    task_run_id: str
    execution_id: str
    attempt: int
    work_root: Path  # the run's working directory, made on first use
    renderer: Callable[[Any], Any]
    logger: Callable[[str, str], None]
    stop_check: Callable[[], bool] = lambda: False
    deadline: float | None = None  # time.monotonic() by which the task must end
    kv: Any = None  # the KV store of the flow's namespace: get(key), put(key, value, ttl=), delete(key)
    storage_put: Callable[[Any, str], str] | None = None  # (path or bytes, file name) -> kestra:/// URI
    storage_path: Callable[[str], Path] | None = None  # URI -> the local file (for reading)
    masker: Callable[[str], None] | None = None  # a value to mask in this task's logs and outputs from now on
    _last_stop_check: float = field(default=0.0, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def working_dir(self) -> Path:
        """Made on first use: most tasks (Log, Return) never need one, and mkdir is not free."""
        self.work_root.mkdir(parents=True, exist_ok=True)
        return self.work_root

    @property
    def timeout(self) -> float | None:
        if self.deadline is None:
            return None
        return max(self.deadline - time.monotonic(), 0.0)

    def render(self, value: Any) -> Any:
        return self.renderer(value)

    def log(self, level: str, message: str) -> None:
        self.logger(level, message)

    def mask(self, value: str) -> None:
        """From now on `value` (and its disguises) is masked in this task's logs, outputs and errors."""
        if self.masker is not None:
            self.masker(value)

    def should_stop(self) -> bool:
        """True once the execution is being killed; asks at most twice a second."""
        now = time.monotonic()
        if not self._stopped and now - self._last_stop_check >= 0.5:
            self._last_stop_check = now
            self._stopped = bool(self.stop_check())
        return self._stopped
