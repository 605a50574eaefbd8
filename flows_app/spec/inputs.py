"""The `inputs:` of a flow: typed declarations, checked when the flow is deployed, every mistake reported at once."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ..engine.inputs import InputValueError, coerce_value, parse_typed
from .errors import ErrorCollector, Path
from .model import InputSpec

INPUT_TYPES = frozenset(
    {
        "STRING",
        "INT",
        "FLOAT",
        "BOOLEAN",
        "BOOL",
        "DATETIME",
        "DATE",
        "TIME",
        "DURATION",
        "JSON",
        "YAML",
        "URI",
        "ENUM",
        "SELECT",
        "MULTISELECT",
        "ARRAY",
        "FILE",
        "SECRET",
        "EMAIL",
    }
)
# Items of an ARRAY or MULTISELECT are plain values: no nested lists, no choices, no uploads, no secrets.
ITEM_TYPES = INPUT_TYPES - {"ARRAY", "MULTISELECT", "ENUM", "SELECT", "FILE", "SECRET"}

_ID = re.compile(r"[a-zA-Z0-9][.a-zA-Z0-9_-]*")  # Kestra's pattern for an input id

_COMMON_KEYS = frozenset(
    {"id", "name", "type", "description", "displayName", "required", "defaults", "prefill", "dependsOn"}
)
_TEXT_KEYS = frozenset({"validator", "min", "max", "minLength", "maxLength"})
_CHOICE_KEYS = frozenset({"values", "expression", "allowCustomValue", "autoSelectFirst"})
# The keys each type adds to the common ones; Kestra rejects a key its input class lacks.
_TYPE_KEYS: dict[str, frozenset[str]] = {
    "STRING": _TEXT_KEYS,
    "SECRET": _TEXT_KEYS,
    "EMAIL": frozenset({"validator"}),
    "URI": frozenset({"validator"}),
    "INT": frozenset({"min", "max"}),
    "FLOAT": frozenset({"min", "max"}),
    "DURATION": frozenset({"min", "max"}),
    "DATETIME": frozenset({"after", "before"}),
    "DATE": frozenset({"after", "before"}),
    "TIME": frozenset({"after", "before"}),
    "ENUM": frozenset({"values"}),
    "SELECT": _CHOICE_KEYS | {"isRadio"},
    "MULTISELECT": _CHOICE_KEYS | {"options", "itemType"},
    "ARRAY": frozenset({"itemType"}),
    "FILE": frozenset({"extension", "acceptedExtensions"}),
    "BOOLEAN": frozenset(),
    "BOOL": frozenset(),
    "JSON": frozenset(),
    "YAML": frozenset(),
}
_ALL_KEYS = _COMMON_KEYS.union(*_TYPE_KEYS.values())
# Keys kept as they are in InputSpec.extra, for the UI and the renderer.
_EXTRA_KEYS = ("dependsOn", "prefill", "expression", "autoSelectFirst", "isRadio", "extension", "acceptedExtensions")
# Where min/max come from, per type: STRING's length bounds may be spelt either way.
_BOUND_KEYS = {
    "STRING": (("min", "minLength"), ("max", "maxLength")),
    "SECRET": (("min", "minLength"), ("max", "maxLength")),
    "INT": (("min",), ("max",)),
    "FLOAT": (("min",), ("max",)),
    "DURATION": (("min",), ("max",)),
    "DATETIME": (("after",), ("before",)),
    "DATE": (("after",), ("before",)),
    "TIME": (("after",), ("before",)),
}


def parse_inputs(raw: Any, path: Path, errors: ErrorCollector) -> tuple[InputSpec, ...]:
    """Check the `inputs:` list of a flow and return its inputs; problems go to `errors`."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        errors.add(path, "must be a list of inputs")
        return ()
    specs: list[InputSpec] = []
    first_seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        spec = _parse_input(item, path + (i,), errors)
        if spec is None:
            continue
        if spec.id in first_seen:
            id_key = "id" if "id" in item else "name"
            errors.add(path + (i, id_key), f"duplicate input id '{spec.id}' (also inputs[{first_seen[spec.id]}])")
            continue
        first_seen[spec.id] = i
        specs.append(spec)
    _check_depends_on(raw, specs, path, errors)
    return tuple(specs)


