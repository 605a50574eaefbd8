"""The Django admin for operators: flows with revisions and a Run page, executions with task runs and logs
(shown, never edited: the services write them), the KV store, and who may do what (roles by namespace,
API tokens, the audit log)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import actions as admin_actions
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import capfirst

from .engine.inputs import InputsError
from .forms import InputsForm, KVEntryForm, LabelsForm, inputs_form, needs_value
from .markdown import render_markdown
from .models import (
    ApiToken,
    AuditEntry,
    Backfill,
    Execution,
    Flow,
    FlowRevision,
    KVEntry,
    LogEntry,
    NamespaceRole,
    TaskRun,
    TriggerState,
)
from .services import audit, kv, tokens
from .services.access import Access, Role
from .services.deletion import NotEnded, delete_execution, delete_executions
from .services.executions import FlowDisabled, kill_execution, start_execution
from .services.flows import spec_of
from .services.secret_inputs import shown_inputs
from .services.starting import ReservedLabels
from .spec.event_triggers import type_label
from .spec.model import FlowSpec
from .triggers import backfills, control


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the services write: every field shown, none editable, no add, no Save, no delete. A Save here
    would write the whole row over a worker's transition."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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
    list_display = ("flow_id", "namespace", "revision", "disabled", "updated_at", "run_link")
    list_filter = ("namespace", "disabled")
    search_fields = ("flow_id", "namespace", "description")
    # All of it comes from the YAML (`disabled:` too): a flow changes by saving a new revision, not here.
    readonly_fields = (
        "namespace",
        "flow_id",
        "revision",
        "disabled",
        "description_view",
        "source_view",
        "labels",
        "created_at",
        "updated_at",
    )
    fields = (
        "namespace",
        "flow_id",
        "revision",
        "disabled",
        "description_view",
        "labels",
        "source_view",
        "created_at",
        "updated_at",
    )
    inlines = [RevisionInline]
    actions = ["run_flows"]

    def get_urls(self):
        run = path(
            "<path:object_id>/run/",
            self.admin_site.admin_view(self.run_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_run",
        )
        return [run, *super().get_urls()]  # first: the catch-all `<path:object_id>/` would take it

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return shown if self.has_change_permission(request) else tuple(c for c in shown if c != "run_link")

    @admin.display(description="run")
    def run_link(self, obj):
        return format_html('<a href="{}">Run</a>', self._run_url(obj))

    @admin.action(description="Run the selected flows (with their default inputs)", permissions=["change"])
    def run_flows(self, request, queryset):
        flows = list(queryset)
        if len(flows) == 1 and (spec := latest_spec(flows[0])).inputs:
            return self._to_run_page(request, flows[0], spec)  # one flow with inputs: let the user choose them
        for flow in flows:
            try:
                execution = start_execution(flow, username=request.user.get_username())
            except (InputsError, FlowDisabled) as exc:
                self.message_user(request, f"{flow}: not started: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{flow}: execution {execution.id} started", messages.SUCCESS)

    def _to_run_page(self, request, flow: Flow, spec: FlowSpec):
        missing = ", ".join(f"inputs.{s.id}" for s in spec.inputs if needs_value(s))
        hint = f"{missing} must be filled in" if missing else "check its inputs"
        self.message_user(request, f"{flow}: not started: {hint}, then press Run.", messages.WARNING)
        return HttpResponseRedirect(self._run_url(flow))

    def run_view(self, request, object_id):
        """GET: a form for the inputs of the flow's latest revision; POST: start an execution with them."""
        flow = self.get_object(request, unquote(object_id))
        if flow is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, flow):
            raise PermissionDenied
        spec = latest_spec(flow)
        form_class = inputs_form(spec)
        if request.method == "POST":
            form, labels_form = form_class(request.POST, request.FILES, prefix="input"), LabelsForm(request.POST)
            if form.is_valid() and labels_form.is_valid():
                execution = self._start(flow, form, labels_form.cleaned_data["labels"], request.user.get_username())
                if execution is not None:
                    self.message_user(request, f"Execution {execution.id} of {flow} started.", messages.SUCCESS)
                    return HttpResponseRedirect(self._admin_url("flows_app_execution_change", execution.pk))
        else:
            form, labels_form = form_class(prefix="input"), LabelsForm()
        context = {
            **self.admin_site.each_context(request),
            "title": f"Run {flow}",
            "opts": self.opts,
            "flow": flow,
            "spec": spec,
            "description": render_markdown(spec.description),
            "form": form,
            "labels_form": labels_form,
        }
        return TemplateResponse(request, "admin/flows_app/flow/run.html", context)

    @staticmethod
    def _start(flow: Flow, form: InputsForm, labels: dict[str, str], username: str) -> Execution | None:
        """Start through the service (which copies uploads into internal storage) as `username`; what it
        refuses goes on the form. The uploads are removed either way."""
        try:
            execution = start_execution(flow, form.inputs(), labels, username=username)
            form.discard_uploads()
            return execution
        except InputsError as exc:
            form.show_errors(exc)
        except (FlowDisabled, ReservedLabels) as exc:
            form.add_error(None, str(exc))
        form.discard_uploads()
        return None

    def _run_url(self, flow: Flow) -> str:
        return self._admin_url("flows_app_flow_run", flow.pk)

    def _admin_url(self, name: str, pk) -> str:
        return reverse(f"{self.admin_site.name}:{name}", args=[pk])

    @admin.display(description="description")
    def description_view(self, obj):
        return render_markdown(obj.description)

    @admin.display(description="source")
    def source_view(self, obj):
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", obj.source)

    def has_add_permission(self, request):
        return False  # flows come from YAML through the services, which keep revisions

    def has_delete_permission(self, request, obj=None):
        return False  # it would take its executions, running or not, and leave their files


