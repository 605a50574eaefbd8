"""The Django admin for operators: flows with their revisions, executions with task runs and logs."""
from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from .engine.inputs import InputsError
from .services.executions import FlowDisabled, kill_execution, start_execution

from .models import Execution, Flow, FlowRevision, LogEntry, TaskRun


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class RevisionInline(ReadOnlyInline):
    model = FlowRevision
    fields = ("revision", "created_at", "checksum")
    readonly_fields = fields


@admin.register(Flow)
class FlowAdmin(admin.ModelAdmin):
    list_display = ("flow_id", "namespace", "revision", "disabled", "updated_at")
    list_filter = ("namespace", "disabled")
    search_fields = ("flow_id", "namespace", "description")
    readonly_fields = ("namespace", "flow_id", "revision", "source_view", "labels", "created_at", "updated_at")
    fields = ("namespace", "flow_id", "revision", "disabled", "description", "labels", "source_view",
              "created_at", "updated_at")
    inlines = [RevisionInline]
    actions = ["run_flows"]

    @admin.action(description="Run the selected flows (with their default inputs)")
    def run_flows(self, request, queryset):
        for flow in queryset:
            try:
                execution = start_execution(flow)
            except (InputsError, FlowDisabled) as exc:
                self.message_user(request, f"{flow}: not started: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{flow}: execution {execution.id} started", messages.SUCCESS)

    @admin.display(description="source")
    def source_view(self, obj):
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", obj.source)

    def has_add_permission(self, request):
        return False  # flows come from YAML through the services, which keep revisions


@admin.register(FlowRevision)
class FlowRevisionAdmin(admin.ModelAdmin):
    list_display = ("flow", "revision", "created_at")
    list_filter = ("flow__namespace",)
    search_fields = ("flow__flow_id", "source")
    readonly_fields = ("flow", "revision", "checksum", "created_at", "source_view")
    exclude = ("source",)

    @admin.display(description="source")
    def source_view(self, obj):
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", obj.source)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class TaskRunInline(ReadOnlyInline):
    model = TaskRun
    fk_name = "execution"
    fields = ("task_id", "value", "state", "attempt_count", "started_at", "ended_at", "outputs")
    readonly_fields = fields


class LogInline(ReadOnlyInline):
    model = LogEntry
    fields = ("timestamp", "level", "task_id", "message")
    readonly_fields = fields
    show_change_link = False


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = ("id", "flow", "state", "created_at", "duration")
    list_filter = ("state", "flow__namespace", "flow")
    search_fields = ("id", "flow__flow_id", "flow__namespace")
    date_hierarchy = "created_at"
    readonly_fields = ("id", "flow", "flow_revision", "state", "inputs", "labels",
                       "outputs", "trigger", "created_at", "started_at", "ended_at", "wake_at")
    inlines = [TaskRunInline, LogInline]
    actions = ["kill_executions"]

    @admin.action(description="Kill the selected executions")
    def kill_executions(self, request, queryset):
        killed = sum(1 for execution in queryset if kill_execution(execution.id))
        self.message_user(request, f"{killed} execution(s) asked to stop", messages.SUCCESS)

    def has_add_permission(self, request):
        return False


@admin.register(TaskRun)
class TaskRunAdmin(admin.ModelAdmin):
    list_display = ("task_id", "execution", "state", "value", "attempt_count", "started_at", "ended_at")
    list_filter = ("state",)
    search_fields = ("task_id", "execution__id", "execution__flow__flow_id")
    readonly_fields = ("id", "execution", "task_id", "parent", "value", "state", "order", "attempts",
                       "outputs", "created_at", "started_at", "ended_at", "next_attempt_at")

    def has_add_permission(self, request):
        return False


@admin.register(LogEntry)
class LogEntryAdmin(admin.ModelAdmin):
    list_display = ("timestamp", "level", "task_id", "short_message", "execution")
    list_filter = ("level",)
    search_fields = ("message", "task_id", "execution__id")
    readonly_fields = ("execution", "task_run_id", "task_id", "attempt", "level", "message", "timestamp")

    @admin.display(description="message")
    def short_message(self, obj):
        return obj.message[:120]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
