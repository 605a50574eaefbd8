"""`/health` (no credentials: for load balancers and orchestrators) and `/metrics` (Prometheus text)."""

from __future__ import annotations

from collections.abc import Iterator

from django.db import connection
from django.db.models import Count
from django.http import HttpResponse, JsonResponse
from drf_spectacular.utils import OpenApiTypes, extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from flows_app import live
from flows_app.models import Execution, TaskRun

from .common import access_of


def _database() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


def _redis_up() -> bool:
    try:
        return bool(live.redis().ping())
    except Exception:
        return False


def _workers(timeout: float = 1.0, limit: int | None = None) -> int:
    """How many workers answer a ping within `timeout` (stop at `limit` answers)."""
    from orchestrator.celery import app

    try:
        replies = app.control.ping(timeout=timeout, limit=limit) or []
    except Exception:
        return 0
    return len(replies)


class HealthView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT}, operation_id="health", auth=[])
    def get(self, request, **_):
        """UP when the database and Redis answer and at least one worker does; else 503, naming what is down."""
        database = _database()
        redis = _redis_up()
        workers = _workers(limit=1) if redis else 0
        checks = {
            "database": "UP" if database else "DOWN",
            "redis": "UP" if redis else "DOWN",
            "workers": "UP" if workers else "DOWN",
        }
        up = database and redis and workers > 0
        return JsonResponse({"status": "UP" if up else "DOWN", "checks": checks}, status=200 if up else 503)


class TernCollector:
    """Read at each scrape: from the database, Redis and the workers (nothing is kept in this process, so
    any web process answers the same)."""

    def __init__(self, namespaces_q):
        self.namespaces_q = namespaces_q

    def collect(self) -> Iterator[GaugeMetricFamily]:
        executions = GaugeMetricFamily(
            "tern_executions", "Executions by namespace, flow and state", labels=["namespace", "flow_id", "state"]
        )
        rows = (
            Execution.objects.filter(self.namespaces_q("flow__namespace"))
            .values("flow__namespace", "flow__flow_id", "state")
            .annotate(n=Count("id"))
        )
        for row in rows:
            executions.add_metric([row["flow__namespace"], row["flow__flow_id"], row["state"]], row["n"])
        yield executions

        durations = GaugeMetricFamily(
            "tern_task_run_duration_seconds",
            "Durations of the last 1000 ended task runs, by quantile",
            labels=["quantile"],
        )
        ended = list(
            TaskRun.objects.filter(ended_at__isnull=False, started_at__isnull=False)
            .filter(self.namespaces_q("execution__flow__namespace"))
            .order_by("-ended_at")
            .values_list("started_at", "ended_at")[:1000]
        )
        spans = sorted((end - start).total_seconds() for start, end in ended)
        for quantile in (0.5, 0.9, 0.95, 0.99):
            if spans:
                durations.add_metric([str(quantile)], spans[min(len(spans) - 1, int(quantile * len(spans)))])
        yield durations

        depth = GaugeMetricFamily("tern_queue_depth", "Messages waiting in each Celery queue", labels=["queue"])
        workers = GaugeMetricFamily("tern_workers_alive", "Workers that answered a ping within a second")
        try:
            redis = live.redis()
            for key in redis.scan_iter(match="tern*", count=1000):
                if redis.type(key) == b"list":
                    depth.add_metric([key.decode()], redis.llen(key))
            workers.add_metric([], _workers())
        except Exception:
            workers.add_metric([], 0)
        yield depth
        yield workers


class MetricsView(APIView):
    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR}, operation_id="metrics")
    def get(self, request, **_):
        """Prometheus text: executions by state and flow (those one may see), task run durations, queue
        depth per queue, workers alive."""
        registry = CollectorRegistry()
        registry.register(TernCollector(access_of(request).namespaces_q))
        return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