def latest_spec(flow: Flow) -> FlowSpec:
    return spec_of(flow.revisions.get(revision=flow.revision))


@admin.register(FlowRevision)
class FlowRevisionAdmin(ReadOnlyAdmin):
    list_display = ("flow", "revision", "created_at")
    list_filter = ("flow__namespace",)
    search_fields = ("flow__flow_id", "source")
    readonly_fields = ("flow", "revision", "checksum", "created_at", "source_view")
    exclude = ("source",)

    @admin.display(description="source")
    def source_view(self, obj):
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", obj.source)


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
class ExecutionAdmin(ReadOnlyAdmin):
    list_display = ("id", "flow", "state", "created_at", "duration")
    list_filter = ("state", "flow__namespace", "flow")
    search_fields = ("id", "flow__flow_id", "flow__namespace")
    date_hierarchy = "created_at"
    fields = (
        "id",
        "flow",
        "flow_revision",
        "state",
        "parent",
        "parent_task_run_id",
        "inputs_shown",
        "labels",
        "outputs",
        "trigger",
        "created_at",
        "started_at",
        "ended_at",
        "wake_at",
    )
    readonly_fields = fields
    inlines = [TaskRunInline, LogInline]
    actions = ["kill_executions", "delete_selected"]

    @admin.display(description="inputs")
    def inputs_shown(self, execution):
        """SECRET inputs as ******: the admin never shows a secret."""
        return json.dumps(shown_inputs(execution), ensure_ascii=False, default=str)

    @admin.action(description="Kill the selected executions", permissions=["kill"])
    def kill_executions(self, request, queryset):
        killed = 0
        for execution in queryset:
            if kill_execution(execution.id):
                killed += 1
                audit.record_request(request, "execution.killed", execution.id)
        self.message_user(request, f"{killed} execution(s) asked to stop", messages.SUCCESS)

    def has_kill_permission(self, request):
        """Killing is what "Can change execution" allows: the page itself edits nothing."""
        return request.user.has_perm(f"{self.opts.app_label}.{get_permission_codename('change', self.opts)}")

    def has_delete_permission(self, request, obj=None):
        return request.user.has_perm(f"{self.opts.app_label}.{get_permission_codename('delete', self.opts)}")

    # Deleting: through the service, which refuses an execution that has not ended (NotEnded) and takes
    # its task runs, logs and files with it.

    def delete_model(self, request, obj):
        delete_execution(obj.pk)

    def delete_queryset(self, request, queryset):
        delete_executions(queryset.values_list("pk", flat=True))

    def delete_view(self, request, object_id, extra_context=None):
        try:  # a POST runs in a transaction: a refusal also takes back the admin's record of the deletion
            return super().delete_view(request, object_id, extra_context)
        except NotEnded as exc:
            self.message_user(request, f"Not deleted: {exc}.", messages.ERROR)
            return HttpResponseRedirect(
                reverse(f"{self.admin_site.name}:flows_app_execution_change", args=[unquote(object_id)])
            )

    @admin.action(description=admin_actions.delete_selected.short_description, permissions=["delete"])
    def delete_selected(self, request, queryset):
        """Django's action, in a transaction for the same reason as `delete_view`."""
        try:
            with transaction.atomic():
                return admin_actions.delete_selected(self, request, queryset)
        except NotEnded as exc:
            self.message_user(request, f"Nothing deleted: {exc}.", messages.ERROR)
            return None

    def get_deleted_objects(self, objs, request):
        """The confirmation page lists the executions and counts what goes with them: listing each log line
        would make a page of thousands. Task runs and logs need no delete permission of their own."""
        executions = list(objs)
        listed = [
            format_html(
                '{}: <a href="{}">{}</a>',
                capfirst(self.opts.verbose_name),
                reverse(f"{self.admin_site.name}:flows_app_execution_change", args=[e.pk]),
                e,
            )
            for e in executions
        ]
        ids = [e.pk for e in executions]
        counts = {
            Execution._meta.verbose_name_plural: len(executions),
            TaskRun._meta.verbose_name_plural: TaskRun.objects.filter(execution__in=ids).count(),
            LogEntry._meta.verbose_name_plural: LogEntry.objects.filter(execution__in=ids).count(),
        }
        return listed, counts, set(), []


