"""WorkingDirectory: children share one directory; input, output and cached files; LocalFiles."""

from __future__ import annotations

import pytest

from flows_app.models import LogEntry
from flows_app.services.storage import storage
from flows_app.spec.errors import FlowValidationError
from flows_app.spec.flow import load_flow

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def own_storage(settings, tmp_path):
    settings.TERN = {**settings.TERN, "STORAGE_DIR": tmp_path / "storage"}


def flow_file(tmp_path, body: str, flow_id: str = "wd"):
    path = tmp_path / f"{flow_id}.yml"
    path.write_text(f"id: {flow_id}\nnamespace: tests.wd\ntasks:\n" + body)
    return path


def runs(execution):
    return {r.task_id: r for r in execution.task_runs.all()}


def shared_dirs(tmp_path):
    return list((tmp_path / "work").glob("*/shared-*"))


def test_children_share_files_and_output_files_go_to_storage(run_flow, tmp_path):
    execution = run_flow(
        flow_file(
            tmp_path,
            """  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    inputFiles:
      names.txt: |
        grace
        ada
    outputFiles:
      - "*.out"
    tasks:
      - id: sort
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - sort names.txt > sorted.out
      - id: count
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo "::{\\"outputs\\":{\\"first\\":\\"$(head -1 sorted.out)\\"}}::"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(outputs.wd.outputFiles['sorted.out']) | trim }}"
""",
        )
    ).execution
    by_task = runs(execution)
    assert execution.state == "SUCCESS", [(r.task_id, r.state) for r in by_task.values()]
    assert by_task["count"].outputs["vars"] == {"first": "ada"}
    assert by_task["after"].outputs == {"value": "ada\ngrace"}
    assert storage().read(by_task["wd"].outputs["outputFiles"]["sorted.out"]) == "ada\ngrace\n"
    assert shared_dirs(tmp_path) == []  # removed once the WorkingDirectory ended


def test_a_failing_child_runs_the_errors_in_the_same_directory(run_flow, tmp_path):
    execution = run_flow(
        flow_file(
            tmp_path,
            """  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: write
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo partial > state.txt
          - exit 4
    errors:
      - id: inspect
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo "::{\\"outputs\\":{\\"found\\":\\"$(cat state.txt)\\"}}::"
""",
        )
    ).execution
    by_task = runs(execution)
    assert execution.state == "FAILED"
    assert by_task["wd"].state == "FAILED" and by_task["write"].outputs["exitCode"] == 4
    assert by_task["inspect"].state == "SUCCESS" and by_task["inspect"].outputs["vars"] == {"found": "partial"}
    assert shared_dirs(tmp_path) == []


def test_local_files_write_inputs_from_text_and_storage_and_store_outputs(run_flow, tmp_path):
    uri = storage().put(["tests", "seed"], "seed.csv", b"a,b\n1,2\n")
    execution = run_flow(
        flow_file(
            tmp_path,
            f"""  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: put
        type: io.kestra.plugin.core.storage.LocalFiles
        inputs:
          conf/app.json: '{{"debug": true}}'
          data.csv: "{uri}"
      - id: check
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - cat conf/app.json data.csv > all.txt
      - id: keep
        type: io.kestra.plugin.core.storage.LocalFiles
        outputs:
          - "*.txt"
          - conf/**
""",
        )
    ).execution
    by_task = runs(execution)
    assert execution.state == "SUCCESS"
    uris = by_task["keep"].outputs["uris"]
    assert sorted(uris) == ["all.txt", "conf/app.json"]
    assert storage().read(uris["all.txt"]) == '{"debug": true}a,b\n1,2\n'


def test_a_script_output_file_is_an_input_file_of_a_working_directory(run_flow, tmp_path):
    execution = run_flow(
        flow_file(
            tmp_path,
            """  - id: make
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: ["*.csv"]
    commands:
      - printf 'b\\na\\n' > names.csv
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    inputFiles:
      in/names.csv: "{{ outputs.make.outputFiles['names.csv'] }}"
    tasks:
      - id: sort
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo "::{\\"outputs\\":{\\"first\\":\\"$(sort in/names.csv | head -1)\\"}}::"
""",
        )
    ).execution
    assert execution.state == "SUCCESS"
    assert runs(execution)["sort"].outputs["vars"] == {"first": "a"}


