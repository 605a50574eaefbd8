"""Every core plugin run by a real Celery worker process, failure paths included: one worker serves the module."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flows_app.models import Execution, KVEntry, LogEntry, TaskRun
from flows_app.services.executions import start_execution
from flows_app.services.flows import save_flow

from .conftest import Workers, wait_until

ENDED = {"SUCCESS", "WARNING", "FAILED", "KILLED"}
LOG = "io.kestra.plugin.core.log.Log"
RETURN = "io.kestra.plugin.core.debug.Return"


# ---- one worker for the module, an HTTP server, and helpers ---------------------------------------


@pytest.fixture(scope="module")
def worker(django_db_setup, redis_url, tmp_path_factory):
    """One real worker for every test here: starting one per test would cost more than the flows.
    Each test still takes `celery_runtime` (its database, dispatcher and queue purge) without starting one."""
    from orchestrator.celery import app

    app.conf.broker_url = redis_url
    app.conf.result_backend = redis_url
    app.control.purge()
    workers = Workers(redis_url, tmp_path_factory.mktemp("shared-worker"), {})
    process = workers.start(concurrency=8)
    yield process
    workers.stop_all()


@pytest.fixture
def on_worker(worker, celery_runtime):
    yield worker
    assert worker.poll() is None, "the worker died during the test"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def _reply(self, code: int, body: bytes, content_type: str = "application/json"):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        replies = {
            "/items": (200, b'{"items": ["a", "b", "c"]}', "application/json"),
            "/boom": (500, b"the server broke", "text/plain"),
            "/data.csv": (200, b"name,n\nalice,3\n", "text/csv"),
        }
        self._reply(*replies.get(self.path, (404, b"{}", "application/json")))


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def flow(flow_id: str, tasks: str, extra: str = "") -> str:
    return f"id: {flow_id}\nnamespace: tests.workers\n{extra}tasks:\n{tasks}"


def start(source: str, inputs=None) -> Execution:
    return start_execution(save_flow(source).flow, inputs or {})


def wait_ended(*executions: Execution, timeout: float = 30) -> Execution:
    def ended():
        for execution in executions:
            execution.refresh_from_db()
        return all(e.state in ENDED for e in executions)

    wait_until(ended, timeout=timeout, what="end of " + ", ".join(e.id for e in executions))
    return executions[0]


def run(source: str, inputs=None, timeout: float = 30) -> Execution:
    return wait_ended(start(source, inputs), timeout=timeout)


def runs(execution: Execution) -> dict[str, TaskRun]:
    """Task id -> its run, for tasks that run once."""
    found: dict[str, TaskRun] = {}
    for r in execution.task_runs.all():
        assert r.task_id not in found, f"{r.task_id} ran more than once"
        found[r.task_id] = r
    return found


def by_value(execution: Execution, task_id: str) -> dict[str, TaskRun]:
    """Loop value -> the run of `task_id` for it (nested loops: the run's parents' values first, '/'-joined)."""
    found = {}
    for r in execution.task_runs.filter(task_id=task_id):
        values, parent = [r.value], r.parent
        while parent is not None:
            values.insert(0, parent.value)
            parent = parent.parent
        found["/".join(v for v in values if v is not None)] = r
    return found


def states(execution: Execution, task_id: str) -> list[str]:
    return [r.state for r in execution.task_runs.filter(task_id=task_id)]


def errors(execution: Execution, task_id: str) -> list[str]:
    return list(
        LogEntry.objects.filter(execution=execution, task_id=task_id, level="ERROR")
        .order_by("id")
        .values_list("message", flat=True)
    )


def infos(execution: Execution, task_id: str) -> list[str]:
    return list(
        LogEntry.objects.filter(execution=execution, task_id=task_id, level="INFO")
        .order_by("id")
        .values_list("message", flat=True)
    )


def overlapping(intervals) -> int:
    """The most intervals (start, end) open at one moment."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


# ---- Switch and If --------------------------------------------------------------------------------

