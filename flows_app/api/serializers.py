"""The shapes the API reads and answers, for the OpenAPI document (the answers are built by
`representations.py`; schemathesis checks that the two agree)."""

from __future__ import annotations

from rest_framework import serializers as s


class Label(s.Serializer):
    key = s.CharField()
    value = s.CharField(allow_blank=True)


class StateHistory(s.Serializer):
    state = s.CharField()
    date = s.DateTimeField()


class State(s.Serializer):
    current = s.CharField()
    histories = StateHistory(many=True)
    startDate = s.DateTimeField(allow_null=True)
    endDate = s.DateTimeField(allow_null=True)
    duration = s.CharField(allow_null=True, help_text="ISO 8601, like PT1.5S")
    getStartDate = s.DateTimeField(allow_null=True)
    getEndDate = s.DateTimeField()
    getDuration = s.CharField(allow_null=True)


class Flow(s.Serializer):
    id = s.CharField()
    namespace = s.CharField()
    revision = s.IntegerField()
    updated = s.DateTimeField(allow_null=True)
    description = s.CharField(required=False, allow_null=True)
    disabled = s.BooleanField()
    deleted = s.BooleanField()
    draft = s.BooleanField()
    labels = Label(many=True)
    tasks = s.ListField(child=s.DictField())


class FlowWithSource(Flow):
    source = s.CharField()


class PagedFlows(s.Serializer):
    results = Flow(many=True)
    total = s.IntegerField()


class ErrorItem(s.Serializer):
    path = s.CharField(allow_blank=True)
    message = s.CharField()
    line = s.IntegerField(required=False)


class Violation(s.Serializer):
    index = s.IntegerField()
    namespace = s.CharField(allow_null=True)
    flow = s.CharField(allow_null=True)
    constraints = s.CharField(allow_null=True)
    errors = ErrorItem(many=True)
    warnings = s.ListField(child=s.CharField())
    outdated = s.BooleanField()
    deprecationPaths = s.ListField(child=s.CharField())
    infos = s.ListField(child=s.CharField())


class FlowIdentity(s.Serializer):
    namespace = s.CharField()
    id = s.CharField()


class BulkResponse(s.Serializer):
    count = s.IntegerField()


class RevisionDiff(s.Serializer):
    to = s.IntegerField()
    diff = s.CharField(allow_blank=True)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = s.IntegerField()  # a Python keyword
        return fields


class Attempt(s.Serializer):
    state = State()


class TaskRun(s.Serializer):
    id = s.CharField()
    executionId = s.CharField()
    namespace = s.CharField()
    flowId = s.CharField()
    taskId = s.CharField()
    parentTaskRunId = s.CharField(allow_null=True)
    value = s.CharField(allow_null=True)
    attempts = Attempt(many=True)
    outputs = s.DictField()
    state = State()


class ExecutionMetadata(s.Serializer):
    attemptNumber = s.IntegerField()
    originalCreatedDate = s.DateTimeField()


class Execution(s.Serializer):
    id = s.CharField()
    namespace = s.CharField()
    flowId = s.CharField()
    flowRevision = s.IntegerField()
    state = State()
    inputs = s.DictField()
    outputs = s.DictField()
    labels = Label(many=True)
    taskRunList = TaskRun(many=True, allow_null=True)
    parentId = s.CharField(allow_null=True)
    originalId = s.CharField()
    trigger = s.DictField(allow_null=True)
    deleted = s.BooleanField()
    metadata = ExecutionMetadata()
    scheduleDate = s.DateTimeField(allow_null=True)


class CreatedExecution(Execution):
    url = s.CharField()


class PagedExecutions(s.Serializer):
    results = Execution(many=True)
    total = s.IntegerField()


class StateRequest(s.Serializer):
    taskRunId = s.CharField()
    state = s.CharField()


class LogEntry(s.Serializer):
    namespace = s.CharField()
    flowId = s.CharField()
    taskId = s.CharField(allow_null=True)
    executionId = s.CharField()
    taskRunId = s.CharField(allow_null=True)
    attemptNumber = s.IntegerField()
    timestamp = s.DateTimeField()
    level = s.CharField()
    message = s.CharField(allow_blank=True)
    thread = s.CharField(allow_null=True)


class PagedLogs(s.Serializer):
    results = LogEntry(many=True)
    total = s.IntegerField()


class KVDetail(s.Serializer):
    type = s.CharField()
    value = s.JSONField(allow_null=True)
    revision = s.IntegerField()
    updated = s.DateTimeField()


class KVEntry(s.Serializer):
    key = s.CharField()
    namespace = s.CharField()
    description = s.CharField(allow_null=True)
    creationDate = s.DateTimeField()
    updateDate = s.DateTimeField()
    expirationDate = s.DateTimeField(allow_null=True)


