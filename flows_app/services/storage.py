"""Internal storage: files of executions (task outputs, FILE inputs, downloads) addressed by URI.

Local disk under TERN_STORAGE_DIR; a URI is `kestra:///<namespace path>/<flow>/executions/<id>/...`, as
in Kestra, so flows that pass URIs between tasks work as written. The interface (put, path_of, read)
is what an S3-compatible backend would implement.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from django.conf import settings

SCHEME = "kestra://"


class StorageError(Exception):
    pass


class LocalStorage:
    def __init__(self, root: Path):
        self.root = root.resolve()

    def put(self, parts: list[str], name: str, source: Path | bytes | Iterable[bytes]) -> str:
        """Store a file (copied from a path, bytes, or chunks of bytes) under parts/name; returns its URI."""
        relative = PurePosixPath(*[_clean(p) for p in parts], _clean(name))
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, bytes):
            target.write_bytes(source)
        elif isinstance(source, (str, Path)):
            shutil.copyfile(source, target)
        else:
            with target.open("wb") as file:
                for chunk in source:
                    file.write(chunk)
        return f"{SCHEME}/{relative}"

    def create(self, parts: list[str], name: str) -> tuple[str, Path]:
        """A new empty file under parts/name, for its writer to fill: its URI and its local path."""
        relative = PurePosixPath(*[_clean(p) for p in parts], _clean(name))
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"")
        return f"{SCHEME}/{relative}", target

    def path_of(self, uri: str) -> Path:
        """The local file of a URI; refuses URIs outside the storage."""
        if not uri.startswith(SCHEME):
            raise StorageError(f"'{uri}' is not an internal storage URI (kestra:///...)")
        path = (self.root / uri[len(SCHEME) :].lstrip("/")).resolve()
        if self.root not in path.parents:
            raise StorageError(f"'{uri}' points outside the internal storage")
        if not path.is_file():
            raise StorageError(f"'{uri}': no such file in the internal storage")
        return path

    def path_in(self, uri: str, parts: list[str]) -> Path:
        """The local file of a URI that lies under `parts` (an execution's folder); StorageError if not."""
        path = self.path_of(uri)
        if self.root.joinpath(*parts).resolve() not in path.parents:
            raise StorageError(f"'{uri}' is not under {'/'.join(parts)}")
        return path

    def read(self, uri: str) -> str:
        return self.path_of(uri).read_text()


def _clean(part: str) -> str:
    part = str(part).replace("/", "_").replace("\\", "_")
    if part in ("", ".", ".."):
        raise StorageError(f"'{part}' is not a storage path part")
    return part


def storage() -> LocalStorage:
    return _storage_at(Path(settings.TERN["STORAGE_DIR"]))


@functools.lru_cache(maxsize=8)
def _storage_at(root: Path) -> LocalStorage:
    """One per root: resolving the root's path costs a system call per folder, on every task run."""
    return LocalStorage(root)


def execution_parts(namespace: str, flow_id: str, execution_id: str) -> list[str]:
    return [*namespace.split("."), flow_id, "executions", execution_id]


def task_run_parts(namespace: str, flow_id: str, execution_id: str, task_id: str, task_run_id: str) -> list[str]:
    return [*execution_parts(namespace, flow_id, execution_id), "tasks", task_id, task_run_id]


def remove(parts: list[str]) -> None:
    """Remove a folder of the storage and what it holds (files of an execution that never started)."""
    shutil.rmtree(storage().root.joinpath(*[_clean(p) for p in parts]), ignore_errors=True)
