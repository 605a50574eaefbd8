"""Polling triggers as `tern triggers` runs them: a folder's new files (one execution each, never read twice,
moved or deleted once the execution exists), an HTTP endpoint whose answer meets a condition, errors recorded
in the trigger's state with a back-off, and leases that let one process run a trigger at a time."""

from __future__ import annotations

import http.server
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from flows_app import dispatch
from flows_app.models import Execution, TriggerState
from flows_app.services.flows import save_flow
from flows_app.services.storage import storage
from flows_app.spec.errors import FlowValidationError
from flows_app.triggers import leases
from flows_app.triggers.runner import TriggerRunner, event_spec, handle, open_source, record_failure
from plugins_app.triggers.base import SourceError
from tests.services.test_flows_and_state import Recorder

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def recorder():
    with dispatch.using(Recorder()) as recorder:
        yield recorder


@pytest.fixture
def inbox(tmp_path, settings):
    settings.TERN = {**settings.TERN, "TRIGGER_ALLOWED_PATHS": [str(tmp_path)], "STORAGE_DIR": tmp_path / "storage"}
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


def watcher(folder, action="NONE", extra="") -> TriggerState:
    archive = f"\n    moveDirectory: {folder.parent / 'archive'}" if action == "MOVE" else ""
    flow = save_flow(f"""id: watcher
namespace: company.team
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{{{ trigger.files }}}}"
    tasks:
      - id: show
        type: io.kestra.plugin.core.log.Log
        message: "{{{{ taskrun.value | jq('.path') }}}}"
triggers:
  - id: watch
    type: io.kestra.plugin.fs.local.Trigger
    from: {folder}
    interval: PT1S
    action: {action}{archive}{extra}
""").flow
    return TriggerState.objects.select_related("flow").get(flow=flow, trigger_id="watch")


def poll(state: TriggerState) -> list[str]:
    """One poll as the runner does it: the new executions' ids."""
    before = set(Execution.objects.values_list("id", flat=True))
    spec = event_spec(state)
    source = open_source(state, spec, threading.Event())
    try:
        events = source.poll()
        if events:
            handle(state, spec, source, events)
    finally:
        source.close()
    return sorted(set(Execution.objects.values_list("id", flat=True)) - before)


def test_each_new_file_starts_one_execution_with_its_copy_and_is_never_read_twice(inbox):
    state = watcher(inbox)
    (inbox / "a.csv").write_text("1,2\n")
    (inbox / "b.csv").write_text("3,4\n")
    started = poll(state)
    assert len(started) == 2
    triggers = [Execution.objects.get(id=i).trigger for i in started]
    assert sorted(t["file"]["name"] for t in triggers) == ["a.csv", "b.csv"]
    for trigger in triggers:
        assert trigger["files"] == [trigger["file"]]  # Kestra's flows iterate trigger.files
        assert trigger["file"]["changeType"] == "CREATE" and trigger["id"] == "watch"
        copy = storage().path_of(trigger["file"]["uri"])
        assert copy.read_text() == (inbox / trigger["file"]["name"]).read_text()
    assert poll(state) == [], "action NONE: an unchanged file is not read again"
    (inbox / "a.csv").write_text("changed, and longer\n")
    again = poll(state)
    assert len(again) == 1 and Execution.objects.get(id=again[0]).trigger["file"]["changeType"] == "UPDATE"


def test_move_and_delete_happen_after_the_execution_exists(inbox):
    state = watcher(inbox, "MOVE", "\n    recursive: true")
    (inbox / "sub").mkdir()
    (inbox / "sub" / "c.txt").write_text("c")
    assert len(poll(state)) == 1
    assert not (inbox / "sub" / "c.txt").exists()
    assert (inbox.parent / "archive" / "sub" / "c.txt").read_text() == "c"

    state = watcher(inbox, "DELETE")
    (inbox / "d.txt").write_text("d")
    assert len(poll(state)) == 1 and not (inbox / "d.txt").exists()


def test_a_file_whose_execution_exists_is_not_started_again_after_a_crash_before_the_move(inbox):
    """The crash: the execution was created, but the process died before moving the file."""
    state = watcher(inbox, "MOVE")
    (inbox / "e.txt").write_text("e")
    spec = event_spec(state)
    source = open_source(state, spec, threading.Event())
    events = source.poll()
    from flows_app.triggers.event_starts import start_event

    assert start_event(state, spec, events[0]) is not None  # ... and no ack: killed here
    assert (inbox / "e.txt").exists()
    assert poll(state) == [], "the restarted trigger finds the file's execution and starts none"
    assert not (inbox / "e.txt").exists(), "but moves the file"
    assert Execution.objects.count() == 1


