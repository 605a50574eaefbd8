"""The KV store: namespaced values with an optional time to live, for tasks and for `kv()` in templates."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from flows_app.models import KVEntry
from flows_app.spec.flow import NAMESPACE_PATTERN

# As Kestra checks a key (KVStore.validateKey).
KEY_PATTERN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]*")


class KeyMissing(LookupError):
    pass


def _live(namespace: str, key: str):
    return KVEntry.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()), namespace=namespace, key=key
    )


def get(namespace: str, key: str, error_on_missing: bool = False) -> Any:
    entry = _live(namespace, key).first()
    if entry is None:
        if error_on_missing:
            raise KeyMissing(f"no key '{key}' in the KV store of namespace {namespace}")
        return None
    return entry.value


def put(namespace: str, key: str, value: Any, ttl: timedelta | None = None, overwrite: bool = True) -> None:
    if not overwrite and _live(namespace, key).exists():
        raise KeyMissing(f"key '{key}' already exists in namespace {namespace} (overwrite: false)")
    expires = timezone.now() + ttl if ttl else None
    KVEntry.objects.update_or_create(namespace=namespace, key=key, defaults={"value": value, "expires_at": expires})


def delete(namespace: str, key: str, error_on_missing: bool = False) -> bool:
    deleted, _ = _live(namespace, key).delete()
    if not deleted and error_on_missing:
        raise KeyMissing(f"no key '{key}' in the KV store of namespace {namespace}")
    return bool(deleted)


class BadEntry(ValueError):
    pass


def check_namespace(namespace: str) -> str:
    if not NAMESPACE_PATTERN.fullmatch(namespace):
        raise BadEntry(f"'{namespace}' is not a namespace (like company.team)")
    return namespace


def check_key(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key):
        raise BadEntry(
            f"'{key}' is not a key: it starts with a letter or digit, then letters, digits, "
            "dots, underscores and hyphens only"
        )
    return key


def check_value(value: Any) -> Any:
    """Any JSON value but null, which would read as a missing key."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise BadEntry(f"{value!r} is not a JSON value") from None
    if value is None:
        raise BadEntry("null is not a value: delete the key instead")
    return value


def put_entry(namespace: str, key: str, value: Any, expires_at: datetime | None = None) -> KVEntry:
    """An operator's write (the admin): checked first, then stored as `put` stores it; replaces any entry."""
    check_namespace(namespace)
    check_key(key)
    check_value(value)
    entry, _ = KVEntry.objects.update_or_create(
        namespace=namespace, key=key, defaults={"value": value, "expires_at": expires_at}
    )
    return entry


def delete_entry(namespace: str, key: str) -> bool:
    """An operator's delete: the entry goes even if it has expired (`delete` only sees live ones)."""
    deleted, _ = KVEntry.objects.filter(namespace=namespace, key=key).delete()
    return bool(deleted)


class NamespaceKV:
    """The store as a task sees it: its flow's namespace by default."""

    def __init__(self, namespace: str):
        self.namespace = namespace

    def get(self, key: str, namespace: str | None = None, error_on_missing: bool = False) -> Any:
        return get(namespace or self.namespace, key, error_on_missing)

    def put(
        self, key: str, value: Any, namespace: str | None = None, ttl: timedelta | None = None, overwrite: bool = True
    ) -> None:
        put(namespace or self.namespace, key, value, ttl, overwrite)

    def delete(self, key: str, namespace: str | None = None, error_on_missing: bool = False) -> bool:
        return delete(namespace or self.namespace, key, error_on_missing)

    def function(self, key: str, namespace: str | None = None, errorOnMissing: bool = False) -> Any:
        """`kv('key')`, `kv('key', 'other.namespace', true)` in templates."""
        return self.get(key, namespace, bool(errorOnMissing))