SWITCH = flow(
    "switch",
    f"""  - id: route
    type: io.kestra.plugin.core.flow.Switch
    value: "{{{{ inputs.kind }}}}"
    cases:
      CSV:
        - id: csv
          type: {LOG}
          message: "a CSV file for {{{{ inputs.kind }}}}"
        - id: csv-after
          type: {RETURN}
          format: "after csv"
    defaults:
      - id: other
        type: io.kestra.plugin.core.debug.Echo
        format: "something else: {{{{ outputs.route.value }}}}"
  - id: after
    type: {RETURN}
    format: "{{{{ outputs.route.value }}}} defaults={{{{ outputs.route.defaults }}}}"
""",
    "inputs:\n  - id: kind\n    type: STRING\n",
)


def test_a_switch_runs_the_matching_case_or_else_its_defaults(on_worker):
    matching, other = start(SWITCH, {"kind": "CSV"}), start(SWITCH, {"kind": "XML"})
    wait_ended(matching, other)

    assert matching.state == "SUCCESS"
    found = runs(matching)
    assert set(found) == {"route", "csv", "csv-after", "after"}
    assert all(r.state == "SUCCESS" for r in found.values())
    assert found["route"].outputs == {"value": "CSV", "defaults": False}
    assert found["csv-after"].started_at >= found["csv"].ended_at
    assert infos(matching, "csv") == ["a CSV file for CSV"]
    assert found["after"].outputs == {"value": "CSV defaults=false"}

    assert other.state == "SUCCESS"
    found = runs(other)
    assert set(found) == {"route", "other", "after"}
    assert found["route"].outputs == {"value": "XML", "defaults": True}
    assert infos(other, "other") == ["something else: XML"]
    assert found["after"].outputs == {"value": "XML defaults=true"}


IF = flow(
    "if",
    f"""  - id: check
    type: io.kestra.plugin.core.flow.If
    condition: "{{{{ inputs.n > 10 }}}}"
    then:
      - id: big
        type: {RETURN}
        format: "big {{{{ inputs.n }}}}"
    else:
      - id: small
        type: {RETURN}
        format: "small {{{{ inputs.n }}}}"
""",
    "inputs:\n  - id: n\n    type: INT\n",
)


def test_if_runs_then_when_the_condition_holds_and_else_when_not(on_worker):
    big, small = start(IF, {"n": 42}), start(IF, {"n": 3})
    wait_ended(big, small)

    assert big.state == "SUCCESS" and small.state == "SUCCESS"
    assert runs(big)["check"].outputs == {"evaluationResult": True}
    assert set(runs(big)) == {"check", "big"} and runs(big)["big"].outputs == {"value": "big 42"}
    assert runs(small)["check"].outputs == {"evaluationResult": False}
    assert set(runs(small)) == {"check", "small"} and runs(small)["small"].outputs == {"value": "small 3"}


# ---- loops ----------------------------------------------------------------------------------------


def test_each_sequential_and_each_parallel_give_each_child_its_value_and_key_outputs_by_it(on_worker):
    execution = run(
        flow(
            "each",
            f"""  - id: seq
    type: io.kestra.plugin.core.flow.EachSequential
    value: ["a", "b", "c"]
    tasks:
      - id: shout
        type: {RETURN}
        format: "{{{{ taskrun.value | upper }}}}"
  - id: par
    type: io.kestra.plugin.core.flow.EachParallel
    value: '["x", "y", "z"]'
    tasks:
      - id: nap
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT0.5S
      - id: twice
        type: {RETURN}
        format: "{{{{ taskrun.value }}}}{{{{ taskrun.value }}}}"
  - id: read
    type: {RETURN}
    format: "{{{{ outputs.shout.b.value }}}} {{{{ outputs.shout['c'].value }}}} {{{{ outputs.twice['y'].value }}}}"
""",
        )
    )
    assert execution.state == "SUCCESS"
    shout = by_value(execution, "shout")
    assert {v: r.outputs["value"] for v, r in shout.items()} == {"a": "A", "b": "B", "c": "C"}
    assert shout["b"].started_at >= shout["a"].ended_at and shout["c"].started_at >= shout["b"].ended_at

    naps = by_value(execution, "nap")
    assert sorted(naps) == ["x", "y", "z"] and all(r.state == "SUCCESS" for r in naps.values())
    assert overlapping([(r.started_at, r.ended_at) for r in naps.values()]) >= 2  # side by side
    assert {v: r.outputs["value"] for v, r in by_value(execution, "twice").items()} == {"x": "xx", "y": "yy", "z": "zz"}
    assert states(execution, "seq") == states(execution, "par") == states(execution, "read") == ["SUCCESS"]
    assert execution.task_runs.get(task_id="read").outputs == {"value": "B C yy"}


