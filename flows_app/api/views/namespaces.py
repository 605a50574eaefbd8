"""Namespaces: every namespace that holds a flow (and the ones above it), with how many flows each holds."""

from __future__ import annotations

from collections import Counter

from django.db.models import Count
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import serializers
from ..errors import not_found
from ..paging import page_of
from .common import access_of
from .flows import visible_flows


def namespace_counts(request) -> dict[str, int]:
    """Each visible namespace, with the flows in it and under it; parents of a flow's namespace included."""
    direct = visible_flows(request).values("namespace").annotate(n=Count("id"))
    counts: Counter[str] = Counter()
    access = access_of(request)
    for row in direct:
        parts = row["namespace"].split(".")
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            if access.allows(name) or depth == len(parts):
                counts[name] += row["n"]
    return dict(counts)


class NamespaceSearchView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("q", str), OpenApiParameter("page", int), OpenApiParameter("size", int)],
        responses={200: serializers.PagedNamespaces},
        operation_id="search_namespaces",
    )
    def get(self, request, **_):
        counts = namespace_counts(request)
        q = (request.query_params.get("q") or "").lower()
        names = sorted(name for name in counts if q in name.lower())
        offset, size = page_of(request.query_params)
        results = [{"id": name, "flowCount": counts[name]} for name in names[offset : offset + size]]
        return Response({"results": results, "total": len(names)})


class NamespaceView(APIView):
    @extend_schema(responses={200: serializers.Namespace}, operation_id="namespace")
    def get(self, request, namespace: str, **_):
        counts = namespace_counts(request)
        if namespace not in counts:
            raise not_found(f"namespace {namespace}")
        return Response({"id": namespace, "flowCount": counts[namespace]})
