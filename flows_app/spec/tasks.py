"""Checks one task (and its children) of a flow: common properties, retry, plugin properties."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from plugins_app.base import DAG, LIST, MAP, FlowablePlugin, Plugin
from plugins_app.registry import UnknownPlugin, get_plugin

from .durations import DurationError, parse_duration
from .errors import ErrorCollector, Path, format_path
from .model import RetrySpec, TaskSpec

ID_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")
MAX_TASK_ID = 256  # Kestra's limit (Task.id)
LOG_LEVELS = {"TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR"}

# Properties every task has, whatever its plugin (Kestra's Task base class).
COMMON_KEYS = {
    "id",
    "type",
    "description",
    "disabled",
    "timeout",
    "retry",
    "allowFailure",
    "allowWarning",
    "logLevel",
    "workerGroup",
    "runIf",
    "logToFile",
    "version",
}
RETRY_KEYS = {
    "type",
    "interval",
    "maxInterval",
    "minInterval",
    "delayFactor",
    "maxDuration",
    "maxAttempt",
    "maxAttempts",
    "warningOnRetry",
    "behavior",
}
RETRY_TYPES = {"constant", "exponential", "random"}


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class TaskParser:
    """Turns raw task maps into TaskSpecs, reporting every problem to `errors` and going on."""

    def __init__(self, errors: ErrorCollector, task_defaults: list[dict[str, Any]]):
        self.errors = errors
        self.task_defaults = task_defaults
        self.seen_ids: dict[str, Path] = {}

    def parse_list(self, raw: Any, path: Path, *, allow_empty: bool = False) -> tuple[TaskSpec, ...]:
        if raw is None and allow_empty:
            return ()
        if not isinstance(raw, list):
            self.errors.add(path, "must be a list of tasks")
            return ()
        if not raw and not allow_empty:
            self.errors.add(path, "must hold at least one task")
        tasks = []
        for i, item in enumerate(raw):
            task = self.parse_task(item, path + (i,))
            if task is not None:
                tasks.append(task)
        return tuple(tasks)

    def parse_dag(self, raw: Any, path: Path) -> tuple[TaskSpec, ...]:
        """A Dag's `tasks`: each entry's `task` is a child task; `dependsOn` is the plugin's to check."""
        if not isinstance(raw, list) or not raw:
            self.errors.add(path, "must be a list of `{task: ..., dependsOn: [...]}`")
            return ()
        tasks = []
        for i, entry in enumerate(raw):
            if not isinstance(entry, dict) or "task" not in entry:
                self.errors.add(path + (i,), "must be a map with `task` and, optionally, `dependsOn`")
                continue
            task = self.parse_task(entry["task"], path + (i, "task"))
            if task is not None:
                tasks.append(task)
        return tuple(tasks)

    def parse_task(self, raw: Any, path: Path) -> TaskSpec | None:
        if not isinstance(raw, dict):
            self.errors.add(path, "a task must be a map with at least `id` and `type`")
            return None
        task_id = self._check_id(raw.get("id"), path)
        type_name = raw.get("type")
        if not isinstance(type_name, str) or not type_name:
            self.errors.add(path + ("type",), "missing task type")
            return None
        try:
            plugin = get_plugin(type_name)
        except UnknownPlugin as exc:
            self.errors.add(path + ("type",), str(exc))
            return None
        raw = self._with_defaults(raw, plugin)
        common = self._common(raw, path)
        branches = self._branches(raw, plugin, path)
        # a DAG-shaped field also stays a property: the plugin reads the dependencies from it
        children_keys = {k for k, shape in (getattr(plugin, "child_fields", {}) or {}).items() if shape != DAG}
        props = {k: v for k, v in raw.items() if k not in COMMON_KEYS and k not in children_keys}
        self._check_properties(plugin, props, path)
        if issubclass(plugin, FlowablePlugin):
            for where, message in plugin.check(raw):
                self.errors.add(path + tuple(where), message)
        if task_id is None:
            return None
        return TaskSpec(id=task_id, type=plugin.type, properties=props, branches=branches, path=path, **common)

    # ---- pieces -------------------------------------------------------------------------------

    def _check_id(self, task_id: Any, path: Path) -> str | None:
        if task_id is None:
            self.errors.add(path + ("id",), "missing task id")
            return None
        if not isinstance(task_id, str) or not ID_PATTERN.match(task_id):
            self.errors.add(
                path + ("id",),
                f"'{task_id}' is not a valid id (letters, digits, '-' and '_', not starting with '-' or '_')",
            )
            return None
        if len(task_id) > MAX_TASK_ID:
            self.errors.add(
                path + ("id",), f"'{task_id[:30]}...' is {len(task_id)} characters long: at most {MAX_TASK_ID}"
            )
            return None
        if task_id in self.seen_ids:
            self.errors.add(
                path + ("id",), f"duplicate task id '{task_id}' (also at {format_path(self.seen_ids[task_id])})"
            )
            return None
        self.seen_ids[task_id] = path
        return task_id

    def _with_defaults(self, raw: dict[str, Any], plugin: type[Plugin]) -> dict[str, Any]:
        """taskDefaults/pluginDefaults: values for tasks of a type (or type prefix); the task's own win unless forced."""
        names = (plugin.type, *plugin.aliases, raw["type"])
        merged = dict(raw)
        for default in self.task_defaults:
            wanted = default.get("type", "")
            if not any(n == wanted or n.startswith(wanted + ".") for n in names):
                continue
            for key, value in (default.get("values") or {}).items():
                if default.get("forced") or key not in merged:
                    merged[key] = value
        return merged

    def _common(self, raw: dict[str, Any], path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        out["description"] = raw.get("description")
        out["disabled"] = self._bool(raw, "disabled", path)
        out["allow_failure"] = self._bool(raw, "allowFailure", path)
        out["allow_warning"] = self._bool(raw, "allowWarning", path)
        out["log_to_file"] = self._bool(raw, "logToFile", path)
        if raw.get("timeout") is not None:
            out["timeout"] = self._duration(raw["timeout"], path + ("timeout",))
        if raw.get("retry") is not None:
            out["retry"] = parse_retry(raw["retry"], path + ("retry",), self.errors)
        level = raw.get("logLevel")
        if level is not None:
            if str(level).upper() not in LOG_LEVELS:
                self.errors.add(path + ("logLevel",), f"'{level}' is not a log level ({', '.join(sorted(LOG_LEVELS))})")
            else:
                out["log_level"] = str(level).upper()
        group = raw.get("workerGroup")
        if group is not None:
            key = group.get("key") if isinstance(group, dict) else group
            if not isinstance(key, str) or not key:
                self.errors.add(path + ("workerGroup",), "must be a worker group key, e.g. `workerGroup: {key: gpu}`")
            else:
                out["worker_group"] = key
        if raw.get("runIf") is not None:
            out["run_if"] = str(raw["runIf"])
        return out

    def _bool(self, raw: dict[str, Any], key: str, path: Path) -> bool:
        value = raw.get(key, False)
        if not isinstance(value, bool):
            self.errors.add(path + (key,), f"'{value}' is not a boolean (true or false)")
            return False
        return value

    def _duration(self, value: Any, path: Path) -> timedelta | None:
        if is_template(value):
            self.errors.add(path, "a template is not allowed here: write a duration like PT10M")
            return None
        try:
            return parse_duration(value)
        except DurationError as exc:
            self.errors.add(path, str(exc))
            return None

    def _branches(self, raw: dict[str, Any], plugin: type[Plugin], path: Path) -> dict[str, tuple[TaskSpec, ...]]:
        if not issubclass(plugin, FlowablePlugin):
            return {}
        branches: dict[str, tuple[TaskSpec, ...]] = {}
        for name, shape in plugin.child_fields.items():
            value = raw.get(name)
            required = name in plugin.required_children
            if value is None:
                if required:
                    self.errors.add(path + (name,), "missing required list of tasks")
                continue
            if shape == LIST:
                branches[name] = self.parse_list(value, path + (name,), allow_empty=not required)
            elif shape == DAG:
                branches[name] = self.parse_dag(value, path + (name,))
            elif shape == MAP:
                if not isinstance(value, dict):
                    self.errors.add(path + (name,), "must be a map of name -> list of tasks")
                    continue
                for key, tasks in value.items():
                    branches[f"{name}.{key}"] = self.parse_list(tasks, path + (name, key))
        return branches

    def _check_properties(self, plugin: type[Plugin], props: dict[str, Any], path: Path) -> None:
        """Validate what can be checked before run time; a templated value is checked once rendered."""
        try:
            plugin.Properties.model_validate(props)
        except ValidationError as exc:
            for error in exc.errors():
                loc = tuple(error["loc"])
                structural = error["type"] in ("missing", "extra_forbidden")
                if not structural and _is_templated_at(props, loc):
                    continue
                self.errors.add(path + loc, _message(error))


def _is_templated_at(props: dict[str, Any], loc: tuple[Any, ...]) -> bool:
    value: Any = props
    for part in loc:
        if is_template(value):
            return True
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return False
    return is_template(value)


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "missing required property"
    if kind == "extra_forbidden":
        return "unknown property"
    value = error.get("input")
    shown = f"'{value}'" if isinstance(value, (str, int, float)) else type(value).__name__
    return f"{shown}: {error['msg'][0].lower()}{error['msg'][1:]}"


def parse_retry(raw: Any, path: Path, errors: ErrorCollector) -> RetrySpec | None:
    if not isinstance(raw, dict):
        errors.add(path, "must be a map with `type` and its settings")
        return None
    for key in raw:
        if key not in RETRY_KEYS:
            errors.add(path + (key,), "unknown retry property")
    kind = str(raw.get("type", "")).lower()
    if kind not in RETRY_TYPES:
        errors.add(path + ("type",), f"'{raw.get('type')}' is not a retry type (constant, exponential, random)")
        return None
    durations = {}
    for key, name in (
        ("interval", "interval"),
        ("maxInterval", "max_interval"),
        ("minInterval", "min_interval"),
        ("maxDuration", "max_duration"),
    ):
        if raw.get(key) is None:
            continue
        try:
            durations[name] = parse_duration(raw[key])
        except DurationError as exc:
            errors.add(path + (key,), str(exc))
    needed = {
        "constant": ["interval"],
        "exponential": ["interval", "maxInterval"],
        "random": ["minInterval", "maxInterval"],
    }[kind]
    for key in needed:
        if raw.get(key) is None:
            errors.add(path + (key,), f"required for a {kind} retry")
    attempts = raw.get("maxAttempts", raw.get("maxAttempt"))
    if attempts is not None and (isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1):
        errors.add(path + ("maxAttempt",), f"'{attempts}' is not a positive whole number")
        attempts = None
    factor = raw.get("delayFactor")
    if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float))):
        errors.add(path + ("delayFactor",), f"'{factor}' is not a number")
        factor = None
    warning = raw.get("warningOnRetry", False)
    if not isinstance(warning, bool):
        errors.add(path + ("warningOnRetry",), f"'{warning}' is not a boolean")
        warning = False
    return RetrySpec(
        type=kind,
        delay_factor=factor,
        max_attempts=attempts,
        warning_on_retry=warning,
        behavior=str(raw.get("behavior", "RETRY_FAILED_TASK")),
        **durations,
    )
