"""Turn the values given to a new execution into typed, JSON-safe inputs checked against the flow's declarations."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from urllib.parse import urlsplit

import yaml

from ..spec.durations import DurationError, format_duration, parse_duration
from ..spec.model import InputSpec
from ..spec.yamlsource import load_plain_yaml
from . import patterns

StoreFile = Callable[[str, Any], str]


@dataclass(frozen=True)
class Upload:
    """A file sent with a request, read in chunks as it is stored (Django's UploadedFile gives both)."""

    name: str
    chunks: Callable[[], Iterable[bytes]]


# Types whose value is free text, so `validator` and length bounds apply.
TEXT_TYPES = frozenset({"STRING", "SECRET", "EMAIL", "URI"})
# An empty web-form field or `--input x=` means "no value", except where "" is itself a value.
_BLANK_IS_A_VALUE = frozenset({"STRING", "SECRET"})

# re.ASCII: Python's \d also matches other scripts' digits, which int() would accept.
_INT = re.compile(r"[+-]?\d+", re.ASCII)
_FLOAT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", re.ASCII)  # a date-time has both parts
_URI = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:\S+")
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


class InputsError(ValueError):
    """Every problem with the inputs of one execution, each line naming its input."""

    def __init__(self, errors: Sequence[str]):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


class InputValueError(ValueError):
    """One value is not valid for its input; `index` names the offending item of a list."""

    def __init__(self, value: Any, problem: str, index: int | None = None):
        self.value, self.problem, self.index = value, problem, index
        super().__init__(f"{_show(value)} {problem}")

    def redacted(self) -> str:
        """The message without the value, for SECRET inputs."""
        return f"the value {self.problem}"


def coerce_inputs(
    specs: Sequence[InputSpec],
    given: Mapping[str, Any],
    *,
    store_file: StoreFile | None = None,
    render: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Return {input id: typed value} for every declared input; raise InputsError listing all problems.

    Undeclared keys of `given` are ignored, as Kestra does. `store_file(input_id, path_or_bytes)`
    puts a FILE input in storage and returns its URI; `render` evaluates a templated default.
    """
    result: dict[str, Any] = {}
    problems: list[str] = []
    for spec in specs:
        value = given.get(spec.id)
        if value == "" and spec.type not in _BLANK_IS_A_VALUE:
            value = None
        if value is None:
            value = _default_of(spec, render)
        if value is None:
            if spec.required:
                problems.append(f"inputs.{spec.id}: required input is missing")
            else:
                result[spec.id] = None
            continue
        try:
            _within_size(spec, value)
            result[spec.id] = coerce_value(spec, value, store_file=store_file)
        except InputValueError as exc:
            where = f"inputs.{spec.id}" + (f"[{exc.index}]" if exc.index is not None else "")
            problems.append(f"{where}: {exc.redacted() if spec.type == 'SECRET' else exc}")
    if problems:
        raise InputsError(problems)
    return result


MAX_CHARS = 1_000_000  # TERN_INPUT_MAX_CHARS: one value as given (a STRING, a JSON); files have their own limit


def configure(max_chars: int) -> None:
    global MAX_CHARS
    MAX_CHARS = max_chars


def _within_size(spec: InputSpec, value: Any) -> None:
    """Refuse a value too big to be an input (a FILE's size is the upload's limit)."""
    if spec.type == "FILE" or isinstance(value, (bytes, bytearray, Upload)):
        return
    try:
        size = len(value) if isinstance(value, str) else len(json.dumps(value, default=str))
    except (TypeError, ValueError, RecursionError):  # no JSON at all: its coercion says what is wrong
        return
    if size > MAX_CHARS:
        raise InputValueError(
            value, f"is {size:,} characters long, more than the {MAX_CHARS:,} of an input value (TERN_INPUT_MAX_CHARS)"
        )


def _default_of(spec: InputSpec, render: Callable[[str], Any] | None) -> Any:
    default = spec.defaults
    if render is not None and isinstance(default, str) and "{{" in default:
        return render(default)
    return default


def coerce_value(spec: InputSpec, value: Any, *, store_file: StoreFile | None = None) -> Any:
    """One value for one input, typed and checked against the input's rules; raise InputValueError."""
    if spec.type == "FILE":
        return _to_file(spec, value, store_file)
    if spec.type in ("ENUM", "SELECT"):
        return _choose(spec, value)
    if spec.type == "MULTISELECT":
        return _each(_to_list(value), lambda item: _as_item(spec.item_type, _choose(spec, item)))
    if spec.type == "ARRAY":
        return _each(_to_list(value), lambda item: _as_item(spec.item_type, item))
    typed = parse_typed(spec.type, value)
    _check_rules(spec, typed, value)
    return typed


def parse_typed(type_: str, value: Any) -> Any:
    """Convert `value` to the JSON form of a plain type (no validator, bounds or choices)."""
    return _PARSERS[type_](value)


def _each(items: list[Any], convert: Callable[[Any], Any]) -> list[Any]:
    """Convert every item; an error names the item's index."""
    converted = []
    for index, item in enumerate(items):
        try:
            converted.append(convert(item))
        except InputValueError as exc:
            raise InputValueError(item, exc.problem, index) from None
    return converted


def _as_item(item_type: str | None, item: Any) -> Any:
    return item if item_type is None else parse_typed(item_type, item)


# --- plain types -------------------------------------------------------------------------------


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):  # as Kestra prints it, and before int: bool is an int in Python
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    raise InputValueError(value, "is not a string")


def _to_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        try:
            return int(value)
        except ValueError:  # more digits than sys.get_int_max_str_digits()
            raise InputValueError(value, "has too many digits") from None
    raise InputValueError(value, "is not an integer")


def _to_float(value: Any) -> float:
    if (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
        isinstance(value, str) and _FLOAT.fullmatch(value.strip())
    ):
        number = float(value)
    else:
        raise InputValueError(value, "is not a number")
    if number != number or number in (float("inf"), float("-inf")):  # not storable as JSON
        raise InputValueError(value, "is not a finite number")
    return number


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    # Only true/false: Java's Boolean.valueOf would quietly turn "yes" or "1" into false.
    text = value.strip().lower() if isinstance(value, str) else None
    if text in ("true", "false"):
        return text == "true"
    raise InputValueError(value, "is not a boolean (true or false)")


def _to_datetime(value: Any) -> str:
    moment = value if isinstance(value, datetime) else None
    if isinstance(value, str) and _DATETIME.match(value.strip()):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
    if moment is None:
        raise InputValueError(value, "is not a date-time (like 2024-01-31T09:30:00Z)")
    # A date-time without an offset is taken as UTC, the zone Kestra's Instant lives in.
    try:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-05:00 is in the year 10000 in UTC
        raise InputValueError(value, "is out of range once in UTC") from None
    return moment.isoformat().replace("+00:00", "Z")


def _to_date(value: Any) -> str:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise InputValueError(value, "is not a date (like 2024-01-31)")


def _to_time(value: Any) -> str:
    moment = value if isinstance(value, time) else None
    if isinstance(value, str):
        try:
            moment = time.fromisoformat(value.strip())
        except ValueError:
            pass
    if moment is None:
        raise InputValueError(value, "is not a time (like 09:30:00)")
    if moment.tzinfo is not None:
        raise InputValueError(value, "has a time zone; a TIME input is a local time (like 09:30:00)")
    return moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")


def _to_duration(value: Any) -> str:
    try:
        return format_duration(parse_duration(value))
    except DurationError:
        raise InputValueError(value, "is not a duration (like PT15M or 15m)") from None


def _to_json(value: Any) -> Any:
    if not isinstance(value, str):
        return _json_safe(value, value)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise InputValueError(value, f"is not valid JSON: {exc.msg}") from None
    except (ValueError, RecursionError):  # a number of 5000 digits, a thousand nested lists
        raise InputValueError(value, "is not valid JSON: too large or too deeply nested") from None
    return _json_safe(parsed, value)


def _to_yaml(value: Any) -> Any:
    if not isinstance(value, str):
        return _json_safe(_dates_as_text(value), value)
    try:
        parsed = load_plain_yaml(value)
    except yaml.YAMLError as exc:  # also an alias bomb, or nesting past the flow loader's limits
        raise InputValueError(value, f"is not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    except ValueError:  # a date such as 2024-02-30, a number of 5000 digits
        raise InputValueError(value, "is not valid YAML: a value out of range") from None
    return _json_safe(_dates_as_text(parsed), value)


def _dates_as_text(value: Any) -> Any:
    """YAML reads `2024-01-31` as a date; the execution stores JSON, so dates become ISO text."""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k if isinstance(k, str) else _to_text(k): _dates_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dates_as_text(v) for v in value]
    return value


def _json_safe(value: Any, given: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):  # NaN, Infinity, a Python object from an API caller
        raise InputValueError(given, "cannot be stored as JSON") from None
    return value


def _to_uri(value: Any) -> str:
    text = _to_text(value).strip()
    try:
        valid = bool(_URI.fullmatch(text)) and bool(urlsplit(text).scheme)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        valid = False
    if not valid:
        raise InputValueError(value, "is not a URI with a scheme (like https://example.com/x)")
    return text


def _to_email(value: Any) -> str:
    text = _to_text(value).strip()
    if not _EMAIL.fullmatch(text):
        raise InputValueError(value, "is not an email address")
    return text


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "STRING": _to_text,
    "SECRET": _to_text,
    "EMAIL": _to_email,
    "URI": _to_uri,
    "INT": _to_int,
    "FLOAT": _to_float,
    "BOOLEAN": _to_bool,
    "BOOL": _to_bool,
    "DATETIME": _to_datetime,
    "DATE": _to_date,
    "TIME": _to_time,
    "DURATION": _to_duration,
    "JSON": _to_json,
    "YAML": _to_yaml,
}