class OperatedAdmin(ReadOnlyAdmin):
    """Rows an operator acts on through actions that call a service (disable a trigger, pause a backfill):
    what "Can change" allows here, while the page itself edits nothing."""

    def has_operate_permission(self, request):
        return request.user.has_perm(f"{self.opts.app_label}.{get_permission_codename('change', self.opts)}")


@admin.register(TriggerState)
class TriggerStateAdmin(OperatedAdmin):
    """Each flow trigger as it runs. Disabling one here stops it without editing its flow; enabling it
    recovers the ticks it missed by its `recoverMissedSchedules`."""

    list_display = ("flow", "trigger_id", "short_type", "enabled", "next_date", "last_date", "last_error")
    list_filter = ("enabled", "type", "flow__namespace")
    search_fields = ("trigger_id", "flow__flow_id", "flow__namespace")
    fields = (
        "flow",
        "trigger_id",
        "type",
        "enabled",
        "disabled",
        "next_date",
        "last_date",
        "last_execution_id",
        "last_error",
        "error_count",
        "retry_at",
        "lease_owner",
        "lease_until",
        "periodic_task",
        "updated_at",
    )
    readonly_fields = fields
    actions = ["disable_triggers", "enable_triggers", "follow_flow"]

    @admin.display(description="type")
    def short_type(self, state):
        return type_label(state.type)

    def _set(self, request, queryset, disabled, said):
        for state in queryset:
            control.set_disabled(state, disabled)
            audit.record_request(request, "trigger.disabled" if disabled else "trigger.enabled", str(state))
        self.message_user(request, f"{queryset.count()} trigger(s) {said}", messages.SUCCESS)

    @admin.action(description="Disable the selected triggers", permissions=["operate"])
    def disable_triggers(self, request, queryset):
        self._set(request, queryset, True, "disabled")

    @admin.action(description="Enable the selected triggers", permissions=["operate"])
    def enable_triggers(self, request, queryset):
        self._set(request, queryset, False, "enabled")

    @admin.action(description="Let the selected triggers follow their flow's `disabled`", permissions=["operate"])
    def follow_flow(self, request, queryset):
        self._set(request, queryset, None, "set to follow their flow")


