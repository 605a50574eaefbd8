"""Loads a flow's YAML source into a FlowSpec, or raises FlowValidationError with every problem at once."""

from __future__ import annotations

import re
from functools import partial
from os import PathLike
from typing import Any

from .errors import ErrorCollector, FlowValidationError, Path, SpecError
from .inputs import parse_inputs
from .model import ConcurrencySpec, FlowSpec, TaskSpec
from .tasks import ID_PATTERN, TaskParser, parse_retry
from .triggers import parse_triggers
from .yamlsource import YamlLimits, load_yaml

# Kestra's limits (AbstractFlow): an id of at most 100 characters, a namespace of at most 150.
MAX_FLOW_ID, MAX_NAMESPACE = 100, 150
NAMESPACE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$", re.IGNORECASE)

# Top-level keys Kestra accepts; those Tern does not act on yet give a warning (NOT_ACTED_ON), and
# `listeners`, `sla` and `checks` are kept as written in FlowSpec.extra for the issues that will.
FLOW_KEYS = {
    "id",
    "namespace",
    "revision",
    "description",
    "labels",
    "inputs",
    "variables",
    "tasks",
    "errors",
    "finally",
    "afterExecution",
    "triggers",
    "disabled",
    "outputs",
    "taskDefaults",
    "pluginDefaults",
    "retry",
    # accepted, acted on by later issues
    "listeners",
    "concurrency",
    "sla",
    "deleted",
    "workerGroup",
    "checks",
}

# Accepted keys that change nothing (yet): each gives a warning that says what does not happen. No silent no-op.
NOT_ACTED_ON = {
    "sla": "accepted but not acted on yet: SLAs are not checked",
    "checks": "accepted but not acted on yet: checks are not evaluated before an execution starts",
    "listeners": "accepted but not acted on yet: listeners do not run (Kestra deprecated them for afterExecution)",
    "workerGroup": "accepted but not acted on yet: set `workerGroup` on the tasks to choose their workers",
    "deleted": "accepted but not acted on yet: the flow is not deleted",
    "revision": "accepted but ignored: Tern numbers a flow's revisions itself when it is saved",
}

MAX_ERRORS = 200  # reported for one source; past them the check stops


def load_flow(source: str, limits: YamlLimits | None = None) -> FlowSpec:
    """Parse and check a flow's YAML source."""
    data, lines, yaml_errors = load_yaml(source, limits)
    errors = ErrorCollector(lines=lines, errors=list(yaml_errors), limit=MAX_ERRORS)
    flow = parse_flow(data, errors)
    errors.raise_if_any()
    assert flow is not None
    return flow