def test_for_each_keeps_to_its_concurrency_limit(on_worker):
    execution = run(
        flow(
            "for-each",
            f"""  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [1, 2, 3, 4]
    concurrencyLimit: 2
    tasks:
      - id: first
        type: {RETURN}
        format: "v{{{{ taskrun.value }}}}"
      - id: nap
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT0.4S
      - id: done
        type: {RETURN}
        format: "{{{{ outputs.first[taskrun.value].value }}}}!"
""",
        )
    )
    assert execution.state == "SUCCESS"
    first, naps, done = (by_value(execution, t) for t in ("first", "nap", "done"))
    assert sorted(first) == sorted(naps) == sorted(done) == ["1", "2", "3", "4"]
    spans = [(first[v].started_at, done[v].ended_at) for v in first]
    assert overlapping(spans) == 2  # two values at a time, never three
    for value in first:
        assert first[value].ended_at <= naps[value].started_at and naps[value].ended_at <= done[value].started_at
        assert done[value].outputs == {"value": f"v{value}!"}


def test_nested_loops_read_their_parents_values_and_outputs_by_outer_then_inner_value(on_worker):
    execution = run(
        flow(
            "nested",
            f"""  - id: outer
    type: io.kestra.plugin.core.flow.ForEach
    values: ["x", "y"]
    concurrencyLimit: 0
    tasks:
      - id: inner
        type: io.kestra.plugin.core.flow.EachParallel
        value: ["1", "2"]
        tasks:
          - id: pair
            type: {RETURN}
            format: "{{{{ parent.taskrun.value }}}}-{{{{ taskrun.value }}}}"
  - id: read
    type: {RETURN}
    format: "{{{{ outputs.pair.x['2'].value }}}} {{{{ outputs.pair['y']['1'].value }}}}"
""",
        )
    )
    assert execution.state == "SUCCESS"
    pairs = by_value(execution, "pair")
    assert {v: r.outputs["value"] for v, r in pairs.items()} == {"x/1": "x-1", "x/2": "x-2", "y/1": "y-1", "y/2": "y-2"}
    assert execution.task_runs.get(task_id="read").outputs == {"value": "x-2 y-1"}


# ---- Dag ------------------------------------------------------------------------------------------


def test_a_dag_starts_each_task_after_its_dependencies_and_independent_ones_together(on_worker):
    execution = run(
        flow(
            "dag",
            f"""  - id: build
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task:
          id: package
          type: {RETURN}
          format: "packaged what was {{{{ outputs.fetch.value }}}}"
        dependsOn: [compile, lint]
      - task:
          id: compile
          type: io.kestra.plugin.core.flow.Sleep
          duration: PT0.4S
        dependsOn: [fetch]
      - task:
          id: lint
          type: io.kestra.plugin.core.flow.Sleep
          duration: PT0.4S
        dependsOn: [fetch]
      - task:
          id: fetch
          type: {RETURN}
          format: fetched
""",
        )
    )
    assert execution.state == "SUCCESS"
    found = runs(execution)
    assert all(r.state == "SUCCESS" for r in found.values())
    fetch, compile_, lint, package = (found[t] for t in ("fetch", "compile", "lint", "package"))
    assert compile_.started_at >= fetch.ended_at and lint.started_at >= fetch.ended_at
    assert max(compile_.started_at, lint.started_at) < min(compile_.ended_at, lint.ended_at)  # side by side
    assert package.started_at >= max(compile_.ended_at, lint.ended_at)
    assert package.outputs == {"value": "packaged what was fetched"}
    assert found["build"].ended_at >= package.ended_at


