"""Which `tern triggers` process runs a polling or realtime trigger: the one holding its lease.

A lease is two columns of the trigger's state, taken and renewed by conditional UPDATEs, so two processes
never both hold one. A process that cannot renew in time (killed, cut off from the database) stops its
triggers before the lease ends; another takes them over once it has ended.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from django.db.models import Q

from flows_app.models import TriggerState

LEASE_SECONDS = 15


def new_owner() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claim(state_id: int, owner: str, now: datetime, seconds: int = LEASE_SECONDS) -> bool:
    """Take the trigger's lease if it is free, ended, or ours already."""
    free = Q(lease_owner="") | Q(lease_owner=owner) | Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    taken = TriggerState.objects.filter(free, pk=state_id, enabled=True).update(
        lease_owner=owner, lease_until=now + timedelta(seconds=seconds)
    )
    return taken == 1


def renew(state_ids: set[int], owner: str, now: datetime, seconds: int = LEASE_SECONDS) -> set[int]:
    """Extend our leases; returns the triggers we still hold (a deleted or disabled one is let go)."""
    if not state_ids:
        return set()
    ours = TriggerState.objects.filter(pk__in=state_ids, lease_owner=owner, enabled=True)
    ours.update(lease_until=now + timedelta(seconds=seconds))
    return set(ours.values_list("pk", flat=True))


def release(state_ids: set[int], owner: str) -> None:
    TriggerState.objects.filter(pk__in=state_ids, lease_owner=owner).update(lease_owner="", lease_until=None)
