"""Search parameters, Kestra's two spellings: `filters[field][OPERATION]=value` (Kestra 1.x, what kestrapy
sends; `filters[labels][EQUALS][team]=data` for a label) and the plain ones of Kestra 0.x (`q=`,
`namespace=`, `flowId=`, `state=`, `labels=team:data`, `startDate=`, `endDate=`).

Each resource maps the fields it understands to a function building a Q; an unknown field or operation is
a 400 that names the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from flows_app.spec.durations import DurationError, parse_duration

from .errors import ApiError

_FILTER = re.compile(r"filters\[(?P<field>[A-Za-z_]+)\]\[(?P<op>[A-Z_]+)\](?:\[(?P<key>[^\]]*)\])?")
LEGACY = {"q": "q", "namespace": "namespace", "flowId": "flowId", "state": "state", "labels": "labels"}


@dataclass(frozen=True)
class Condition:
    field: str
    op: str  # EQUALS, NOT_EQUALS, IN, NOT_IN, PREFIX, STARTS_WITH, CONTAINS, ... (Kestra's QueryFilter.Op)
    value: str
    key: str | None = None  # the label key of a labels filter
    param: str = ""  # the parameter it came from, for errors

    def values(self) -> list[str]:
        return [v for v in self.value.split(",") if v] if self.op in ("IN", "NOT_IN") else [self.value]


Builder = Callable[[Condition], Q]


def conditions(params) -> list[Condition]:
    """Every filter of a query string (a QueryDict), in both spellings."""
    found = []
    for name, values in params.lists():
        match = _FILTER.fullmatch(name)
        if match:
            for value in values:
                found.append(Condition(match["field"], match["op"], value, match["key"], name))
        elif name in LEGACY:
            for value in values:
                found += _legacy(name, value)
        elif name in ("startDate", "endDate", "timeRange", "minLevel", "level"):
            for value in values:
                op = {"startDate": "GREATER_THAN_OR_EQUAL_TO", "endDate": "LESS_THAN_OR_EQUAL_TO"}.get(name, "EQUALS")
                field = "level" if name == "minLevel" else name
                found.append(Condition(field, op, value, param=name))
        elif name.startswith("filters["):
            raise ApiError(
                f"{name}: not a filter (`filters[field][OPERATION]=value`)", [{"path": name, "message": "?"}]
            )
    return found


def _legacy(name: str, value: str) -> list[Condition]:
    if name == "labels":
        key, _, label_value = value.partition(":")
        return [Condition("labels", "EQUALS", label_value, key, name)]
    if name == "state":
        return [Condition("state", "IN", value, param=name)]
    if name == "namespace":
        return [Condition("namespace", "PREFIX", value, param=name)]
    return [Condition(LEGACY[name], "EQUALS", value, param=name)]


def build(conds: list[Condition], fields: Mapping[str, Builder]) -> Q:
    """AND of every condition, each by its field's builder."""
    q = Q()
    for cond in conds:
        builder = fields.get(cond.field)
        if builder is None:
            known = ", ".join(sorted(fields))
            raise ApiError(
                f"{cond.param or cond.field}: cannot filter on `{cond.field}` here (one of {known})",
                [{"path": cond.param or cond.field, "message": f"one of {known}"}],
            )
        q &= builder(cond)
    return q


def unsupported(cond: Condition) -> ApiError:
    return ApiError(
        f"{cond.param}: the operation {cond.op} does not apply to `{cond.field}`",
        [{"path": cond.param, "message": f"{cond.op} does not apply"}],
    )


def text(column: str) -> Builder:
    """A text column: EQUALS, NOT_EQUALS, IN, NOT_IN, PREFIX, STARTS_WITH, ENDS_WITH, CONTAINS, NOT_CONTAINS."""

    def q(cond: Condition) -> Q:
        value = cond.value
        match cond.op:
            case "EQUALS":
                return Q(**{column: value})
            case "NOT_EQUALS":
                return ~Q(**{column: value})
            case "IN":
                return Q(**{f"{column}__in": cond.values()})
            case "NOT_IN":
                return ~Q(**{f"{column}__in": cond.values()})
            case "STARTS_WITH":
                return Q(**{f"{column}__startswith": value})
            case "ENDS_WITH":
                return Q(**{f"{column}__endswith": value})
            case "CONTAINS":
                return Q(**{f"{column}__contains": value})
            case "NOT_CONTAINS":
                return ~Q(**{f"{column}__contains": value})
            case "PREFIX":  # a namespace and the ones under it
                return Q(**{column: value}) | Q(**{f"{column}__startswith": value + "."})
        raise unsupported(cond)

    return q


def free_text(*columns: str) -> Builder:
    """`q`: any of the columns contains the text, case-insensitively."""

    def q(cond: Condition) -> Q:
        found = Q()
        for column in columns:
            found |= Q(**{f"{column}__icontains": cond.value})
        return found

    return q


def labels(column: str) -> Builder:
    """A JSON map of labels: `filters[labels][EQUALS][key]=value` (or NOT_EQUALS)."""

    def q(cond: Condition) -> Q:
        if not cond.key:
            raise ApiError(
                f"{cond.param}: a labels filter names its key (`filters[labels][EQUALS][team]=data`)",
                [{"path": cond.param, "message": "the label key is missing"}],
            )
        match = Q(**{f"{column}__{cond.key}": cond.value}) if _plain_key(cond.key) else Q(pk__in=[])
        if cond.op == "EQUALS":
            return match
        if cond.op == "NOT_EQUALS":
            return ~match
        raise unsupported(cond)

    return q


def _plain_key(key: str) -> bool:
    # A key the ORM's JSON lookup reads as one key (not `a__b`, a path), within Kestra's label key syntax.
    return bool(re.fullmatch(r"[A-Za-z0-9_.\-]{1,128}", key)) and "__" not in key


def moment(column: str) -> Builder:
    """A date-time column: GREATER_THAN(_OR_EQUAL_TO), LESS_THAN(_OR_EQUAL_TO), EQUALS; ISO 8601 values."""

    def q(cond: Condition) -> Q:
        when = _datetime(cond)
        lookup = {
            "GREATER_THAN": "gt",
            "GREATER_THAN_OR_EQUAL_TO": "gte",
            "LESS_THAN": "lt",
            "LESS_THAN_OR_EQUAL_TO": "lte",
            "EQUALS": "exact",
        }.get(cond.op)
        if lookup is None:
            raise unsupported(cond)
        return Q(**{f"{column}__{lookup}": when})

    return q


def time_range(column: str) -> Builder:
    """`timeRange=PT24H`: since that long ago."""

    def q(cond: Condition) -> Q:
        try:
            span = parse_duration(cond.value)
        except DurationError:
            raise ApiError(
                f"{cond.param}: '{cond.value[:40]}' is not a duration (like PT24H)",
                [{"path": cond.param, "message": "not a duration"}],
            ) from None
        if span > timedelta(days=36500):
            span = timedelta(days=36500)
        return Q(**{f"{column}__gte": timezone.now() - span})

    return q


def _datetime(cond: Condition) -> datetime:
    value = cond.value.strip().replace(" ", "+")  # a `+01:00` offset arrives as a space when not encoded
    try:
        when = parse_datetime(value)
    except ValueError:
        when = None
    if when is None:
        raise ApiError(
            f"{cond.param}: '{cond.value[:40]}' is not an ISO 8601 date-time",
            [{"path": cond.param, "message": "not a date-time"}],
        )
    return when if when.tzinfo else when.replace(tzinfo=UTC)