def test_max_files_and_reg_exp_bound_a_poll(inbox):
    state = watcher(inbox, "DELETE", "\n    maxFiles: 2\n    regExp: '.*\\.csv'")
    for name in ["1.csv", "2.csv", "3.csv", "skip.txt"]:
        (inbox / name).write_text(name)
    assert len(poll(state)) == 2
    assert len(poll(state)) == 1
    assert poll(state) == [] and (inbox / "skip.txt").exists()


def test_a_folder_outside_the_allowed_paths_is_refused_naming_the_setting(inbox, tmp_path, settings):
    settings.TERN = {**settings.TERN, "TRIGGER_ALLOWED_PATHS": [str(tmp_path / "elsewhere")]}
    state = watcher(inbox)
    with pytest.raises(SourceError, match="not under an allowed path.*TERN_TRIGGER_ALLOWED_PATHS"):
        open_source(state, event_spec(state), threading.Event())


def test_bad_trigger_properties_are_errors_that_name_their_place():
    with pytest.raises(FlowValidationError) as caught:
        save_flow("""id: bad
namespace: company.team
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: watch
    type: io.kestra.plugin.fs.local.Trigger
    interval: PT15X
    action: MOVE
    maxFiles: 0
  - id: poll
    type: io.kestra.plugin.core.http.Trigger
    uri: http://127.0.0.1/
    responseCondition: "{{ response.statusCode == 200 }}"
    methd: GET
""")
    text = str(caught.value)
    assert "triggers[0].from: missing from" in text
    assert "triggers[0].interval: 'PT15X' is not a duration" in text
    assert "triggers[0].moveDirectory: missing moveDirectory" in text
    assert "triggers[0].maxFiles: '0' is not a whole number" in text
    assert "triggers[1].methd: unknown property of a http.Trigger trigger; did you mean 'method'?" in text


class Endpoint(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        body = f'{{"ready": {str(Endpoint.status == 200).lower()}}}'.encode()
        self.send_response(Endpoint.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/status"
    server.shutdown()


def http_poller(uri: str, condition: str | None = None) -> TriggerState:
    line = f'\n    responseCondition: "{condition}"' if condition else ""
    flow = save_flow(f"""id: poller
namespace: company.team
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.body }}}}"
triggers:
  - id: http
    type: io.kestra.plugin.core.http.Trigger
    uri: {uri}
    interval: PT1S{line}
""").flow
    return TriggerState.objects.select_related("flow").get(flow=flow, trigger_id="http")


def test_an_http_trigger_starts_an_execution_when_the_response_meets_its_condition(endpoint):
    Endpoint.status = 503
    state = http_poller(endpoint)
    assert poll(state) == [], "the default condition: a status below 400"
    Endpoint.status = 200
    (started,) = poll(state)
    trigger = Execution.objects.get(id=started).trigger
    assert trigger["code"] == 200 and trigger["body"] == '{"ready": true}' and trigger["uri"] == endpoint
    assert trigger["headers"]["content-type"] == ["application/json"]

    state = http_poller(endpoint, "{{ response.body | jq('.ready') | first == false }}")
    assert poll(state) == []


def test_an_unreachable_url_is_recorded_in_the_state_and_backs_off():
    state = http_poller("http://127.0.0.1:9/nothing")
    with pytest.raises(SourceError, match="127.0.0.1:9") as caught:
        poll(state)
    record_failure(state.pk, caught.value)
    record_failure(state.pk, caught.value)
    state.refresh_from_db()
    assert state.error_count == 2 and "127.0.0.1:9" in state.last_error
    assert timezone.now() + timedelta(seconds=1) < state.retry_at <= timezone.now() + timedelta(seconds=3)


def test_one_process_at_a_time_holds_a_trigger_and_another_takes_it_once_the_lease_ends(inbox):
    state = watcher(inbox)
    now = timezone.now()
    assert leases.claim(state.pk, "first", now)
    assert not leases.claim(state.pk, "second", now + timedelta(seconds=leases.LEASE_SECONDS - 1))
    assert leases.renew({state.pk}, "first", now + timedelta(seconds=5)) == {state.pk}
    assert not leases.claim(state.pk, "second", now + timedelta(seconds=leases.LEASE_SECONDS + 1))
    assert leases.claim(state.pk, "second", now + timedelta(seconds=5 + leases.LEASE_SECONDS + 1))
    assert leases.renew({state.pk}, "first", now + timedelta(seconds=30)) == set(), "the first lost it"


def test_the_runner_runs_a_trigger_and_lets_it_go_when_the_trigger_is_disabled(inbox):
    state = watcher(inbox)
    runner = TriggerRunner(owner="test-runner")
    try:
        runner.step()
        assert set(runner.threads) == {state.pk}
        state.refresh_from_db()
        assert state.lease_owner == "test-runner"
        TriggerState.objects.filter(pk=state.pk).update(enabled=False)
        runner.step()
        assert runner.threads == {}
    finally:
        runner.stopping.set()
        runner._halt(set(runner.threads))
