"""Kestra's paging: `page` (from 1) and `size`, `sort=field:asc|desc`; answers `{"results": [...], "total": N}`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import ApiError

MAX_SIZE = 1000


def _positive(params: Mapping[str, str], name: str, default: int, most: int | None = None) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(f"{name}: '{raw[:40]}' is not a positive whole number", [{"path": name, "message": "positive"}])
    value = int(raw)
    if most is not None and value > most:
        raise ApiError(f"{name}: at most {most}", [{"path": name, "message": f"at most {most}"}])
    return value


def page_of(params: Mapping[str, str], default_size: int = 10) -> tuple[int, int]:
    """(offset, size) from the `page` and `size` parameters."""
    size = _positive(params, "size", default_size, MAX_SIZE)
    page = _positive(params, "page", 1, 10**9)
    return (page - 1) * size, size


def ordering(values: Sequence[str], fields: Mapping[str, str], default: Sequence[str]) -> list[str]:
    """`sort=id:asc` values as ORM ordering, by the API field → model field map; a bad one is a 400."""
    order = []
    for value in values:
        name, _, direction = value.partition(":")
        direction = direction.lower() or "asc"
        if name not in fields or direction not in ("asc", "desc"):
            known = ", ".join(sorted(fields))
            raise ApiError(
                f"sort: '{value[:60]}' is not `field:asc` or `field:desc` with a field of {known}",
                [{"path": "sort", "message": f"one of {known}, then :asc or :desc"}],
            )
        order.append(("-" if direction == "desc" else "") + fields[name])
    return order or list(default)


def paged(queryset, params, show: Callable[[Any], dict[str, Any]], default_size: int = 10) -> dict[str, Any]:
    offset, size = page_of(params, default_size)
    total = queryset.count()
    rows = list(queryset[offset : offset + size]) if offset < total else []
    return {"results": [show(row) for row in rows], "total": total}