# --- types with more than a value ----------------------------------------------------------------


def _choose(spec: InputSpec, value: Any) -> str:
    text = _to_text(value)
    # No `values` means they come from an `expression` rendered elsewhere, so any text may do.
    if spec.values is None or spec.allow_custom_value or text in spec.values:
        return text
    raise InputValueError(value, "is not one of " + ", ".join(repr(v) for v in spec.values))


def _to_list(value: Any) -> list[Any]:
    if isinstance(value, str):  # a CLI or form sends the list as JSON text
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            pass
    if isinstance(value, (list, tuple)):
        return list(value)
    raise InputValueError(value, 'is not a list (like ["a", "b"])')


def _to_file(spec: InputSpec, value: Any, store_file: StoreFile | None) -> str:
    if isinstance(value, str) and value.startswith("kestra://"):
        return value  # already in internal storage, e.g. passed on by a parent flow
    if not isinstance(value, (str, bytes, bytearray, Upload)):
        raise InputValueError(value, "is not a file path")
    _check_extension(spec, value)
    if store_file is None:
        if not isinstance(value, str):
            raise InputValueError(value, "is file content, but there is no file storage to put it in")
        return value
    if isinstance(value, str) and value.startswith("file://"):
        try:
            value = urlsplit(value).path
        except ValueError:  # e.g. an unclosed IPv6 bracket
            raise InputValueError(value, "is not a file URI (like file:///tmp/data.csv)") from None
    try:
        return store_file(spec.id, value)
    except OSError as exc:
        raise InputValueError(value, f"cannot be read: {exc.strerror or exc}") from None


