"""The Django admin for operators: flows with revisions and a Run page, executions with task runs and logs."""
from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from .engine.inputs import InputsError
from .forms import InputsForm, LabelsForm, inputs_form, needs_value
from .models import Execution, Flow, FlowRevision, KVEntry, LogEntry, TaskRun
from .services.executions import FlowDisabled, kill_execution, start_execution
from .services.flows import spec_of
from .spec.model import FlowSpec


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
    readonly_fields = ("namespace", "flow_id", "revision", "disabled", "description", "source_view", "labels",
                       "created_at", "updated_at")
    fields = ("namespace", "flow_id", "revision", "disabled", "description", "labels", "source_view",
              "created_at", "updated_at")
    inlines = [RevisionInline]
    actions = ["run_flows"]

    def get_urls(self):
        run = path("<path:object_id>/run/", self.admin_site.admin_view(self.run_view),
                   name=f"{self.opts.app_label}_{self.opts.model_name}_run")
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
                execution = start_execution(flow)
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
                execution = self._start(flow, form, labels_form.cleaned_data["labels"])
                if execution is not None:
                    self.message_user(request, f"Execution {execution.id} of {flow} started.", messages.SUCCESS)
                    return HttpResponseRedirect(self._admin_url("flows_app_execution_change", execution.pk))
        else:
            form, labels_form = form_class(prefix="input"), LabelsForm()
        context = {
            **self.admin_site.each_context(request),
            "title": f"Run {flow}", "opts": self.opts, "flow": flow, "spec": spec,
            "form": form, "labels_form": labels_form,
        }
        return TemplateResponse(request, "admin/flows_app/flow/run.html", context)

    @staticmethod
    def _start(flow: Flow, form: InputsForm, labels: dict[str, str]) -> Execution | None:
        """Start through the service (which copies uploads into internal storage); what it refuses goes
        on the form. The uploads are removed either way."""
        try:
            execution = start_execution(flow, form.inputs(), labels)
            form.discard_uploads()
            return execution
        except InputsError as exc:
            form.show_errors(exc)
        except FlowDisabled as exc:
            form.add_error(None, str(exc))
        form.discard_uploads()
        return None

    def _run_url(self, flow: Flow) -> str:
        return self._admin_url("flows_app_flow_run", flow.pk)

    def _admin_url(self, name: str, pk) -> str:
        return reverse(f"{self.admin_site.name}:{name}", args=[pk])

    @admin.display(description="source")
    def source_view(self, obj):
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", obj.source)

    def has_add_permission(self, request):
        return False  # flows come from YAML through the services, which keep revisions


def latest_spec(flow: Flow) -> FlowSpec:
    return spec_of(flow.revisions.get(revision=flow.revision))


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


@admin.register(KVEntry)
class KVEntryAdmin(admin.ModelAdmin):
    list_display = ("namespace", "key", "expires_at", "updated_at")
    list_filter = ("namespace",)
    search_fields = ("namespace", "key")
