"""Files between a task's working directory and internal storage: input files written in, output files matched and stored."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from plugins_app.base import PluginError

STORAGE_SCHEME = "kestra://"

InputFiles = dict[str, str | None] | str  # a string is a JSON map, e.g. rendered from another task's outputs


def parse_file_map(value: InputFiles | None, what: str = "inputFiles") -> dict[str, str | None]:
    """A map of file name -> content, as written or as a JSON string (rendered from another output)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    try:
        files = json.loads(value)
    except ValueError as exc:
        raise PluginError(
            f"{what}: a string must be a JSON map of file name -> content ({exc})", retryable=False
        ) from None
    if not isinstance(files, dict) or not all(isinstance(v, (str, type(None))) for v in files.values()):
        raise PluginError(f"{what}: a string must be a JSON map of file name -> content", retryable=False)
    return files


def write_files(
    workdir: Path, files: Mapping[str, str | None], stored: Callable[[str], Path] | None, what: str = "inputFiles"
) -> None:
    """Write each file inside `workdir`. A value that is one internal storage URI (`kestra:///…`) is the file's
    source, copied from `stored(uri)`, as Kestra does; any other value is the file's text."""
    root = workdir.resolve()
    for name, content in files.items():
        if content is None:  # Kestra drops null entries
            continue
        target = (root / name).resolve()
        if target == root or not target.is_relative_to(root):
            raise PluginError(f"{what}: '{name}' is not a path inside the working directory", retryable=False)
        target.parent.mkdir(parents=True, exist_ok=True)
        uri = content.strip()
        if uri.startswith(STORAGE_SCHEME) and "\n" not in uri:
            _copy_stored(uri, target, stored, f"{what}: '{name}'")
        else:
            target.write_text(content, encoding="utf-8")


def _copy_stored(uri: str, target: Path, stored: Callable[[str], Path] | None, label: str) -> None:
    if stored is None:
        raise PluginError(
            f"{label} is an internal storage file ({uri}), and this task has no internal storage", retryable=False
        )
    try:
        shutil.copyfile(stored(uri), target)
    except Exception as exc:  # the engine's storage error: its type is the engine's, not ours to import
        raise PluginError(f"{label} cannot be copied from internal storage: {exc}", retryable=False) from None


def store_matching(workdir: Path, patterns: Sequence[str], put: Callable[[Path, str], str]) -> dict[str, str]:
    """Files matching the patterns, sent to internal storage (`put(path, name)` -> URI): relative path -> URI."""
    if not patterns:
        return {}
    return {
        relative: put(Path(path), relative) for relative, path in match_output_files(workdir, tuple(patterns)).items()
    }


def match_output_files(workdir: Path, patterns: Sequence[str]) -> dict[str, str]:
    """Files whose path relative to the working directory matches a pattern -> their absolute path."""
    root = workdir.resolve()
    regexes = [_glob_regex(p) for p in patterns]
    found: dict[str, str] = {}
    for folder, _subfolders, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            if any(r.fullmatch(relative) for r in regexes) and _own_file(path, root):
                found[relative] = str(path)
    return dict(sorted(found.items()))


def _own_file(path: Path, root: Path) -> bool:
    """A regular file that really lies in the working directory: a symlink to /etc/passwd is no output."""
    real = path.resolve()
    return real.is_file() and real.is_relative_to(root)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Java's glob, as Kestra matches outputFiles: `**` crosses folders, `*` and `?` do not, `{a,b}` is either."""
    parts, i, braces = [], 0, 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            parts.append(".*")
            i += 1
        elif char == "*":
            parts.append("[^/]*")
        elif char == "?":
            parts.append("[^/]")
        elif char == "{":
            parts.append("(?:")
            braces += 1
        elif char == "}" and braces:
            parts.append(")")
            braces -= 1
        elif char == "," and braces:
            parts.append("|")
        else:
            parts.append(re.escape(char))
        i += 1
    if braces:
        raise PluginError(f"outputFiles: '{pattern}' has an unclosed '{{'", retryable=False)
    return re.compile("".join(parts))