def parse_flow(data: Any, errors: ErrorCollector) -> FlowSpec | None:
    if not isinstance(data, dict):
        errors.add((), "a flow must be a YAML map with at least `id`, `namespace` and `tasks`")
        return None
    for key in data:
        if key not in FLOW_KEYS:
            errors.add((key,), "unknown flow property")
        elif key in NOT_ACTED_ON:
            errors.warn((key,), NOT_ACTED_ON[key])
    flow_id = _check_id(data.get("id"), ("id",), errors)
    namespace = data.get("namespace")
    if namespace is None:
        errors.add(("namespace",), "missing namespace")
    elif not isinstance(namespace, str) or not NAMESPACE_PATTERN.match(namespace):
        errors.add(("namespace",), f"'{namespace}' is not a valid namespace (dotted names like `company.team`)")
    elif len(namespace) > MAX_NAMESPACE:
        errors.add(
            ("namespace",), f"'{namespace[:30]}...' is {len(namespace)} characters long: at most {MAX_NAMESPACE}"
        )
    defaults = _task_defaults(data, errors)
    parser = TaskParser(errors, defaults)
    if data.get("tasks") is None:
        errors.add(("tasks",), "missing tasks: a flow needs at least one task")
        tasks: tuple[TaskSpec, ...] = ()
    else:
        tasks = parser.parse_list(data.get("tasks"), ("tasks",))
    flow_errors = parser.parse_list(data.get("errors"), ("errors",), allow_empty=True)
    finally_tasks = parser.parse_list(data.get("finally"), ("finally",), allow_empty=True)
    after_execution = parser.parse_list(data.get("afterExecution"), ("afterExecution",), allow_empty=True)
    extra = {k: data[k] for k in ("listeners", "sla", "checks") if k in data}
    if "listeners" in data:
        extra["listeners"] = _listeners(data["listeners"], parser, errors)
    spec = FlowSpec(
        id=flow_id or "",
        namespace=namespace if isinstance(namespace, str) else "",
        tasks=tasks,
        errors=flow_errors,
        finally_tasks=finally_tasks,
        after_execution=after_execution,
        revision=data.get("revision") if isinstance(data.get("revision"), int) else None,
        description=data.get("description"),
        labels=_labels(data.get("labels"), errors=errors),
        inputs=parse_inputs(data.get("inputs"), ("inputs",), errors) if data.get("inputs") is not None else (),
        variables=_map(data.get("variables"), ("variables",), errors),
        outputs=_outputs(data.get("outputs"), errors),
        triggers=parse_triggers(data.get("triggers"), errors, partial(_labels, errors=errors)),
        disabled=_flag(data.get("disabled"), ("disabled",), errors),
        retry=parse_retry(data["retry"], ("retry",), errors) if data.get("retry") is not None else None,
        task_defaults=tuple(defaults),
        concurrency=_concurrency(data.get("concurrency"), errors),
        extra=extra,
        warnings=tuple(errors.warnings),
    )
    _check_no_self_subflow(spec, errors)
    return spec


SUBFLOW = "io.kestra.plugin.core.flow.Subflow"


def _check_no_self_subflow(spec: FlowSpec, errors: ErrorCollector) -> None:
    """A Subflow that runs its own flow would start executions without end."""
    for task in spec.walk():
        props = task.properties
        if task.type == SUBFLOW and (props.get("namespace"), props.get("flowId")) == (spec.namespace, spec.id):
            errors.add(task.path + ("flowId",), f"a Subflow cannot run its own flow ({spec.namespace}.{spec.id})")


def _listeners(value: Any, parser: TaskParser, errors: ErrorCollector) -> tuple[dict[str, Any], ...]:
    """Kestra's (deprecated) listeners: tasks run after the execution when their conditions hold."""
    if not isinstance(value, list):
        errors.add(("listeners",), "must be a list of {conditions, tasks}")
        return ()
    listeners = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            errors.add(("listeners", i), "a listener must be a map with `tasks`")
            continue
        tasks = parser.parse_list(item.get("tasks"), ("listeners", i, "tasks"))
        listeners.append({"conditions": item.get("conditions") or [], "tasks": tasks})
    return tuple(listeners)


def _check_id(value: Any, path: Path, errors: ErrorCollector) -> str | None:
    if value is None:
        errors.add(path, "missing id")
        return None
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        errors.add(path, f"'{value}' is not a valid id (letters, digits, '-' and '_')")
        return None
    if len(value) > MAX_FLOW_ID:
        errors.add(path, f"'{value[:30]}...' is {len(value)} characters long: at most {MAX_FLOW_ID}")
        return None
    return value


def _map(value: Any, path: Path, errors: ErrorCollector) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.add(path, "must be a map")
        return {}
    return value


# The system labels a flow may carry itself (Kestra's `system.readOnly`: edit only as code).
FLOW_SYSTEM_LABELS = {"system.readOnly"}