# ---- AllowFailure, Fail, Sleep, OutputValues, Labels ----------------------------------------------


def test_allow_failure_turns_a_failing_child_into_a_warning_and_the_flow_goes_on(on_worker):
    execution = run(
        flow(
            "allow",
            f"""  - id: best-effort
    type: io.kestra.plugin.core.flow.AllowFailure
    tasks:
      - id: flaky
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{{{ 2 > 1 }}}}"
        errorMessage: "flaky gave up on {{{{ flow.id }}}}"
      - id: not-reached
        type: {LOG}
        message: never
    errors:
      - id: cleanup
        type: {RETURN}
        format: "cleaning after: {{{{ errorLogs()[0].message }}}}"
  - id: goes-on
    type: {RETURN}
    format: on
""",
        )
    )
    assert execution.state == "WARNING"
    found = runs(execution)
    assert found["flaky"].state == "FAILED" and found["flaky"].attempts[-1]["state"] == "FAILED"
    assert errors(execution, "flaky") == ["flaky gave up on allow"]
    assert found["best-effort"].state == "WARNING"
    assert found["cleanup"].outputs == {"value": "cleaning after: flaky gave up on allow"}
    assert found["goes-on"].state == "SUCCESS" and "not-reached" not in found


def test_sleep_output_values_and_labels_on_a_worker(on_worker):
    execution = run(
        flow(
            "facts",
            f"""  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.5S
  - id: facts
    type: io.kestra.plugin.core.output.OutputValues
    values:
      who: "{{{{ inputs.who }}}}"
      answer: 42
      items: ["{{{{ task.id }}}}", static]
  - id: tag
    type: io.kestra.plugin.core.execution.Labels
    labels:
      owner: "{{{{ outputs.facts.values.who }}}}"
      stage: final
  - id: read
    type: {RETURN}
    format: "{{{{ outputs.facts.values.who }}}} {{{{ outputs.facts.values.answer }}}} {{{{ outputs.facts.values['items'][0] }}}}"
""",
            "labels:\n  team: data\n  stage: draft\ninputs:\n  - id: who\n    type: STRING\n",
        ),
        {"who": "alice"},
    )
    assert execution.state == "SUCCESS"
    found = runs(execution)
    assert (found["nap"].ended_at - found["nap"].started_at).total_seconds() >= 0.5
    assert found["facts"].outputs == {"values": {"who": "alice", "answer": 42, "items": ["facts", "static"]}}
    assert found["read"].outputs == {"value": "alice 42 facts"}
    assert execution.labels == {
        "team": "data",
        "stage": "final",
        "owner": "alice",
        "system.correlationId": execution.id,
    }


def test_a_reserved_label_or_a_task_timeout_fails_the_task_with_a_message(on_worker):
    reserved = start(
        flow(
            "reserved",
            """  - id: tag
    type: io.kestra.plugin.core.execution.Labels
    labels: '{"system.correlationId": "x"}'
""",
        )
    )
    slow = start(
        flow(
            "slow",
            """  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT30S
    timeout: PT0.3S
""",
        )
    )
    wait_ended(reserved, slow)

    assert reserved.state == "FAILED" and runs(reserved)["tag"].state == "FAILED"
    assert reserved.labels == {"system.correlationId": reserved.id}
    assert errors(reserved, "tag") == ["labels system.correlationId: the `system.` prefix is reserved"]
    nap = runs(slow)["nap"]
    assert slow.state == "FAILED" and nap.state == "FAILED"
    assert (nap.ended_at - nap.started_at).total_seconds() < 5
    [message] = errors(slow, "nap")
    assert message == "Timeout after PT0.3S"  # the task's timeout, not the 0.29986… s left once rendered


# ---- KV -------------------------------------------------------------------------------------------