def _parse_input(item: Any, path: Path, errors: ErrorCollector) -> InputSpec | None:
    if not isinstance(item, dict):
        errors.add(path, "an input must be a map with an `id` and a `type`")
        return None
    input_id = _parse_id(item, path, errors)
    type_ = _parse_type(item, path, errors)
    _check_keys(item, type_, path, errors)
    required = _check_kind(item, "required", bool, "true or false", path, errors, default=True)
    description = _check_kind(item, "description", str, "a string", path, errors)
    display_name = _check_kind(item, "displayName", str, "a string", path, errors)
    if input_id is None or type_ is None:
        return None
    low, high = _parse_bounds(item, type_, path, errors)
    spec = InputSpec(
        id=input_id,
        type=type_,
        required=required,
        defaults=item.get("defaults"),
        description=description,
        display_name=display_name,
        validator=_parse_validator(item, path, errors),
        values=_parse_values(item, type_, path, errors),
        item_type=_parse_item_type(item, type_, path, errors),
        min=low,
        max=high,
        allow_custom_value=_check_kind(item, "allowCustomValue", bool, "true or false", path, errors, default=False),
        extra=_parse_extra(item, path, errors),
    )
    _check_defaults(spec, item, path, errors)
    return spec


def _parse_id(item: dict[str, Any], path: Path, errors: ErrorCollector) -> str | None:
    # `name` is how inputs were named before Kestra 0.14; `id` wins when both are there, as in Kestra.
    key = "id" if "id" in item else "name" if "name" in item else None
    if key is None:
        errors.add(path, "an input needs an `id`")
        return None
    value = item[key]
    if not isinstance(value, str) or not _ID.fullmatch(value):
        errors.add(
            path + (key,),
            f"{value!r} is not a valid input id: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit",
        )
        return None
    return value


def _parse_type(item: dict[str, Any], path: Path, errors: ErrorCollector) -> str | None:
    if "type" not in item:
        errors.add(path, f"an input needs a `type`, one of {', '.join(sorted(INPUT_TYPES))}")
        return None
    type_ = item["type"]
    if isinstance(type_, str) and type_ in INPUT_TYPES:
        return type_
    close = difflib.get_close_matches(str(type_).upper(), sorted(INPUT_TYPES), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}?" if close else f"use one of {', '.join(sorted(INPUT_TYPES))}"
    errors.add(path + ("type",), f"unknown input type {type_!r}; {hint}")
    return None


def _check_keys(item: dict[str, Any], type_: str | None, path: Path, errors: ErrorCollector) -> None:
    allowed = _COMMON_KEYS | _TYPE_KEYS[type_] if type_ else _ALL_KEYS
    for key in item:
        if key in allowed:
            continue
        if key in _ALL_KEYS:
            errors.add(path + (key,), f"`{key}` does not apply to an input of type {type_}")
            continue
        close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        errors.add(path + (key,), f"unknown property `{key}`{hint}")


def _check_kind(
    item: dict[str, Any], key: str, kind: type, wanted: str, path: Path, errors: ErrorCollector, default: Any = None
) -> Any:
    value = item.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        errors.add(path + (key,), f"must be {wanted}, not {value!r}")
        return default
    return value


def _parse_extra(item: dict[str, Any], path: Path, errors: ErrorCollector) -> Mapping[str, Any]:
    extra = {k: item[k] for k in _EXTRA_KEYS if k in item}
    accepted = extra.get("acceptedExtensions")
    if accepted is not None and not (isinstance(accepted, list) and all(isinstance(e, str) for e in accepted)):
        errors.add(path + ("acceptedExtensions",), "must be a list of extensions, like [.csv, .txt]")
        del extra["acceptedExtensions"]  # coercion relies on what is kept being well-formed
    return MappingProxyType(extra)


def _parse_validator(item: dict[str, Any], path: Path, errors: ErrorCollector) -> str | None:
    pattern = item.get("validator")
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        errors.add(path + ("validator",), f"must be a regular expression, not {pattern!r}")
        return None
    try:
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as exc:  # `a{4294967296}`, a thousand nested groups
        problem = "groups nested too deeply" if isinstance(exc, RecursionError) else exc
        errors.add(path + ("validator",), f"{pattern!r} is not a valid regular expression: {problem}")
        return None
    return pattern


