"""What every view needs: the caller's rights, and the rows it may see (404 for the others)."""

from __future__ import annotations

from flows_app.models import Execution, Flow
from flows_app.services.access import Access, Role

from ..errors import ApiError, not_found


def access_of(request) -> Access:
    found = getattr(request, "_tern_access", None)
    if found is None:
        found = request._tern_access = Access.of(request.user)
    return found


def require(request, namespace: str, role: Role) -> None:
    """403 unless the caller holds `role` on `namespace` (use once the caller may see the thing)."""
    if not access_of(request).allows(namespace, role):
        raise ApiError(f"you are not {role.name.lower()} of namespace {namespace}", status_code=403)


def visible_flow(request, namespace: str, flow_id: str, role: Role = Role.VIEWER, deleted: bool = False) -> Flow:
    """The flow, if the caller may see it (404 otherwise), and holds `role` on it (403 otherwise)."""
    access = access_of(request)
    flow = Flow.objects.filter(namespace=namespace, flow_id=flow_id).first()
    if flow is None or (flow.deleted and not deleted) or not access.allows(namespace):
        raise not_found(f"flow {namespace}.{flow_id}")
    require(request, namespace, role)
    return flow


def visible_execution(request, execution_id: str, role: Role = Role.VIEWER) -> Execution:
    execution = (
        Execution.objects.select_related("flow", "flow_revision").filter(id=execution_id).first()
        if len(execution_id) <= 32
        else None
    )
    if execution is None or not access_of(request).allows(execution.flow.namespace):
        raise not_found(f"execution {execution_id}")
    require(request, execution.flow.namespace, role)
    return execution


def flag(request, name: str, default: bool = False) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise ApiError(f"{name}: '{raw[:20]}' is not true or false", [{"path": name, "message": "true or false"}])
