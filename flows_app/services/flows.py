"""Saving flows: each new source is a new revision; the same source twice is not."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from django.db import transaction
from django.db.models import F

from flows_app.models import Flow, FlowRevision
from flows_app.spec.flow import load_flow
from flows_app.spec.model import FlowSpec


@dataclass(frozen=True)
class Saved:
    flow: Flow
    revision: FlowRevision
    created: bool  # a new revision was written


def save_flow(source: str) -> Saved:
    """Validate `source` (FlowValidationError if it is not a valid flow) and store it as the latest revision."""
    spec = load_flow(source)
    checksum = FlowRevision.checksum_of(source)
    with transaction.atomic():
        flow, _ = Flow.objects.select_for_update().get_or_create(
            namespace=spec.namespace, flow_id=spec.id, defaults={"source": source, "revision": 0}
        )
        latest = flow.revisions.order_by("-revision").first()
        if latest is not None and latest.checksum == checksum:
            return Saved(flow, latest, created=False)
        number = (latest.revision if latest else 0) + 1
        revision = FlowRevision.objects.create(flow=flow, revision=number, source=source, checksum=checksum)
        flow.revision, flow.source = number, source
        flow.disabled, flow.description = spec.disabled, spec.description or ""
        flow.labels = dict(spec.labels)
        flow.save(update_fields=["revision", "source", "disabled", "description", "labels", "updated_at"])
    return Saved(flow, revision, created=True)


def spec_of(revision: FlowRevision) -> FlowSpec:
    """The parsed spec of a stored revision."""
    return spec_of_revision(revision.pk, revision.checksum)


@lru_cache(maxsize=512)
def spec_of_revision(revision_id: int, checksum: str) -> FlowSpec:
    """Cached: a revision never changes, and parsing (or even fetching the source) is not free. The
    checksum is part of the key because a rolled-back transaction can hand its row id to another revision."""
    from dataclasses import replace

    revision = FlowRevision.objects.only("source", "revision").get(pk=revision_id, checksum=checksum)
    return replace(load_flow(revision.source), revision=revision.revision)


def with_checksum(executions):
    """Executions with their revision's checksum read in the same query (for `spec_of_revision`)."""
    return executions.annotate(revision_checksum=F("flow_revision__checksum"))