def _labels(value: Any, base: Path = ("labels",), *, errors: ErrorCollector) -> dict[str, str]:
    """Labels as a map, or as Kestra's list of {key, value}; the `system.` prefix is reserved."""
    if value is None:
        return {}
    pairs: list[tuple[Any, Any, Path]] = []
    if isinstance(value, dict):
        pairs = [(k, v, base + (k,)) for k, v in value.items()]
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, dict) or "key" not in item or "value" not in item:
                errors.add(base + (i,), "a label must be a map with `key` and `value`")
                continue
            pairs.append((item["key"], item["value"], base + (i,)))
    else:
        errors.add(base, "must be a map of key: value, or a list of {key, value}")
    labels: dict[str, str] = {}
    for key, val, path in pairs:
        key = str(key)
        if key.startswith("system.") and key not in FLOW_SYSTEM_LABELS:
            errors.add(path, f"label '{key}': the `system.` prefix is reserved")
            continue
        labels[key] = val if isinstance(val, str) else _text(val)
    return labels


CONCURRENCY_BEHAVIORS = ("QUEUE", "CANCEL", "FAIL")


def _concurrency(value: Any, errors: ErrorCollector) -> ConcurrencySpec | None:
    """Kestra's `concurrency: {limit, behavior}`: a positive limit, QUEUE by default."""
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.add(("concurrency",), "must be a map with `limit` (and `behavior`)")
        return None
    for key in value:
        if key not in ("limit", "behavior"):
            errors.add(("concurrency", key), "unknown property (concurrency takes `limit` and `behavior`)")
    limit, behavior = value.get("limit"), value.get("behavior", "QUEUE")
    if limit is None:
        errors.add(("concurrency", "limit"), "missing limit: how many executions may run at once")
    elif isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        errors.add(("concurrency", "limit"), f"'{limit}' is not a positive whole number")
        limit = None
    if behavior not in CONCURRENCY_BEHAVIORS:
        errors.add(("concurrency", "behavior"), f"'{behavior}' is not one of {', '.join(CONCURRENCY_BEHAVIORS)}")
        return None
    return ConcurrencySpec(limit, behavior) if limit is not None else None


def _flag(value: Any, path: Path, errors: ErrorCollector) -> bool:
    """A boolean as written; bool("false") would be True."""
    if value is None or isinstance(value, bool):
        return bool(value)
    errors.add(path, f"'{value}' is not a boolean (true or false)")
    return False


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _outputs(value: Any, errors: ErrorCollector) -> tuple[dict[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        errors.add(("outputs",), "must be a list of {id, type, value}")
        return ()
    outputs, seen = [], set()
    for i, item in enumerate(value):
        if not isinstance(item, dict) or "id" not in item:
            errors.add(("outputs", i), "an output needs an `id`, a `type` and a `value`")
            continue
        if not isinstance(item["id"], str):
            errors.add(("outputs", i, "id"), f"'{item['id']}' is not a valid id")
            continue
        if item["id"] in seen:
            errors.add(("outputs", i, "id"), f"duplicate output id '{item['id']}'")
        seen.add(item["id"])
        if "value" not in item:
            errors.add(("outputs", i, "value"), "missing value")
        outputs.append(item)
    return tuple(outputs)


def _task_defaults(data: dict[str, Any], errors: ErrorCollector) -> list[dict[str, Any]]:
    defaults: list[dict[str, Any]] = []
    for key in ("taskDefaults", "pluginDefaults"):
        raw = data.get(key)
        if raw is None:
            continue
        if not isinstance(raw, list):
            errors.add((key,), "must be a list of {type, values}")
            continue
        for i, item in enumerate(raw):
            if not isinstance(item, dict) or not isinstance(item.get("type"), str):
                errors.add((key, i), "needs a `type` and `values`")
                continue
            if not isinstance(item.get("values", {}), dict):
                errors.add((key, i, "values"), "must be a map of property: value")
                continue
            defaults.append(item)
    return defaults


def read_source(path: str | PathLike[str]) -> str:
    """A flow file's text: FlowValidationError if it is not UTF-8 (a binary file), OSError if it cannot be read."""
    with open(path, "rb") as file:
        raw = file.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise FlowValidationError([SpecError((), f"not UTF-8 text (byte {exc.start})", line)]) from None


def check_source(source: str) -> list[str]:
    """Every problem of a flow source as text (empty when valid)."""
    try:
        load_flow(source)
    except FlowValidationError as exc:
        return [str(e) for e in exc.errors]
    return []