def test_kv_set_get_a_template_and_delete_share_the_namespaced_store(on_worker):
    execution = run(
        flow(
            "kv",
            f"""  - id: set
    type: io.kestra.plugin.core.kv.Set
    key: answer
    value:
      n: "{{{{ 6 * 7 }}}}"
      by: "{{{{ flow.id }}}}"
  - id: get
    type: io.kestra.plugin.core.kv.Get
    key: answer
  - id: template
    type: {RETURN}
    format: "{{{{ kv('answer').n }}}} by {{{{ kv('answer').by }}}}, {{{{ kv('nope') ?? 'none' }}}}"
  - id: delete
    type: io.kestra.plugin.core.kv.Delete
    key: answer
  - id: gone
    type: io.kestra.plugin.core.kv.Get
    key: answer
  - id: strict
    type: io.kestra.plugin.core.kv.Get
    key: answer
    errorOnMissing: true
""",
        )
    )
    found = runs(execution)
    assert found["set"].state == "SUCCESS"
    assert found["get"].outputs == {"value": {"n": "42", "by": "kv"}}
    assert found["template"].outputs == {"value": "42 by kv, none"}
    assert found["delete"].outputs == {"deleted": True}
    assert found["gone"].state == "SUCCESS" and found["gone"].outputs == {"value": None}
    assert found["strict"].state == "FAILED" and execution.state == "FAILED"
    [message] = errors(execution, "strict")
    assert "answer" in message
    assert not KVEntry.objects.exists()


# ---- HTTP -----------------------------------------------------------------------------------------


def test_an_http_body_is_read_by_the_next_task_and_a_500_runs_the_errors_branch(on_worker, server):
    execution = run(
        flow(
            "http",
            f"""  - id: get
    type: io.kestra.plugin.core.http.Request
    uri: {server}/items
  - id: use
    type: {RETURN}
    format: "{{{{ outputs.get.body | jsonpath('$.items[1]') }}}} of {{{{ outputs.get.code }}}}"
  - id: boom
    type: io.kestra.plugin.core.http.Request
    uri: {server}/boom
  - id: never
    type: {LOG}
    message: not reached
errors:
  - id: handler
    type: {RETURN}
    format: "handled: {{{{ errorLogs()[0].message }}}}"
""",
        )
    )
    assert execution.state == "FAILED"
    found = runs(execution)
    assert found["get"].state == "SUCCESS" and found["get"].outputs["code"] == 200
    assert json.loads(found["get"].outputs["body"]) == {"items": ["a", "b", "c"]}
    assert found["use"].outputs == {"value": "b of 200"}
    boom = found["boom"]
    assert boom.state == "FAILED" and boom.outputs["code"] == 500 and boom.outputs["body"] == "the server broke"
    assert errors(execution, "boom") == [f"GET {server}/boom answered 500"]
    assert found["handler"].outputs == {"value": f"handled: GET {server}/boom answered 500"}
    assert "never" not in found


def test_a_download_is_read_back_by_the_next_task(on_worker, server):
    execution = run(
        flow(
            "download",
            f"""  - id: dl
    type: io.kestra.plugin.core.http.Download
    uri: {server}/data.csv
  - id: show
    type: {RETURN}
    format: "{{{{ read(outputs.dl.uri) | trim }}}}"
""",
        )
    )
    assert execution.state == "SUCCESS"
    dl = runs(execution)["dl"].outputs
    assert dl["uri"].startswith(f"kestra:///tests/workers/download/executions/{execution.id}/")
    assert dl["uri"].endswith("/data.csv") and dl["length"] == 15 and dl["code"] == 200
    assert runs(execution)["show"].outputs == {"value": "name,n\nalice,3"}


# ---- scripts --------------------------------------------------------------------------------------