class PagedKV(s.Serializer):
    results = KVEntry(many=True)
    total = s.IntegerField()


class Namespace(s.Serializer):
    id = s.CharField()
    flowCount = s.IntegerField()


class PagedNamespaces(s.Serializer):
    results = Namespace(many=True)
    total = s.IntegerField()


class WebhookResponse(s.Serializer):
    id = s.CharField()
    namespace = s.CharField()
    flowId = s.CharField()
    flowRevision = s.IntegerField()
    state = State()
    labels = Label(many=True)
    trigger = s.DictField(allow_null=True)
    url = s.CharField()


class AbstractTrigger(s.Serializer):
    """A trigger as its flow writes it: these, and every other property it has."""

    id = s.CharField()
    type = s.CharField()
    disabled = s.BooleanField(help_text="Disabled in the flow's source")


class BackfillProgress(s.Serializer):
    """Kestra's Backfill (start, end, currentDate, paused, inputs, labels), then how far it is."""

    start = s.DateTimeField()
    end = s.DateTimeField()
    currentDate = s.DateTimeField(allow_null=True, help_text="The next tick it starts (null: none left)")
    paused = s.BooleanField()
    inputs = s.DictField()
    labels = s.DictField(child=s.CharField())
    state = s.ChoiceField(["RUNNING", "PAUSED", "CANCELLED", "DONE"])
    done = s.IntegerField(help_text="Ticks passed: started or skipped")
    total = s.IntegerField(help_text="Ticks from start to end")
    started = s.IntegerField(help_text="Executions it started")
    onlyMissing = s.BooleanField()


class TriggerContext(s.Serializer):
    """Kestra's Trigger, then Tern's own fields (from `type` on)."""

    tenantId = s.CharField()
    namespace = s.CharField()
    flowId = s.CharField()
    triggerId = s.CharField()
    date = s.DateTimeField(allow_null=True, help_text="When it last started an execution")
    nextExecutionDate = s.DateTimeField(allow_null=True, help_text="A Schedule's next tick not yet handled")
    stopAfter = s.ListField(child=s.CharField(), allow_null=True)
    disabled = s.BooleanField(help_text="Disabled by an operator (the flow's own `disabled` is apart)")
    updatedDate = s.DateTimeField()
    type = s.CharField()
    enabled = s.BooleanField(help_text="Tern: whether it fires (its flow, the trigger and an operator all let it)")
    lastExecutionId = s.CharField(allow_null=True, help_text="Tern: the last execution it started")
    lastError = s.CharField(allow_null=True, help_text="Tern: why its last try failed")
    errorCount = s.IntegerField(help_text="Tern: failures in a row")
    retryAt = s.DateTimeField(allow_null=True, help_text="Tern: after failures, not tried again before this")
    backfill = BackfillProgress(allow_null=True, help_text="Its backfill under way, else its last one")


class Triggers(s.Serializer):
    abstractTrigger = AbstractTrigger(allow_null=True)
    triggerContext = TriggerContext()


class PagedTriggers(s.Serializer):
    results = Triggers(many=True)
    total = s.IntegerField()


class PagedTriggerContexts(s.Serializer):
    results = TriggerContext(many=True)
    total = s.IntegerField()


class TriggerIdentity(s.Serializer):
    namespace = s.CharField(max_length=255)
    flowId = s.CharField(max_length=255)
    triggerId = s.CharField(max_length=100)


class BackfillRequest(s.Serializer):
    start = s.DateTimeField()
    end = s.DateTimeField(required=False, allow_null=True, help_text="Without one: up to now")
    inputs = s.DictField(required=False, default=dict)
    labels = s.DictField(child=s.CharField(max_length=1000), required=False, default=dict)
    paused = s.BooleanField(required=False, default=False)
    onlyMissing = s.BooleanField(required=False, default=False, help_text="Tern: skip ticks that have an execution")


class TriggerDisabled(TriggerIdentity):
    """Kestra's Trigger as a request: `disabled` and `backfill` are read (with the trigger's identity)."""

    disabled = s.BooleanField(
        required=False, help_text="true: disabled by an operator; false: as its flow says again; absent: unchanged"
    )
    backfill = BackfillRequest(required=False, allow_null=True, help_text="Starts a backfill of the schedule")


class BackfillPreviewRequest(TriggerIdentity):
    backfill = BackfillRequest()


class BackfillPreview(s.Serializer):
    executions = s.IntegerField(help_text="How many it would start")
    first = s.CharField(allow_null=True, help_text="The first tick it would start, in the schedule's zone")
    last = s.CharField(allow_null=True)
    ticks = s.IntegerField(help_text="The ticks from start to end, skipped ones included")


class SetDisabledRequest(s.Serializer):
    triggers = TriggerIdentity(many=True)
    disabled = s.BooleanField(help_text="true: disabled by an operator; false: as its flow says again")
