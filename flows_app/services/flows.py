"""Saving flows: each new source is a new revision; the same source twice is not."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from django.db import transaction
from django.db.models import F

from flows_app.models import Flow, FlowRevision
from flows_app.spec.flow import load_flow
from flows_app.spec.model import FlowSpec
from flows_app.triggers.sync import sync_flow_triggers


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
            if flow.deleted:  # saved again as it was: back, with its revisions
                flow.deleted = False
                flow.save(update_fields=["deleted", "updated_at"])
                sync_flow_triggers(flow, spec)
            return Saved(flow, latest, created=False)
        number = (latest.revision if latest else 0) + 1
        revision = FlowRevision.objects.create(flow=flow, revision=number, source=source, checksum=checksum)
        flow.revision, flow.source, flow.deleted = number, source, False
        flow.disabled, flow.description = spec.disabled, spec.description or ""
        flow.labels = dict(spec.labels)
        flow.save(update_fields=["revision", "source", "deleted", "disabled", "description", "labels", "updated_at"])
        sync_flow_triggers(flow, spec)
    return Saved(flow, revision, created=True)


def delete_flow(flow: Flow) -> bool:
    """Hide a flow and stop it running; its revisions and executions stay (as Kestra), its triggers go.
    Saving it again brings it back. False if it was already deleted."""
    with transaction.atomic():
        if Flow.objects.filter(pk=flow.pk, deleted=False).update(deleted=True) != 1:
            return False
        flow.deleted = True
        sync_flow_triggers(flow, None)
    return True


_DISABLED_LINE = re.compile(r"^disabled:[^\n]*$", re.MULTILINE)


def set_disabled(flow: Flow, disabled: bool) -> Saved:
    """Disable or enable a flow as Kestra does: a new revision whose source says `disabled: true|false`."""
    line = f"disabled: {'true' if disabled else 'false'}"
    if _DISABLED_LINE.search(flow.source):
        source = _DISABLED_LINE.sub(line, flow.source, count=1)
    else:
        source = flow.source.rstrip("\n") + "\n" + line + "\n"
    return save_flow(source)


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