def test_shell_and_python_scripts_set_outputs_and_a_failing_script_records_its_exit_code(on_worker):
    execution = run(
        flow(
            "scripts",
            f"""  - id: shell
    type: io.kestra.plugin.scripts.shell.Commands
    env:
      WHO: "{{{{ flow.id }}}}"
    commands:
      - echo "hello from $WHO"
      - echo '::{{"outputs":{{"n":3}}}}::'
  - id: python
    type: io.kestra.plugin.scripts.python.Script
    script: |
      import json
      n = {{{{ outputs.shell.vars.n }}}}
      print("python got", n)
      print("::" + json.dumps({{"outputs": {{"square": n * n}}}}) + "::")
  - id: sum
    type: {RETURN}
    format: "{{{{ outputs.shell.vars.n + outputs.python.vars.square }}}}"
  - id: broken
    type: io.kestra.plugin.scripts.shell.Script
    script: |
      echo "about to fail"
      exit 3
  - id: never
    type: {LOG}
    message: not reached
""",
        )
    )
    assert execution.state == "FAILED"
    found = runs(execution)
    assert found["shell"].outputs == {"exitCode": 0, "vars": {"n": 3}}
    assert infos(execution, "shell") == ["hello from scripts"]
    assert found["python"].outputs == {"exitCode": 0, "vars": {"square": 9}}
    assert infos(execution, "python") == ["python got 3"]
    assert found["sum"].outputs == {"value": "12"}
    broken = found["broken"]
    assert broken.state == "FAILED" and broken.outputs["exitCode"] == 3
    assert broken.attempts[-1]["state"] == "FAILED"
    assert infos(execution, "broken") == ["about to fail"]
    assert errors(execution, "broken") == ["Command failed with exit code 3"]
    assert "never" not in found


# ---- properties wrong once rendered, and missing files --------------------------------------------


def test_a_property_wrong_once_rendered_fails_its_task_naming_the_property(on_worker, server):
    execution = run(
        flow(
            "bad-props",
            f"""  - id: size
    type: {RETURN}
    format: lots
  - id: limited
    type: io.kestra.plugin.core.http.Request
    uri: {server}/items
    options:
      maxContentLength: "{{{{ outputs.size.value }}}}"
errors:
  - id: handler
    type: {RETURN}
    format: handled
""",
        )
    )
    bad_duration = start(
        flow(
            "bad-duration",
            """  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: "{{ 'soon' }}"
""",
        )
    )
    missing_output = start(
        flow(
            "missing-output",
            f"""  - id: bad
    type: {RETURN}
    format: "{{{{ outputs.nothing.value }}}}"
""",
        )
    )
    bad_switch = start(
        flow(
            "bad-switch",
            f"""  - id: route
    type: io.kestra.plugin.core.flow.Switch
    value: "{{{{ outputs.nope.value }}}}"
    cases:
      A:
        - id: never
          type: {LOG}
          message: not reached
errors:
  - id: handler
    type: {RETURN}
    format: handled
""",
        )
    )
    wait_ended(execution, bad_duration, missing_output, bad_switch)

    found = runs(execution)
    assert execution.state == "FAILED" and found["limited"].state == "FAILED"
    assert found["limited"].attempts[-1]["state"] == "FAILED"
    [message] = errors(execution, "limited")
    assert "task 'limited'" in message and "property 'options.maxContentLength'" in message and "'lots'" in message
    assert found["handler"].state == "SUCCESS"  # the worker went on

    assert bad_duration.state == "FAILED" and runs(bad_duration)["nap"].state == "FAILED"
    [message] = errors(bad_duration, "nap")
    assert "task 'nap'" in message and "property 'duration'" in message and "soon" in message

    assert missing_output.state == "FAILED" and runs(missing_output)["bad"].state == "FAILED"
    [message] = errors(missing_output, "bad")
    assert "task 'bad', property 'format'" in message and "nothing" in message

    found = runs(bad_switch)  # a flowable's properties are rendered by the executor step, on the worker too
    assert bad_switch.state == "FAILED" and found["route"].state == "FAILED" and "never" not in found
    assert errors(bad_switch, "route") == [
        "task 'route', property 'value': {{ outputs.nope.value }}: 'outputs' has no attribute 'nope'"
    ]
    assert found["handler"].state == "SUCCESS"


def test_reading_a_missing_storage_file_fails_the_task_with_a_clear_message(on_worker):
    execution = run(
        flow(
            "missing-file",
            f"""  - id: show
    type: {RETURN}
    format: "{{{{ read('kestra:///tests/workers/missing-file/nothing.csv') }}}}"
  - id: never
    type: {LOG}
    message: not reached
""",
        )
    )
    assert execution.state == "FAILED"
    found = runs(execution)
    assert found["show"].state == "FAILED" and "never" not in found
    [message] = errors(execution, "show")
    assert "property 'format'" in message
    assert "'kestra:///tests/workers/missing-file/nothing.csv': no such file in the internal storage" in message


