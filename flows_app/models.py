"""Flows with their revisions, executions, task runs and logs: every fact that must survive."""

from __future__ import annotations

import hashlib
import uuid

from django.db import models

from flows_app.engine.states import State

STATE_CHOICES = [(s.value, s.value) for s in State]


def new_id() -> str:
    return uuid.uuid4().hex


class Flow(models.Model):
    namespace = models.CharField(max_length=255, db_index=True)
    flow_id = models.CharField("id", max_length=255)
    revision = models.PositiveIntegerField(default=1, help_text="The latest revision.")
    source = models.TextField(help_text="The latest revision's YAML, exactly as written.")
    disabled = models.BooleanField(default=False)
    deleted = models.BooleanField(
        default=False, help_text="Deleted: hidden and not runnable; its executions and revisions are kept (as Kestra)."
    )
    description = models.TextField(blank=True, default="")
    labels = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["namespace", "flow_id"], name="flow_unique_id")]
        ordering = ["namespace", "flow_id"]

    def __str__(self) -> str:
        return f"{self.namespace}.{self.flow_id}"


class FlowRevision(models.Model):
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="revisions")
    revision = models.PositiveIntegerField()
    source = models.TextField()
    checksum = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["flow", "revision"], name="flow_revision_unique")]
        ordering = ["flow", "-revision"]

    def __str__(self) -> str:
        return f"{self.flow} rev {self.revision}"

    @staticmethod
    def checksum_of(source: str) -> str:
        return hashlib.sha256(source.encode()).hexdigest()


class Execution(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_id, editable=False)
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="executions")
    flow_revision = models.ForeignKey(FlowRevision, on_delete=models.PROTECT, related_name="executions")
    state = models.CharField(max_length=16, choices=STATE_CHOICES, default=State.CREATED.value, db_index=True)
    inputs = models.JSONField(default=dict, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    outputs = models.JSONField(default=dict, blank=True)
    trigger = models.JSONField(null=True, blank=True)
    histories = models.JSONField(default=list, blank=True, help_text="Each state it entered, with its date.")
    held = models.BooleanField(
        default=False, help_text="Paused by hand: nothing new starts (running tasks finish) until it is resumed."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True, db_index=True)  # Flow triggers' sweep reads by it
    wake_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="When the execution has work due with no message (a retry)."
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="subflow_executions",
        help_text="The execution whose Subflow task started it.",
    )
    parent_task_run_id = models.CharField(max_length=32, blank=True, default="")
    queued_at = models.DateTimeField(
        null=True, blank=True, help_text="When it began to wait for a slot of its flow's concurrency limit."
    )
    start_key = models.CharField(
        max_length=255,
        null=True,
        blank=True,
        unique=True,
        help_text="What started it, when that must start one execution at most: a schedule's tick, a message's id.",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["flow", "state"], name="execution_flow_state")]

    def __str__(self) -> str:
        return f"{self.flow} {self.id[:8]} {self.state}"

    @property
    def duration(self):
        if self.started_at and self.ended_at:
            return self.ended_at - self.started_at
        return None