def _parse_values(item: dict[str, Any], type_: str, path: Path, errors: ErrorCollector) -> tuple[str, ...] | None:
    if type_ not in ("ENUM", "SELECT", "MULTISELECT"):
        return None
    if "values" in item and "options" in item:
        errors.add(path + ("options",), "`options` is the old name of `values`; use `values` only")
    key = "values" if "values" in item else "options" if "options" in item else None
    if key is None:
        if "expression" not in item:  # with an expression, the values are computed when the flow runs
            errors.add(path, f"an input of type {type_} needs `values`")
        return None
    values = item[key]
    if not isinstance(values, list) or not values or not all(_is_scalar(v) for v in values):
        errors.add(path + (key,), "must be a non-empty list of plain values")
        return None
    # Kestra holds the choices as text: `values: [1, 2]` offers "1" and "2".
    return tuple(parse_typed("STRING", v) for v in values)


def _parse_item_type(item: dict[str, Any], type_: str, path: Path, errors: ErrorCollector) -> str | None:
    if type_ not in ("ARRAY", "MULTISELECT"):
        return None
    item_type = item.get("itemType")
    if item_type is None:
        if type_ == "ARRAY":
            errors.add(path, "an input of type ARRAY needs an `itemType`")
        return None
    if not isinstance(item_type, str) or item_type not in ITEM_TYPES:
        errors.add(
            path + ("itemType",), f"`itemType` cannot be {item_type!r}; use one of {', '.join(sorted(ITEM_TYPES))}"
        )
        return None
    return item_type


def _parse_bounds(item: dict[str, Any], type_: str, path: Path, errors: ErrorCollector) -> tuple[Any, Any]:
    if type_ not in _BOUND_KEYS:
        return None, None
    low_keys, high_keys = _BOUND_KEYS[type_]
    return _parse_bound(item, type_, low_keys, path, errors), _parse_bound(item, type_, high_keys, path, errors)


def _parse_bound(item: dict[str, Any], type_: str, keys: tuple[str, ...], path: Path, errors: ErrorCollector) -> Any:
    present = [k for k in keys if item.get(k) is not None]
    if not present:
        return None
    if len(present) > 1:
        errors.add(path + (present[1],), f"`{present[0]}` and `{present[1]}` mean the same; keep one")
    key = present[0]
    value = item[key]
    if type_ in ("STRING", "SECRET"):  # a length
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        errors.add(path + (key,), f"must be a length (a whole number, 0 or more), not {value!r}")
        return None
    try:
        return parse_typed(type_, value)
    except InputValueError as exc:
        errors.add(path + (key,), str(exc))
        return None


def _check_defaults(spec: InputSpec, item: dict[str, Any], path: Path, errors: ErrorCollector) -> None:
    """A default (or prefill) must itself be a valid value, unless it is a template rendered at run time."""
    if "defaults" in item and "prefill" in item:
        errors.add(path + ("prefill",), "`prefill` and `defaults` cannot be used together")
    for key in ("defaults", "prefill"):
        value = item.get(key)
        if value is None or (isinstance(value, str) and "{{" in value):
            continue
        if spec.type == "FILE":
            # Kestra refuses uploads as defaults; only a local file URI makes sense for one.
            if not (isinstance(value, str) and value.startswith("file://")):
                errors.add(path + (key,), f"an input of type FILE only accepts a file URI (file:///path) as `{key}`")
            continue
        try:
            coerce_value(spec, value)
        except InputValueError as exc:
            where = path + (key,) + ((exc.index,) if exc.index is not None else ())
            errors.add(where, exc.redacted() if spec.type == "SECRET" else str(exc))


def _check_depends_on(raw: list[Any], specs: list[InputSpec], path: Path, errors: ErrorCollector) -> None:
    """`dependsOn.inputs` may only name other inputs of the same flow."""
    known = {spec.id for spec in specs}
    for i, item in enumerate(raw):
        depends_on = item.get("dependsOn") if isinstance(item, dict) else None
        if depends_on is None:
            continue
        here = path + (i, "dependsOn")
        if not isinstance(depends_on, dict) or not isinstance(depends_on.get("inputs", []), list):
            errors.add(here, "must be a map with `inputs` (a list of input ids) and an optional `condition`")
            continue
        for j, other in enumerate(depends_on.get("inputs", [])):
            if not isinstance(other, str) or other not in known or other == item.get("id", item.get("name")):
                errors.add(here + ("inputs", j), f"{other!r} is not another input of this flow")


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))