def test_loop_values_wrong_once_rendered_fail_the_loop_with_a_message(on_worker):
    execution = run(
        flow(
            "bad-values",
            f"""  - id: text
    type: {RETURN}
    format: not a list
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{{{ outputs.text.value }}}}"
    tasks:
      - id: never
        type: {LOG}
        message: not reached
""",
        )
    )
    assert execution.state == "FAILED"
    found = runs(execution)
    assert found["each"].state == "FAILED" and "never" not in found
    messages = errors(execution, "each")
    assert any("not the JSON text of a list" in m for m in messages), messages


# ---- templates: where Tern's arithmetic differs from Pebble's (bugs in flows_app/engine/templating.py) ----


def test_multiplying_a_loop_value_which_is_text_fails_the_task_as_in_pebble(on_worker):
    execution = run(
        flow(
            "text-times",
            f"""  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [1]
    tasks:
      - id: times
        type: {RETURN}
        format: "{{{{ taskrun.value * 3 }}}}"
""",
        )
    )
    assert by_value(execution, "times")["1"].outputs != {"value": "111"}
    assert execution.state == "FAILED" and "property 'format'" in errors(execution, "times")[0]


def test_adding_a_number_to_text_concatenates_as_in_pebble(on_worker):
    execution = run(
        flow(
            "text-plus",
            f"""  - id: name
    type: {RETURN}
    format: "{{{{ 'item-' + 1 }}}}"
""",
        )
    )
    assert execution.state == "SUCCESS" and runs(execution)["name"].outputs == {"value": "item-1"}


# ---- bugs found here first (each fixed since) --------------------------------------------------------


def test_the_attempt_of_an_ended_flowable_run_has_ended_too(on_worker):
    execution = run(
        flow(
            "flowable-attempt",
            f"""  - id: each
    type: io.kestra.plugin.core.flow.EachSequential
    value: ["a"]
    tasks:
      - id: show
        type: {LOG}
        message: "{{{{ taskrun.value }}}}"
""",
        )
    )
    assert execution.state == "SUCCESS"
    each = runs(execution)["each"]
    assert each.state == "SUCCESS"
    assert all(a["state"] != "RUNNING" and "endDate" in a for a in each.attempts), each.attempts


def test_a_script_output_file_is_read_by_the_next_task(on_worker):
    execution = run(
        flow(
            "output-files",
            f"""  - id: make
    type: io.kestra.plugin.scripts.shell.Commands
    inputFiles:
      in.txt: "hello {{{{ flow.id }}}}"
    outputFiles: ["*.out"]
    commands:
      - tr a-z A-Z < in.txt > up.out
  - id: show
    type: {RETURN}
    format: "{{{{ read(outputs.make.outputFiles['up.out']) }}}}"
""",
        )
    )
    assert runs(execution)["make"].outputs["outputFiles"]["up.out"].startswith("kestra:///")
    assert execution.state == "SUCCESS" and runs(execution)["show"].outputs == {"value": "HELLO OUTPUT-FILES"}


def test_exit_ends_the_execution_on_the_worker_and_kills_a_running_branch(on_worker):
    execution = run(
        flow(
            "exit-killed",
            f"""  - id: both
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: slow
        type: io.kestra.plugin.scripts.shell.Commands
        commands: ["sleep 30"]
      - id: quick
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: first
            type: {LOG}
            message: about to stop
          - id: stop
            type: io.kestra.plugin.core.execution.Exit
            state: KILLED
  - id: never
    type: {LOG}
    message: never
""",
        ),
        timeout=20,
    )
    by_task = runs(execution)
    assert execution.state == "KILLED" and by_task["slow"].state == "KILLED"
    assert by_task["stop"].outputs == {"state": "KILLED"} and "never" not in by_task
