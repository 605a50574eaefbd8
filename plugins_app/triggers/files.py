"""Kestra's local file Trigger (`io.kestra.plugin.fs.local.Trigger`): a new file in a folder starts an execution.

Each file starts one execution of its own (Kestra starts one per poll for all the files found; the issue
asks for one per file), with the file under `trigger.file` and, for flows written for Kestra, as the one
item of `trigger.files`. The file is copied into the execution's storage (`uri`), then moved or deleted
as `action` says, once the execution exists. Its key is its identity (device, inode, path) and version
(modification time, size): a file is never read twice, even with `action: NONE` or across a restart, but
a file changed in place is read again (`on: CREATE` says it is not). Only folders under the setting
`TERN_TRIGGER_ALLOWED_PATHS` may be watched (Kestra's `allowed-paths`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import regex

from .base import Event, Source, SourceError

DEFAULT_MAX_FILES = 25  # Kestra's
REGEX_SECONDS = 1.0  # a user's pattern may not take longer on one path


class FolderSource(Source):
    def __init__(self, properties, context):
        super().__init__(properties, context)
        allowed = context.allowed_paths
        self.folder = allowed_path(properties.get("from"), "from", allowed)
        self.action = properties.get("action") or "NONE"
        move_to = properties.get("moveDirectory")
        self.move_to = allowed_path(move_to, "moveDirectory", allowed) if self.action == "MOVE" else None
        self.recursive = _flag(properties.get("recursive", False))
        self.max_files = int(properties.get("maxFiles") or DEFAULT_MAX_FILES)
        self.pattern = properties.get("regExp")
        self.on = properties.get("on") or "CREATE_OR_UPDATE"

    def poll(self) -> list[Event]:
        if not self.folder.is_dir():
            raise SourceError(f"from: '{self.folder}' is not a folder")
        events = []
        for path in self._files():
            try:
                stat = path.stat()
            except OSError:
                continue  # gone meanwhile
            identity = _digest(f"{stat.st_dev}:{stat.st_ino}:{path}")
            key = identity if self.on == "CREATE" else f"{identity}:{_digest(f'{stat.st_mtime_ns}:{stat.st_size}')}"
            change = "UPDATE" if self.on != "CREATE" and self.context.seen(f"{identity}:") else "CREATE"
            events.append(self._event(path, stat, key, change))
            if len(events) >= self.max_files:
                break
        return events

    def ack(self, events: list[Event]) -> None:
        for event in events:
            path: Path = event.handle
            if self.action == "DELETE":
                path.unlink(missing_ok=True)
            elif self.action == "MOVE" and self.move_to is not None and path.exists():
                target = self.move_to / path.relative_to(self.folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(path, target)

    def _files(self) -> list[Path]:
        found = self.folder.rglob("*") if self.recursive else self.folder.iterdir()
        files = []
        for path in found:
            if self.move_to is not None and self.move_to in path.parents:
                continue  # an archive inside the watched folder is not watched
            if not path.is_file() or not self._matches(path):
                continue
            files.append(path)
        return sorted(files, key=_modified_then_name)

    def _matches(self, path: Path) -> bool:
        if not self.pattern:
            return True
        try:
            return regex.fullmatch(self.pattern, str(path), timeout=REGEX_SECONDS) is not None
        except regex.error as exc:
            raise SourceError(f"regExp: '{self.pattern}' is not a pattern: {exc}") from None
        except TimeoutError:
            raise SourceError(f"regExp: '{self.pattern}' took over {REGEX_SECONDS} s on {path}") from None

    def _event(self, path: Path, stat: os.stat_result, key: str, change: str) -> Event:
        file: dict[str, Any] = {
            "name": path.name,
            "localPath": str(path),
            "path": str(path),
            "parent": str(path.parent),
            "size": stat.st_size,
            "createdDate": _instant(stat.st_ctime),
            "modifiedDate": _instant(stat.st_mtime),
            "accessedDate": _instant(stat.st_atime),
            "isDirectory": False,
            "changeType": change,
        }
        variables = {"file": file, "files": [file]}

        def store(put) -> None:
            try:
                file["uri"] = put(path.name, path)
            except FileNotFoundError:
                raise SourceError(f"{path}: gone before it could be read") from None

        return Event(variables, key=key, handle=path, store=store)


def allowed_path(value: Any, name: str, roots: tuple[str, ...]) -> Path:
    """The folder `value`, if it lies under one of `roots`; SourceError naming the setting if not."""
    if not isinstance(value, str) or not value:
        raise SourceError(f"{name}: missing folder")
    path = Path(value).expanduser().resolve()
    allowed = [Path(p).expanduser().resolve() for p in roots]
    if not any(path == root or root in path.parents for root in allowed):
        roots = ", ".join(str(p) for p in allowed) or "none"
        raise SourceError(
            f"{name}: '{path}' is not under an allowed path ({roots}); add it to TERN_TRIGGER_ALLOWED_PATHS"
        )
    return path


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode(errors="surrogateescape")).hexdigest()[:32]


def _instant(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _modified_then_name(path: Path) -> tuple[float, str]:
    try:
        return path.stat().st_mtime, str(path)
    except OSError:
        return 0.0, str(path)
