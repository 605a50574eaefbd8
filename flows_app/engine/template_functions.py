"""Kestra's template filters, functions and tests, as the tables the templating environment installs."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import random
import re
import unicodedata
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import yaml
from jinja2 import Undefined, pass_context
from jinja2.runtime import Context

from . import javadates, operators, patterns, pebble_runtime
from .pebble_runtime import fail_if_undefined, to_json, to_text

# --- Filters ------------------------------------------------------------------------------------


def filter_conventions(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Pebble filter conventions: an undefined input fails, a null input gives null."""

    @functools.wraps(fn)
    def apply(value: Any, *args: Any, **kwargs: Any) -> Any:
        fail_if_undefined(value)
        return None if value is None else fn(value, *args, **kwargs)

    return apply


def _parse_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _default(value: Any, fallback: Any = "") -> Any:
    """Pebble's default: replaces undefined, null and empty (blank text, empty collection)."""
    return fallback if _is_empty(value) else value


def _is_empty(value: Any) -> bool:
    if isinstance(value, Undefined) or value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, (Mapping, list, tuple, set)) and not value


def _is_json(value: Any) -> bool:
    """Kestra's `is json`: maps and lists are, strings are when they parse."""
    if isinstance(value, (Mapping, list)):
        return True
    if not isinstance(value, str):
        return False
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=256)
def _jsonpath_expr(path: str) -> Any:
    from jsonpath_ng.ext.parser import parse  # imported on first use: most flows never call it

    return parse(path)


def _jsonpath(value: Any, path: str) -> Any:
    """The single value at `path`, the list of values when several match, null when none does."""
    matches = [m.value for m in _jsonpath_expr(path).find(_parse_json(value))]
    return matches[0] if len(matches) == 1 else (matches or None)


_JQ_STEP = re.compile(r"""\.?\[\s*(-?\d+|"[^"]*"|'[^']*')?\s*\]\??|\.([A-Za-z_]\w*|"[^"]*")\??""")


def _jq(value: Any, expression: str) -> list[Any]:
    """Kestra's jq filter for path expressions only (`.a.b`, `.[0]`, `.a[]`): a list of the results."""
    results, pos, expression = [_parse_json(value)], 0, expression.strip()
    if expression == ".":
        return results
    while pos < len(expression):
        step = _JQ_STEP.match(expression, pos)
        if step is None:
            raise ValueError(f"jq expression {expression!r} is not supported: only paths such as .a.b[0] are")
        results = [out for current in results for out in _jq_step(current, *step.groups())]
        pos = step.end()
    return results


def _jq_step(current: Any, index: str | None, name: str | None) -> list[Any]:
    key: Any = (name or index or "").strip("\"'")
    if name is None and index is None:  # `[]`: every element
        return list(current.values() if isinstance(current, Mapping) else current or [])
    if current is None:
        return [None]
    if isinstance(current, list):
        return [current[int(key)] if -len(current) <= int(key) < len(current) else None]
    return [current.get(key)]


def _replace(value: Any, old: Any, new: Any = None, count: int | None = None, regexp: bool = False) -> str:
    """Pebble's replace({'old': 'new'}), Kestra's regexp=true, or Jinja's replace(old, new[, count])."""
    text = to_text(value)
    pairs = old.items() if isinstance(old, Mapping) else [(old, new)]
    for search, replacement in pairs:
        if regexp:
            text = patterns.sub(search, re.sub(r"\$(\d)", r"\\\1", to_text(replacement)), text)
        else:
            text = text.replace(to_text(search), to_text(replacement), -1 if count is None else count)
    return text


def _split(value: Any, delimiter: str, limit: int | None = None) -> list[str]:
    """Split on a literal delimiter; Java's limit counts pieces, not splits."""
    return to_text(value).split(delimiter, -1 if not limit or limit < 0 else limit - 1)


def _slice(value: Any, start: int = 0, end: int | None = None) -> Any:
    return value[int(start) : None if end is None else int(end)]


def _number(value: Any, type: str | None = None) -> int | float:
    text = to_text(value).strip()
    if (type or "").upper() in ("FLOAT", "DOUBLE", "BIGDECIMAL"):
        return float(text)
    try:
        return int(text, 0) if text.lower().startswith(("0x", "-0x")) else int(text)
    except ValueError:
        if (type or "").upper() in ("INT", "LONG", "BIGINTEGER"):
            raise
        return float(text)


