"""Validation errors that name their place: `tasks[2].retry.interval: 'PT15X' is not a duration (line 14)`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

PathPart = str | int
Path = tuple[PathPart, ...]


def format_path(path: Path) -> str:
    """Render ('tasks', 2, 'retry', 'interval') as tasks[2].retry.interval."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "<flow>"


@dataclass(frozen=True)
class SpecError:
    path: Path
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{format_path(self.path)}: {self.message}{where}"


@dataclass(frozen=True)
class SpecWarning(SpecError):
    """Something a valid flow says that Tern does not do (yet): the flow still loads. Placed first, as
    `concurrency (line 4): accepted but not acted on yet: executions are not limited`."""

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{format_path(self.path)}{where}: {self.message}"


class FlowValidationError(Exception):
    """All the errors of one flow source, reported at once."""

    def __init__(self, errors: Iterable[SpecError]):
        self.errors = sorted(errors, key=lambda e: (e.line or 0, format_path(e.path)))
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass
class ErrorCollector:
    """Gathers errors while a flow is checked; `lines` maps a path to its line in the YAML source.

    With a `limit`, the check stops there: a flow with thousands of mistakes needs its first ones fixed, and
    finding each costs time (a suggestion for an unknown type is a difflib search)."""

    lines: dict[Path, int] = field(default_factory=dict)
    errors: list[SpecError] = field(default_factory=list)
    limit: int | None = None
    warnings: list[SpecWarning] = field(default_factory=list)

    def add(self, path: Path, message: str) -> None:
        self.errors.append(SpecError(tuple(path), message, self.line_of(path)))
        if self.limit is not None and len(self.errors) >= self.limit:
            stop = SpecError((), f"stopped after {self.limit} errors", self.errors[-1].line)
            raise FlowValidationError([*self.errors, stop])

    def warn(self, path: Path, message: str) -> None:
        """A warning: reported with the flow, which stays valid."""
        self.warnings.append(SpecWarning(tuple(path), message, self.line_of(path)))

    def line_of(self, path: Path) -> int | None:
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def raise_if_any(self) -> None:
        if self.errors:
            raise FlowValidationError(self.errors)
