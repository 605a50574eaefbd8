"""Secrets never reach the logs: every value of a SECRET_* environment variable (and any value a task
registers) is masked, as written and in the disguises templates and scripts commonly give it.

A disguise is the value upper- or lower-cased (any case is matched), base64-encoded (standard or URL-safe,
padded or not), URL-encoded (`quote`, `quote_plus`), JSON-escaped, or hex-encoded. Base64 depends on where
the value sits in the text encoded with it: the value alone is masked whole; inside a longer text (`user:pw`
encoded for Basic auth) the characters that depend on the value only are masked, and up to three at each
end, which mix in the neighbouring bytes, stay visible. A value cut in pieces, hashed or encoded otherwise
is not recognised.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "******"
MIN_LENGTH = 3  # shorter values would mask ordinary text
MIN_BASE64_PART = 6  # the base64 of a value inside a longer text: shorter parts would mask ordinary text


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The decoded values of SECRET_* variables, each of their lines and the texts inside a JSON secret
    (what `secret(key, subkey)` returns), with their disguises, longest first."""
    found: list[str] = []
    for name, encoded in (os.environ if environ is None else environ).items():
        if not name.startswith("SECRET_"):
            continue
        value = _decoded(encoded)
        if value is not None:
            found.extend((value, *_json_texts(value)))
    return with_disguises(found)


def with_disguises(values: Iterable[str], known: Iterable[str] = ()) -> list[str]:
    """`values` (and each of their lines) with their disguises, added to `known` (already disguised), longest
    first: the order `mask` needs. Values under MIN_LENGTH characters, blanks aside, are left out."""
    found = set(known)
    for value in values:
        for candidate in (value, *value.splitlines()):
            if len(candidate.strip()) >= MIN_LENGTH:
                found.update(disguises(candidate))
    return sorted(found, key=lambda v: (-len(v), v))


def disguises(value: str) -> set[str]:
    """The value and the forms it commonly takes on its way to a log line (case aside: `mask` ignores it)."""
    data = value.encode("utf-8")
    found = {
        value,
        value.upper(),  # case-insensitive matching misses the ones that change length ("ß" -> "SS")
        value.lower(),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        urllib.parse.quote(value),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        data.hex(),
    }
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(data).decode("ascii")
        found.update((whole, whole.rstrip("=")))
        found.update(part for part in _base64_parts(data, encode) if len(part) >= MIN_BASE64_PART)
    return found


def _base64_parts(data: bytes, encode: Any) -> list[str]:
    """The base64 characters that depend on `data` only, when it starts 0, 1 or 2 bytes into a 3-byte group
    of a longer text: the characters before and after mix in the neighbouring bytes."""
    parts = []
    for shift, skip in ((0, 0), (1, 2), (2, 3)):  # bytes before `data` in its group, characters they touch
        encoded = encode(b"\0" * shift + data).decode("ascii")
        parts.append(encoded[skip : (8 * (shift + len(data))) // 6])
    return parts


def _decoded(encoded: str) -> str | None:
    """Read as `secret()` reads it: blanks dropped (`base64` wraps its lines), padding optional."""
    compact = "".join(encoded.split())
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def _json_texts(value: str) -> list[str]:
    """The texts inside a JSON object secret, each a secret of its own."""
    if not value.lstrip().startswith("{"):
        return []
    try:
        parsed = json.loads(value)
    except ValueError:
        return []
    texts: list[str] = []
    pending = [parsed]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return texts


def mask(text: str, values: list[str]) -> str:
    """`text` with each of `values` (longest first, as `secret_values` gives them), in any case, masked."""
    if not values:
        return text
    folded, any_case = _patterns(tuple(values))
    key = text.casefold()
    if len(key) != len(text):  # a letter folds to two ("ß" -> "ss"): positions in `key` are not in `text`
        return any_case.sub(MASK, text)
    pieces: list[str] = []
    last = 0
    for found in folded.finditer(key):
        pieces += (text[last : found.start()], MASK)
        last = found.end()
    return "".join((*pieces, text[last:])) if pieces else text


@functools.lru_cache(maxsize=256)  # one per set of values: a sink's, and one more per value a task registers
def _patterns(values: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """One alternation for all values, longest first, so a log line is scanned once: over case-folded text
    (fast), and ignoring case (many times slower, for the rare text whose folding changes its length)."""

    def alternation(texts: Iterable[str]) -> str:
        return "|".join(re.escape(t) for t in sorted(set(texts), key=lambda t: (-len(t), t)) if t) or "(?!)"

    return re.compile(alternation(v.casefold() for v in values)), re.compile(alternation(values), re.IGNORECASE)


def mask_value(value: Any, values: list[str]) -> Any:
    """`mask` through JSON-like data: strings in dicts and lists, keys included."""
    if not values:
        return value
    if isinstance(value, str):
        return mask(value, values)
    if isinstance(value, dict):
        return {mask_value(k, values): mask_value(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v, values) for v in value]
    return value
