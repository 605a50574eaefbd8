"""The audit log: who changed what runs, or who may do what, when and from where."""

from __future__ import annotations

from typing import Any

from flows_app.models import AuditEntry


def record(user, action: str, target: str = "", remote_addr: str = "", **detail: Any) -> None:
    """Write one entry; `user` may be None (a webhook, the system)."""
    known = user is not None and getattr(user, "is_authenticated", False)
    AuditEntry.objects.create(
        user=user if known else None,
        username=user.get_username() if known else "",
        action=action,
        target=target[:500],
        remote_addr=remote_addr[:64],
        detail=detail,
    )


def record_request(request, action: str, target: str = "", **detail: Any) -> None:
    """`record` for an HTTP request: its user and client address."""
    record(getattr(request, "user", None), action, target, request.META.get("REMOTE_ADDR", ""), **detail)