@admin.register(Backfill)
class BackfillAdmin(OperatedAdmin):
    """A schedule's backfills and how far each is; paused, resumed or cancelled here (or through the API)."""

    list_display = ("trigger_state", "state", "progress", "current_date", "start", "end", "only_missing")
    list_filter = ("state",)
    search_fields = ("trigger_state__trigger_id", "trigger_state__flow__flow_id", "trigger_state__flow__namespace")
    fields = (
        "trigger_state",
        "state",
        "progress",
        "current_date",
        "start",
        "end",
        "only_missing",
        "started",
        "inputs",
        "labels",
        "origin",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    actions = ["pause_backfills", "resume_backfills", "cancel_backfills"]

    @admin.display(description="done")
    def progress(self, backfill):
        return f"{backfill.done} / {backfill.total}"

    def _each(self, request, queryset, change, said):
        count = 0
        for backfill in queryset:
            try:
                change(backfill)
                count += 1
            except backfills.BackfillError as exc:
                self.message_user(request, f"{backfill}: {exc}", messages.WARNING)
        self.message_user(request, f"{count} backfill(s) {said}", messages.SUCCESS)

    @admin.action(description="Pause the selected backfills", permissions=["operate"])
    def pause_backfills(self, request, queryset):
        self._each(request, queryset, lambda b: backfills.set_paused(b, True), "paused")

    @admin.action(description="Resume the selected backfills", permissions=["operate"])
    def resume_backfills(self, request, queryset):
        self._each(request, queryset, lambda b: backfills.set_paused(b, False), "resumed")

    @admin.action(description="Cancel the selected backfills", permissions=["operate"])
    def cancel_backfills(self, request, queryset):
        self._each(request, queryset, backfills.cancel, "cancelled")


@admin.register(TaskRun)
class TaskRunAdmin(ReadOnlyAdmin):
    list_display = ("task_id", "execution", "state", "value", "attempt_count", "started_at", "ended_at")
    list_filter = ("state",)
    search_fields = ("task_id", "execution__id", "execution__flow__flow_id")
    fields = (
        "id",
        "execution",
        "task_id",
        "parent",
        "value",
        "state",
        "order",
        "attempts",
        "outputs",
        "created_at",
        "started_at",
        "ended_at",
        "next_attempt_at",
        "heartbeat_at",
        "worker",
    )
    readonly_fields = fields


@admin.register(LogEntry)
class LogEntryAdmin(ReadOnlyAdmin):
    list_display = ("timestamp", "level", "task_id", "short_message", "execution")
    list_filter = ("level",)
    search_fields = ("message", "task_id", "execution__id")
    fields = ("execution", "task_run_id", "task_id", "attempt", "level", "message", "timestamp")
    readonly_fields = fields

    @admin.display(description="message")
    def short_message(self, obj):
        return obj.message[:120]


@admin.register(KVEntry)
class KVEntryAdmin(admin.ModelAdmin):
    """Entries written and deleted through the KV service, which checks the namespace, key and value first."""

    form = KVEntryForm
    list_display = ("namespace", "key", "expires_at", "updated_at")
    list_filter = ("namespace",)
    search_fields = ("namespace", "key")
    fields = ("namespace", "key", "value", "expires_at", "ttl", "updated_at")

    def get_readonly_fields(self, request, obj=None):
        # The namespace and key name the entry: another name is another entry.
        return ("namespace", "key", "updated_at") if obj else ("updated_at",)

    def save_model(self, request, obj, form, change):
        entry = kv.put_entry(obj.namespace, obj.key, obj.value, obj.expires_at)
        obj.pk, obj.updated_at = entry.pk, entry.updated_at  # the admin's messages and redirect need them

    def delete_model(self, request, obj):
        kv.delete_entry(obj.namespace, obj.key)

    def delete_queryset(self, request, queryset):
        for namespace, key in queryset.values_list("namespace", "key"):
            kv.delete_entry(namespace, key)


# ---- who may do what -------------------------------------------------------------------------------


@admin.register(NamespaceRole)
class NamespaceRoleAdmin(admin.ModelAdmin):
    """Roles by namespace prefix, for a user or a group; each change is audited. A superuser manages all of
    them; a staff user who is admin of a namespace manages the roles on it and under it."""

    list_display = ("namespace_shown", "role", "user", "group")
    list_filter = ("role",)
    search_fields = ("namespace", "user__username", "group__name")
    autocomplete_fields = ("user", "group")

    @admin.display(description="namespace", ordering="namespace")
    def namespace_shown(self, obj):
        return obj.namespace or "* (all)"

    def _access(self, request) -> Access:
        found = getattr(request, "_tern_access", None)
        if found is None:
            found = request._tern_access = Access.of(request.user)
        return found

    def _administers(self, request, obj=None) -> bool:
        access = self._access(request)
        if access.superuser:
            return True
        if obj is None:
            return any(grant.role >= Role.ADMIN for grant in access.grants)
        return access.allows(obj.namespace, Role.ADMIN)

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff and self._administers(request)

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request) and self._administers(request, obj)

    has_add_permission = has_module_permission
    has_change_permission = has_view_permission
    has_delete_permission = has_view_permission

    def get_queryset(self, request):
        roles = super().get_queryset(request)
        access = self._access(request)
        return roles if access.superuser else roles.filter(access.namespaces_q("namespace", Role.ADMIN))

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        access = self._access(request)

        class ScopedForm(form):
            def clean_namespace(self):
                namespace = self.cleaned_data.get("namespace", "")
                if not access.allows(namespace, Role.ADMIN):
                    raise forms.ValidationError(f"you are not admin of namespace {namespace or '* (all)'}")
                return namespace

        return ScopedForm

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit.record_request(request, "role.changed" if change else "role.granted", str(obj))

    def delete_model(self, request, obj):
        audit.record_request(request, "role.revoked", str(obj))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            audit.record_request(request, "role.revoked", str(obj))
        super().delete_queryset(request, queryset)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are made here (shown once, in the message after saving) and revoked, never edited."""

    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "user__username", "prefix")
    fields = ("user", "name", "expires_at", "prefix", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        made = ("prefix", "created_at", "last_used_at", "revoked_at")
        return ("user", "name", "expires_at", *made) if obj else made

    def save_model(self, request, obj, form, change):
        if change:
            return
        token, row = tokens.create_token(obj.user, obj.name, obj.expires_at)
        obj.pk = row.pk
        audit.record_request(request, "token.created", str(row), owner=obj.user.get_username())
        messages.warning(request, f"The token, shown this once: {token}")

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        for row in queryset.filter(revoked_at__isnull=True):
            tokens.revoke(row)
            audit.record_request(request, "token.revoked", str(row), owner=row.user.get_username())


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("at", "username", "action", "target", "remote_addr")
    list_filter = ("action",)
    search_fields = ("username", "target", "action")
    fields = ("at", "user", "username", "action", "target", "remote_addr", "detail")
    readonly_fields = fields