def test_a_cache_keeps_files_for_the_next_execution(run_flow, tmp_path):
    path = flow_file(
        tmp_path,
        """  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    cache:
      ttl: PT1H
      patterns:
        - deps/**
    tasks:
      - id: install
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - if [ -f deps/lib.txt ]; then echo '::{"outputs":{"cached":true}}::'; else mkdir -p deps && echo v1 > deps/lib.txt && echo '::{"outputs":{"cached":false}}::'; fi
""",
    )
    first = runs(run_flow(path).execution)["install"]
    second = runs(run_flow(path).execution)["install"]
    assert first.outputs["vars"] == {"cached": False}
    assert second.outputs["vars"] == {"cached": True}
    assert LogEntry.objects.filter(task_id="wd", message__contains="cache restored").count() == 1


def test_children_see_the_working_directory_run_as_worker_taskrun(run_flow, tmp_path):
    execution = run_flow(
        flow_file(
            tmp_path,
            """  - id: loop
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a"]
    tasks:
      - id: wd
        type: io.kestra.plugin.core.flow.WorkingDirectory
        tasks:
          - id: show
            type: io.kestra.plugin.core.debug.Return
            format: "{{ workerTaskrun.taskId }} {{ workerTaskrun.value }} {{ taskrun.value }}"
""",
        )
    ).execution
    assert execution.state == "SUCCESS"
    assert runs(execution)["show"].outputs == {"value": "wd a a"}


def test_a_bad_input_file_fails_the_first_child_with_the_reason(run_flow, tmp_path):
    execution = run_flow(
        flow_file(
            tmp_path,
            """  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    inputFiles:
      ../escape.txt: nope
    tasks:
      - id: first
        type: io.kestra.plugin.core.log.Log
        message: never
""",
        )
    ).execution
    assert execution.state == "FAILED" and runs(execution)["first"].state == "FAILED"
    assert LogEntry.objects.filter(
        task_id="first", level="ERROR", message__contains="'../escape.txt' is not a path inside"
    ).exists()
    assert list((tmp_path / "work").glob("*/escape.txt")) == []


def test_flowable_children_are_a_validation_error_naming_the_place():
    source = """id: wd
namespace: tests.wd
tasks:
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: fine
        type: io.kestra.plugin.core.log.Log
        message: hi
      - id: pause
        type: io.kestra.plugin.core.flow.Pause
        delay: PT1S
"""
    with pytest.raises(FlowValidationError) as caught:
        load_flow(source)
    assert [str(e) for e in caught.value.errors] == [
        "tasks[0].tasks[1].type: 'io.kestra.plugin.core.flow.Pause' is a flowable task: a WorkingDirectory "
        "runs only runnable tasks (they share a directory on one worker) (line 11)"
    ]


def test_a_child_landing_on_another_worker_starts_a_new_directory_there_and_moves_the_pin(
    monkeypatch, settings, tmp_path
):
    """The holder stopped answering; the tick re-sent the queued child to any worker: it goes on there."""
    from flows_app import dispatch
    from flows_app.models import TaskRun
    from flows_app.services import identity
    from flows_app.services.executions import advance_execution, start_execution
    from flows_app.services.flows import save_flow
    from flows_app.services.taskruns import run_task_run
    from tests.services.test_flows_and_state import Recorder

    settings.TERN = {**settings.TERN, "WORK_DIR": tmp_path / "work"}
    recorder = Recorder()
    with dispatch.using(recorder):
        execution = start_execution(
            save_flow("""id: moved
namespace: tests.wd
tasks:
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    inputFiles:
      in.txt: hello
    tasks:
      - id: read
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo "::{\\"outputs\\":{\\"in\\":\\"$(cat in.txt)\\"}}::"
""").flow
        )
        advance_execution(execution.id)
        wd = TaskRun.objects.get(execution=execution, task_id="wd")
        TaskRun.objects.filter(id=wd.id).update(worker="gone@elsewhere")
        monkeypatch.setattr(identity, "node", "here@this")
        assert run_task_run(recorder.runs[0])
    read = TaskRun.objects.get(execution=execution, task_id="read")
    assert read.state == "SUCCESS" and read.outputs["vars"] == {"in": "hello"}  # input files written anew
    assert TaskRun.objects.get(id=wd.id).worker == "here@this"
    assert LogEntry.objects.filter(task_id="wd", level="WARN", message__contains="gone@elsewhere").exists()
