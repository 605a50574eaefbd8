"""Files through internal storage, LocalFiles, the state store and the Docker runner, on a real worker."""

from __future__ import annotations

from flows_app.services.executions import start_execution
from flows_app.services.flows import save_flow
from flows_app.services.storage import storage
from tests.plugins.test_docker_runner import RUNNER, engine  # noqa: F401 (the engine fixture)

from .test_celery_runtime import runs, wait_ended


def shared_storage(celery_runtime, settings, tmp_path) -> None:
    """This process and the workers use one storage folder, as a deployment shares one storage."""
    settings.TERN = {**settings.TERN, "STORAGE_DIR": tmp_path / "storage"}
    celery_runtime.extra_env["TERN_STORAGE_DIR"] = str(tmp_path / "storage")


def test_a_container_task_runs_on_a_worker_and_its_output_file_is_read_next(celery_runtime, settings, tmp_path, engine):  # noqa: F811
    shared_storage(celery_runtime, settings, tmp_path)
    celery_runtime.start(concurrency=4)
    execution = wait_ended(
        start_execution(
            save_flow(f"""id: in-container
namespace: tests.workers
tasks:
  - id: make
    type: io.kestra.plugin.scripts.shell.Commands{RUNNER}
    commands:
      - echo "from a container" > report.txt
      - echo '::{{"outputs":{{"made":1}}}}::'
    outputFiles:
      - report.txt
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ read(outputs.make.outputFiles['report.txt']) | trim }}}}"
""").flow
        ),
        timeout=60,
    )
    by_task = runs(execution)
    assert execution.state == "SUCCESS", {t: r.state for t, r in by_task.items()}
    assert by_task["make"].outputs["vars"] == {"made": 1}
    assert by_task["show"].outputs == {"value": "from a container"}
    assert not engine.containers.list(all=True, filters={"label": f"tern.task-run={by_task['make'].id}"})


def test_local_files_and_the_state_store_on_a_worker(celery_runtime, settings, tmp_path):
    shared_storage(celery_runtime, settings, tmp_path)
    celery_runtime.start(concurrency=4)
    execution = wait_ended(
        start_execution(
            save_flow("""id: files-and-state
namespace: tests.workers
tasks:
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: put
        type: io.kestra.plugin.core.storage.LocalFiles
        inputs:
          in.txt: hello
      - id: shout
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - tr a-z A-Z < in.txt > out.txt
      - id: keep
        type: io.kestra.plugin.core.storage.LocalFiles
        outputs:
          - out.txt
  - id: remember
    type: io.kestra.plugin.core.state.Set
    name: last
    data:
      uri: "{{ outputs.keep.uris['out.txt'] }}"
  - id: recall
    type: io.kestra.plugin.core.state.Get
    name: last
  - id: missing
    type: io.kestra.plugin.core.state.Get
    name: never-set
    errorOnMissing: true
""").flow
        ),
        timeout=60,
    )
    by_task = runs(execution)
    assert execution.state == "FAILED" and by_task["missing"].state == "FAILED"  # the failure path
    uri = by_task["keep"].outputs["uris"]["out.txt"]
    assert storage().read(uri).strip() == "HELLO"
    assert by_task["recall"].outputs == {"data": {"uri": uri}, "count": 1}
