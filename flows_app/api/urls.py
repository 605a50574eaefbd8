"""The API's routes, mounted twice: under Kestra 1.x's tenant (`/api/v1/main/...`) and without it (0.x).

Fixed words come before the patterns they would match (`flows/search` before `flows/{namespace}`), as in
Kestra, whose routes have the same overlaps."""

from __future__ import annotations

from django.urls import path

from . import schema  # noqa: F401  (the auth schemes drf-spectacular documents; only web processes load URLs)
from .views import executions, files, flows, health, kv, logs, namespaces, plugins, streams, transfer, webhooks
from .views import triggers as trigger_views  # apart from `flows_app.triggers`, the triggers themselves

NS = "<str:namespace>"

urlpatterns = [
    # flows
    path("flows", flows.FlowCreateView.as_view(), name="flows"),
    path("flows/search", flows.FlowSearchView.as_view(), name="flow-search"),
    path("flows/validate", flows.ValidateView.as_view(), name="flow-validate"),
    path("flows/export/by-ids", transfer.ExportByIdsView.as_view(), name="flow-export-ids"),
    path("flows/export/by-query", transfer.ExportByQueryView.as_view(), name="flow-export-query"),
    path("flows/import", transfer.ImportView.as_view(), name="flow-import"),
    path("flows/distinct-namespaces", flows.DistinctNamespacesView.as_view(), name="flow-namespaces"),
    *[
        path(
            f"flows/{action}/by-{by}",
            flows.FlowBulkView.as_view(
                action=action, by=by, http_method_names=["delete" if action == "delete" else "post", "options"]
            ),
            name=f"flow-{action}-{by}",
        )
        for action in ("enable", "disable", "delete")
        for by in ("ids", "query")
    ],
    path(f"flows/{NS}", flows.NamespaceFlowsView.as_view(), name="namespace-flows"),
    path(f"flows/{NS}/<str:flow_id>", flows.FlowView.as_view(), name="flow"),
    path(f"flows/{NS}/<str:flow_id>/revisions", flows.FlowRevisionsView.as_view(), name="flow-revisions"),
    path(f"flows/{NS}/<str:flow_id>/diff", flows.FlowDiffView.as_view(), name="flow-diff"),
    # executions
    path("executions/search", executions.ExecutionSearchView.as_view(), name="execution-search"),
    path("executions", executions.FlowExecutionsView.as_view(), name="executions"),
    *[
        path(
            f"executions/by-{by}" if action == "delete" else f"executions/{action}/by-{by}",
            executions.ExecutionBulkView.as_view(
                action=action,
                by=by,
                http_method_names=["delete" if action in ("kill", "delete") else "post", "options"],
            ),
            name=f"execution-{action}-{by}",
        )
        for action in ("kill", "delete", "restart", "pause", "resume")
        for by in ("ids", "query")
    ],
    path(f"executions/webhook/{NS}/<str:flow_id>/<str:key>", webhooks.WebhookView.as_view(), name="webhook"),
    # before `executions/{namespace}/{flowId}`, whose shape they have (their POST starts that flow)
    path("executions/<str:execution_id>/follow", streams.ExecutionFollowView.as_view(), name="execution-follow"),
    path("executions/<str:execution_id>/file", files.ExecutionFileView.as_view(), name="execution-file"),
    path(f"executions/{NS}/<str:flow_id>", executions.ExecutionCreateView.as_view(), name="execution-create"),
    path("executions/<str:execution_id>", executions.ExecutionView.as_view(), name="execution"),
    path("executions/<str:execution_id>/file/metas", files.ExecutionFileMetaView.as_view(), name="execution-file-meta"),
    path("executions/<str:execution_id>/actions/kill", executions.KillView.as_view(), name="execution-kill"),
    path("executions/<str:execution_id>/actions/restart", executions.RestartView.as_view(), name="execution-restart"),
    path("executions/<str:execution_id>/actions/replay", executions.ReplayView.as_view(), name="execution-replay"),
    path("executions/<str:execution_id>/actions/state", executions.TaskRunStateView.as_view(), name="task-run-state"),
    path("executions/<str:execution_id>/actions/resume", executions.ResumeView.as_view(), name="execution-resume"),
    path("executions/<str:execution_id>/actions/pause", executions.PauseView.as_view(), name="execution-pause"),
    # logs
    path("logs/<str:execution_id>", logs.ExecutionLogsView.as_view(), name="logs"),
    path("logs/<str:execution_id>/follow", streams.LogFollowView.as_view(), name="logs-follow"),
    path("logs/<str:execution_id>/download", logs.ExecutionLogsDownloadView.as_view(), name="logs-download"),
    # namespaces and the KV store
    path("namespaces/search", namespaces.NamespaceSearchView.as_view(), name="namespace-search"),
    path(f"namespaces/{NS}", namespaces.NamespaceView.as_view(), name="namespace"),
    path(f"namespaces/{NS}/kv", kv.NamespaceKeysView.as_view(), name="kv-keys"),
    path(f"namespaces/{NS}/kv/<str:key>", kv.KeyView.as_view(), name="kv-key"),
    path("kv", kv.AllKeysView.as_view(), name="kv-all"),
    # triggers and their backfills
    path("triggers/backfill/preview", trigger_views.BackfillPreviewView.as_view(), name="backfill-preview"),
    path("triggers/backfill/pause", trigger_views.BackfillPauseView.as_view(), name="backfill-pause"),
    path("triggers/backfill/unpause", trigger_views.BackfillUnpauseView.as_view(), name="backfill-unpause"),
    path("triggers/backfill/delete", trigger_views.BackfillDeleteView.as_view(), name="backfill-delete"),
    path("triggers", trigger_views.TriggerView.as_view(), name="triggers"),
    path("triggers/search", trigger_views.TriggerSearchView.as_view(), name="trigger-search"),
    path("triggers/set-disabled", trigger_views.SetDisabledView.as_view(), name="trigger-set-disabled"),
    path(
        "triggers/set-disabled/by-triggers",
        trigger_views.SetDisabledByTriggersView.as_view(),
        name="trigger-set-disabled-triggers",
    ),
    path(
        "triggers/set-disabled/by-query",
        trigger_views.SetDisabledByQueryView.as_view(),
        name="trigger-set-disabled-query",
    ),
    path(f"triggers/{NS}/<str:flow_id>", trigger_views.FlowTriggersView.as_view(), name="flow-triggers"),
]

# Kestra serves these without a tenant.
global_urlpatterns = [
    path("plugins", plugins.PluginListView.as_view(), name="plugins"),
    path("plugins/schemas/<str:schema_type>", plugins.FlowSchemaView.as_view(), name="plugin-schema"),
    path("plugins/<str:cls>", plugins.PluginView.as_view(), name="plugin"),
]
health_urlpatterns = [
    path("health", health.HealthView.as_view(), name="health"),
    path("metrics", health.MetricsView.as_view(), name="metrics"),
]