def _escape_char(value: Any, type: str) -> Any:
    """Kestra's escapeChar for quoting values inside single, double or shell-quoted strings."""
    quote, escaped = {"single": ("'", "\\'"), "double": ('"', '\\"'), "shell": ("'", "'\\''")}[type.lower()]
    if isinstance(value, Mapping):
        return {k: _escape_char(v, type) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape_char(v, type) for v in value]
    return to_text(value).replace(quote, escaped)


def _indent(value: Any, amount: int, prefix: str = " ", first_line: bool = False) -> str:
    """Kestra's indent (every line but the first) and nindent (a new line, then every line)."""
    text = to_text(value)
    if not text:
        return text
    newline = next((nl for nl in ("\r\n", "\n\r", "\n", "\r") if nl in text), "\n")
    if first_line:
        text = newline + text
    return text.replace(newline, newline + prefix * int(amount))


def _slugify(value: Any) -> str:
    ascii_text = unicodedata.normalize("NFKD", to_text(value)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def _substring(value: Any, separator: str, after: bool, last: bool) -> str:
    """Apache StringUtils.substring{Before,After}[Last] semantics, including a missing separator."""
    text, separator = to_text(value), to_text(separator)
    index = text.rfind(separator) if last else text.find(separator)
    if not separator:
        return "" if (after == last) else text
    if index < 0:
        return "" if after else text
    return text[index + len(separator) :] if after else text[:index]


def _class_name(value: Any) -> str:
    """The Java class Kestra would report for a value."""
    names = {
        bool: "java.lang.Boolean",
        int: "java.lang.Integer",
        float: "java.lang.Double",
        str: "java.lang.String",
        dict: "java.util.LinkedHashMap",
        list: "java.util.ArrayList",
    }
    return names.get(type(value), type(value).__name__)


def _chunk(value: Any, size: int) -> list[list[Any]]:
    items = list(value)
    return [items[i : i + int(size)] for i in range(0, len(items), int(size))]


def _capitalize(value: Any) -> str:
    text = to_text(value)
    return text[:1].upper() + text[1:]


def _title(value: Any) -> str:
    return re.sub(r"(^|\s)(\S)", lambda m: m.group(1) + m.group(2).upper(), to_text(value))


def _length(value: Any) -> int:
    fail_if_undefined(value)
    return 0 if value is None else len(value)


FILTERS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "base64decode": lambda v: base64.b64decode(to_text(v)).decode(),
    "base64encode": lambda v: base64.b64encode(to_text(v).encode()).decode(),
    "capitalize": _capitalize,
    "chunk": _chunk,
    "className": _class_name,
    "date": javadates.format_date,
    "dateAdd": javadates.date_add,
    "distinct": lambda v: list(dict.fromkeys(v)),
    "endsWith": lambda v, suffix: to_text(v).endswith(to_text(suffix)),
    "escapeChar": _escape_char,
    "first": lambda v: next(iter(v), None),
    "flatten": lambda v: [i for item in v for i in (item if isinstance(item, list) else [item])],
    "indent": _indent,
    "join": lambda v, separator="": to_text(separator).join(to_text(i) for i in v),
    "jq": _jq,
    "jsonpath": _jsonpath,
    "keys": lambda v: list(v.keys() if isinstance(v, Mapping) else range(len(v))),
    "last": lambda v: v[-1] if v else None,
    "lower": lambda v: to_text(v).lower(),
    "md5": lambda v: hashlib.md5(to_text(v).encode()).hexdigest(),
    "nindent": functools.partial(_indent, first_line=True),
    "number": _number,
    "replace": _replace,
    "reverse": lambda v: v[::-1] if isinstance(v, str) else list(reversed(list(v))),
    "rsort": lambda v: sorted(v, reverse=True),
    "sha1": lambda v: hashlib.sha1(to_text(v).encode()).hexdigest(),
    "sha256": lambda v: hashlib.sha256(to_text(v).encode()).hexdigest(),
    "sha512": lambda v: hashlib.sha512(to_text(v).encode()).hexdigest(),
    "slice": _slice,
    "slugify": _slugify,
    "sort": lambda v, reverse=False: sorted(v, reverse=reverse),
    "split": _split,
    "startsWith": lambda v, prefix: to_text(v).startswith(to_text(prefix)),
    "substringAfter": lambda v, sep: _substring(v, sep, after=True, last=False),
    "substringAfterLast": lambda v, sep: _substring(v, sep, after=True, last=True),
    "substringBefore": lambda v, sep: _substring(v, sep, after=False, last=False),
    "substringBeforeLast": lambda v, sep: _substring(v, sep, after=False, last=True),
    "timestamp": functools.partial(javadates.epoch, per_second=1),
    "timestampMicro": functools.partial(javadates.epoch, per_second=1_000_000),
    "timestampMilli": functools.partial(javadates.epoch, per_second=1_000),
    "timestampNano": functools.partial(javadates.epoch, per_second=1_000_000_000),
    "title": _title,
    "trim": lambda v: to_text(v).strip(),
    "upper": lambda v: to_text(v).upper(),
    "urldecode": lambda v: urllib.parse.unquote_plus(to_text(v)),
    "urlencode": lambda v: urllib.parse.quote_plus(to_text(v)),
    "values": lambda v: list(v.values()),
    "yaml": lambda v: yaml.safe_dump(v, sort_keys=False, allow_unicode=True),
}
# These decide for themselves what an undefined or null input means.
RAW_FILTERS: dict[str, Callable[..., Any]] = {
    "default": _default,
    "json": to_json,
    "jsonEncode": to_json,
    "toJson": to_json,
    "length": _length,
    "string": to_text,
}


