"""Who may do what: roles on namespace prefixes (viewer < editor < admin), held by users or their groups.

`company.team` covers `company.team` and `company.team.*`, not `company.teams`; an empty prefix covers all.
Superusers may do everything. What one may not even read is hidden (a 404), not refused (a 403).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from django.db.models import Q

from flows_app.models import NamespaceRole


class Role(IntEnum):
    VIEWER = 1  # reads flows, executions, logs, KV
    EDITOR = 2  # also saves and deletes flows, writes KV, runs, kills and resumes executions
    ADMIN = 3  # also manages who holds which role


@dataclass(frozen=True)
class Grant:
    prefix: str
    role: Role

    def covers(self, namespace: str) -> bool:
        return not self.prefix or namespace == self.prefix or namespace.startswith(self.prefix + ".")


class Access:
    """One user's rights, read once (per request)."""

    def __init__(self, grants: tuple[Grant, ...], superuser: bool = False):
        self.grants, self.superuser = grants, superuser

    @classmethod
    def of(cls, user) -> Access:
        if user is None or not user.is_authenticated or not user.is_active:
            return cls(())
        if user.is_superuser:
            return cls((), superuser=True)
        rows = NamespaceRole.objects.filter(Q(user=user) | Q(group__in=user.groups.all())).values_list(
            "namespace", "role"
        )
        return cls(tuple(Grant(prefix, Role[role]) for prefix, role in rows))

    def allows(self, namespace: str, role: Role = Role.VIEWER) -> bool:
        return self.superuser or any(g.role >= role and g.covers(namespace) for g in self.grants)

    def may_see_any(self) -> bool:
        return self.superuser or bool(self.grants)

    def namespaces_q(self, field: str = "namespace", role: Role = Role.VIEWER) -> Q:
        """A filter on `field` (a namespace column) to the namespaces where one holds `role` or more."""
        if self.superuser:
            return Q()
        q = Q(pk__in=[])  # nothing
        for grant in self.grants:
            if grant.role < role:
                continue
            if not grant.prefix:
                return Q()
            q |= Q(**{field: grant.prefix}) | Q(**{f"{field}__startswith": grant.prefix + "."})
        return q