class TaskRun(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_id, editable=False)
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="task_runs")
    task_id = models.CharField(max_length=256)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    value = models.TextField(null=True, blank=True, help_text="The loop value this run is for.")
    state = models.CharField(max_length=16, choices=STATE_CHOICES, default=State.CREATED.value)
    order = models.PositiveIntegerField(default=0)
    attempts = models.JSONField(default=list, blank=True, help_text="One entry per attempt: state, startDate, endDate.")
    outputs = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker running it (runnables only)."
    )
    worker = models.CharField(max_length=255, blank=True, default="", help_text="Which worker holds it.")
    claim = models.PositiveIntegerField(
        default=0,
        help_text="How many times a worker claimed it. A worker's "
        "heartbeat and result count only while its claim is the latest.",
    )

    class Meta:
        ordering = ["execution", "order"]
        indexes = [models.Index(fields=["execution", "order"]), models.Index(fields=["state", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"{self.task_id} {self.state}"

    @property
    def attempt_count(self) -> int:
        return len(self.attempts)


class TriggerState(models.Model):
    """A flow trigger as it runs (Kestra's trigger context): when it fired, when it fires next, what failed.

    A Schedule's `next_date` is its first tick not yet handled: ticks before it have started their
    execution or were skipped by the schedule's rules. `disabled` set by an operator overrides the flow."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="trigger_states")
    trigger_id = models.CharField(max_length=100)
    type = models.CharField(max_length=255)
    next_date = models.DateTimeField(null=True, blank=True, help_text="The next tick not yet handled.")
    last_date = models.DateTimeField(null=True, blank=True, help_text="When it last started an execution.")
    last_execution_id = models.CharField(max_length=32, blank=True, default="")
    disabled = models.BooleanField(
        null=True,
        blank=True,
        help_text="Set by an operator: overrides the flow's `disabled` (empty: as the flow says).",
    )
    enabled = models.BooleanField(
        default=True, help_text="Whether it fires: the flow, the trigger and the operator all let it (kept by Tern)."
    )
    fingerprint = models.CharField(
        max_length=64, blank=True, default="", help_text="What its dates come from (a cron and time zone)."
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="tern_trigger",
        help_text="The Celery Beat row that sends its ticks (a Schedule).",
    )
    last_error = models.TextField(blank=True, default="")
    error_count = models.PositiveIntegerField(default=0, help_text="Failures in a row; reset by a success.")
    retry_at = models.DateTimeField(null=True, blank=True, help_text="After failures: not tried again before this.")
    # A polling or realtime trigger runs in one `tern triggers` process at a time: the one holding its lease.
    lease_owner = models.CharField(max_length=100, blank=True, default="", help_text="The process running it.")
    lease_until = models.DateTimeField(null=True, blank=True, help_text="Its lease ends then unless renewed.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["flow", "trigger_id"], name="trigger_state_unique")]
        ordering = ["flow", "trigger_id"]
        verbose_name = "trigger"

    def __str__(self) -> str:
        return f"{self.flow}.{self.trigger_id}"


class Backfill(models.Model):
    """A Schedule's past ticks run once each, oldest first, a few at a time (Kestra's backfill): from the
    flow's `backfill: {start, end}`, or started through the API on an existing trigger."""

    RUNNING, PAUSED, CANCELLED, DONE = "RUNNING", "PAUSED", "CANCELLED", "DONE"
    STATE_CHOICES = [(s, s) for s in (RUNNING, PAUSED, CANCELLED, DONE)]

    trigger_state = models.ForeignKey(TriggerState, on_delete=models.CASCADE, related_name="backfills")
    start = models.DateTimeField()
    end = models.DateTimeField()
    current_date = models.DateTimeField(null=True, blank=True, help_text="The next tick to start (empty: none left).")
    state = models.CharField(max_length=10, choices=STATE_CHOICES, default=RUNNING, db_index=True)
    total = models.PositiveIntegerField(default=0, help_text="The ticks from start to end.")
    done = models.PositiveIntegerField(default=0, help_text="Ticks passed: started, or skipped.")
    started = models.PositiveIntegerField(default=0, help_text="Executions it started.")
    only_missing = models.BooleanField(default=False, help_text="Ticks that have an execution already are skipped.")
    inputs = models.JSONField(default=dict, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    origin = models.CharField(max_length=80, blank=True, default="", help_text="`flow:<digest>` when its flow asked.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"backfill of {self.trigger_state} {self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M}"


class LogEntry(models.Model):
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="logs")
    task_run_id = models.CharField(max_length=32, null=True, blank=True)
    task_id = models.CharField(max_length=256, blank=True, default="")
    attempt = models.PositiveIntegerField(default=1)
    level = models.CharField(max_length=8, db_index=True)
    message = models.TextField()
    timestamp = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["execution", "id"]
        verbose_name_plural = "log entries"
        indexes = [models.Index(fields=["execution", "id"])]

    def __str__(self) -> str:
        return f"[{self.level}] {self.task_id}: {self.message[:60]}"


class KVEntry(models.Model):
    """A namespaced key-value pair (the KV store), read in templates as `kv('key')`."""

    namespace = models.CharField(max_length=255)
    key = models.CharField(max_length=255)
    value = models.JSONField(null=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Gone after this time (a TTL).")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["namespace", "key"], name="kv_unique_key")]
        ordering = ["namespace", "key"]
        verbose_name = "KV entry"
        verbose_name_plural = "KV store"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.key}"


# ---- who may do what (the API, the dashboard) ----------------------------------------------------


class NamespaceRole(models.Model):
    """A user or a group is a viewer, editor or admin of a namespace and of every namespace under it."""

    VIEWER, EDITOR, ADMIN = "VIEWER", "EDITOR", "ADMIN"
    ROLE_CHOICES = [(VIEWER, "viewer: reads"), (EDITOR, "editor: also writes flows and KV, runs"), (ADMIN, "admin")]

    user = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.CASCADE, related_name="namespace_roles"
    )
    group = models.ForeignKey(
        "auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="namespace_roles"
    )
    namespace = models.CharField(
        max_length=150, blank=True, help_text="A namespace prefix: `company.team` covers `company.team.*`; empty: all."
    )
    role = models.CharField(max_length=8, choices=ROLE_CHOICES)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, group__isnull=True)
                | models.Q(user__isnull=True, group__isnull=False),
                name="namespace_role_one_holder",
            )
        ]
        ordering = ["namespace", "role"]

    def __str__(self) -> str:
        return f"{self.user or self.group}: {self.role} of {self.namespace or '*'}"


class ApiToken(models.Model):
    """A bearer token for the API. Only its SHA-256 digest is kept: the token is shown once, when made."""

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="The token's first characters, to tell tokens apart.")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["user", "name"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class AuditEntry(models.Model):
    """Who changed what runs or who may do what: when, from where."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150, blank=True, help_text="Kept when the user is deleted.")
    action = models.CharField(max_length=40, db_index=True)
    target = models.CharField(max_length=500, blank=True)
    remote_addr = models.CharField(max_length=64, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at"]
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action} {self.target}"


class PreconditionWindow(models.Model):
    """What one precondition of a Flow trigger has met in its current window of time (Kestra's
    MultipleConditionWindow), kept so a restart loses none of it. Written under its trigger state's row lock."""

    trigger_state = models.ForeignKey(TriggerState, on_delete=models.CASCADE, related_name="precondition_windows")
    precondition_id = models.CharField(max_length=100, help_text="The precondition's `id`.")
    start = models.DateTimeField(null=True, blank=True)
    end = models.DateTimeField(null=True, blank=True)
    sliding = models.BooleanField(default=False, help_text="A SLIDING_WINDOW: it ends at its newest execution.")
    met = models.JSONField(
        default=dict, blank=True, help_text="Each check met in the window: {name: {execution, ended}}."
    )
    seen = models.JSONField(
        default=dict, blank=True, help_text="The executions counted already, with when they ended: never twice."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trigger_state", "precondition_id"], name="precondition_window_unique")
        ]
        ordering = ["trigger_state", "precondition_id"]

    def __str__(self) -> str:
        return f"{self.trigger_state} preconditions {self.precondition_id}"