# --- Functions ----------------------------------------------------------------------------------


def _secret(key: str, namespace: str | None = None, subkey: str | None = None) -> str:
    """Kestra's environment secrets: SECRET_<KEY> holds the base64 of the value."""
    encoded = os.environ.get(f"SECRET_{key.upper()}", os.environ.get(f"SECRET_{key}"))
    if encoded is None:
        raise ValueError(f"secret '{key}' is not defined (set the environment variable SECRET_{key.upper()})")
    compact = "".join(encoded.split())
    secret = base64.b64decode(compact + "=" * (-len(compact) % 4)).decode()
    if not subkey:
        return secret
    values = json.loads(secret)
    if subkey not in values:
        raise ValueError(f"cannot find secret sub-key '{subkey}' in secret '{key}'")
    found = values[subkey]
    return found if isinstance(found, str) else to_json(found)


@pass_context
def _current_each_output(context: Context, outputs: Any) -> Any:
    """Kestra's currentEachOutput: the outputs of the current ForEach iteration, walking the parents' values."""
    fail_if_undefined(outputs)
    parents = context.get("parents") or []
    for parent in reversed(list(parents)):
        value = (parent.get("taskrun") or {}).get("value")
        if not isinstance(outputs, Mapping) or outputs.get(value) is None:
            raise ValueError("no outputs for the current task run path")
        outputs = outputs[value]
    return outputs.get(context.resolve("taskrun")["value"])


def _extreme(pick: Callable[..., Any]) -> Callable[..., Any]:
    """Pebble's max/min take several arguments; we also accept a single list."""
    return lambda *args: pick(args[0]) if len(args) == 1 else pick(args)


GLOBALS: dict[str, Any] = {
    "now": javadates.now,
    "json": _parse_json,
    "fromJson": _parse_json,
    "jsonDecode": _parse_json,
    "toJson": to_json,
    "yaml": lambda text: yaml.safe_load(text) if isinstance(text, str) else text,
    "secret": _secret,
    "range": pebble_runtime.pebble_range,
    "max": _extreme(max),
    "min": _extreme(min),
    "randomInt": lambda lower, upper: random.randrange(int(lower), int(upper)),
    "uuid": lambda: str(uuid.uuid4()),
    "currentEachOutput": _current_each_output,
    **pebble_runtime.RUNTIME_GLOBALS,
    **operators.RUNTIME_GLOBALS,
}


def _strict_test(fn: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """Pebble tests on an undefined variable fail (only `is defined` may look at one)."""

    def test(value: Any) -> bool:
        fail_if_undefined(value)
        return fn(value)

    return test


TESTS: dict[str, Callable[..., bool]] = {
    "null": _strict_test(lambda v: v is None),
    "empty": _strict_test(_is_empty),
    "json": _strict_test(_is_json),
    "iterable": _strict_test(lambda v: isinstance(v, (list, tuple, set))),  # Java: strings and maps are not
    "map": _strict_test(lambda v: isinstance(v, Mapping)),
    **pebble_runtime.RUNTIME_TESTS,
}