def _check_extension(spec: InputSpec, value: Any) -> None:
    accepted = spec.extra.get("acceptedExtensions")
    name = value.name if isinstance(value, Upload) else value
    if not accepted or not isinstance(name, str):
        return  # raw bytes carry no file name to check
    if not any(name.lower().endswith(ext.lower()) for ext in accepted):
        raise InputValueError(value, "does not have one of the extensions " + ", ".join(accepted))


# --- rules -----------------------------------------------------------------------------------


def _same(value: Any) -> Any:
    return value


# type -> (key of the value, key of the bound, message when too low, message when too high)
_LENGTH = (len, _same, "is shorter than {} characters", "is longer than {} characters")
_SIZE = (_same, _same, "is less than the minimum {}", "is more than the maximum {}")
_BOUNDS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any], str, str]] = {
    "STRING": _LENGTH,
    "SECRET": _LENGTH,
    "INT": _SIZE,
    "FLOAT": _SIZE,
    "DURATION": (parse_duration, parse_duration, "is shorter than the minimum {}", "is longer than the maximum {}"),
    "DATETIME": (datetime.fromisoformat, datetime.fromisoformat, "is before {}", "is after {}"),
    "DATE": (date.fromisoformat, date.fromisoformat, "is before {}", "is after {}"),
    "TIME": (time.fromisoformat, time.fromisoformat, "is before {}", "is after {}"),
}


def _check_rules(spec: InputSpec, typed: Any, given: Any) -> None:
    """Check the typed value; errors show the value as given, which is what the user wrote."""
    if spec.validator is not None and spec.type in TEXT_TYPES:
        try:
            matched = patterns.fullmatch(spec.validator, typed)
        except ValueError as exc:  # a pattern that is not one, or that runs past its time
            raise InputValueError(given, str(exc)) from None
        if not matched:
            raise InputValueError(given, f"does not match the pattern `{spec.validator}`")
    if spec.type not in _BOUNDS:
        return
    value_key, bound_key, too_low, too_high = _BOUNDS[spec.type]
    if spec.min is not None and value_key(typed) < bound_key(spec.min):
        raise InputValueError(given, too_low.format(spec.min))
    if spec.max is not None and value_key(typed) > bound_key(spec.max):
        raise InputValueError(given, too_high.format(spec.max))


def _show(value: Any) -> str:
    try:
        text = repr(value) if isinstance(value, (str, bytes, bytearray)) else json.dumps(value, default=str)
    except (TypeError, ValueError, RecursionError):  # a key JSON cannot hold, deep nesting, a 5000-digit int
        text = f"this {type(value).__name__}"
    return text if len(text) <= 80 else text[:77] + "..."
