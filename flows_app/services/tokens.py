"""API tokens: made once and shown once; kept as a SHA-256 digest, so a leaked database leaks no token."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from django.utils import timezone

from flows_app.models import ApiToken

PREFIX = "tern_"


def digest_of(token: str) -> str:
    # A token is 256 random bits: a plain hash cannot be reversed or guessed, and it can be looked up.
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(user, name: str, expires_at: datetime | None = None) -> tuple[str, ApiToken]:
    """A new token for `user`; returns the token (shown once) and its row."""
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(
        user=user, name=name, prefix=token[: len(PREFIX) + 4], digest=digest_of(token), expires_at=expires_at
    )
    return token, row


def user_of(token: str):
    """The active user a live token belongs to, or None."""
    now = timezone.now()
    row = (
        ApiToken.objects.select_related("user")
        .filter(digest=digest_of(token), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if row is None or (row.expires_at is not None and row.expires_at <= now):
        return None
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        # At most one write a minute per token: every request writing would serialize readers on SQLite.
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
    return row.user


def revoke(row: ApiToken) -> None:
    ApiToken.objects.filter(pk=row.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
