"""The `tern` commands that drive a live server through its API: deploy a folder (GitOps), validate on the
server, run and wait, read and follow logs; every failure one line."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from flows_app.models import Flow
from flows_app.services.tokens import create_token
from orchestrator.cli import main

HELLO = 'id: hello\nnamespace: company.team\ntasks:\n  - id: greet\n    type: io.kestra.plugin.core.log.Log\n    message: "Hi {{ inputs.who }}"\ninputs:\n  - id: who\n    type: STRING\n'
FAILING = "id: failing\nnamespace: company.team\ntasks:\n  - id: boom\n    type: io.kestra.plugin.core.execution.Fail\n"


@pytest.fixture
def server(web_server, db, monkeypatch):
    token, _ = create_token(User.objects.create_superuser("root", "r@example.com", "a-long-password"), "cli")
    monkeypatch.setenv("TERN_SERVER", web_server.url)
    monkeypatch.setenv("TERN_TOKEN", token)
    return web_server


def test_deploy_a_folder_as_a_namespace_and_delete_what_is_gone(server, tmp_path, capsys):
    folder = tmp_path / "flows"
    (folder / "sub").mkdir(parents=True)
    (folder / "hello.yml").write_text(HELLO)
    (folder / "sub" / "failing.yaml").write_text(FAILING)
    assert main(["flow", "deploy", str(folder), "--namespace", "company.team"]) == 0
    out = capsys.readouterr().out
    assert "deployed company.team.hello (revision 1)" in out and "deployed company.team.failing (revision 1)" in out

    (folder / "sub" / "failing.yaml").unlink()
    assert main(["flow", "deploy", str(folder), "--namespace", "company.team", "--delete"]) == 0
    assert list(Flow.objects.filter(deleted=False).values_list("flow_id", flat=True)) == ["hello"]

    (folder / "bad.yml").write_text("id: bad\nnamespace: company.team\ntasks:\n  - id: a\n    type: no.Such\n")
    assert main(["flow", "deploy", str(folder), "--namespace", "company.team"]) == 1
    err = capsys.readouterr().err
    assert f"{folder / 'bad.yml'}: tasks[0].type" in err and "Traceback" not in err
    assert not Flow.objects.filter(flow_id="bad").exists()


def test_validate_on_the_server(server, tmp_path, capsys):
    good, bad = tmp_path / "good.yml", tmp_path / "bad.yml"
    good.write_text(HELLO)
    bad.write_text("id: bad\nnamespace: company.team\ntasks: []\n")
    assert main(["flow", "validate", str(good), str(bad), "--server", server.url]) == 1
    captured = capsys.readouterr()
    assert f"{good}: valid" in captured.out
    assert f"{bad}: invalid" in captured.err and "  tasks:" in captured.err


def test_run_and_wait_shows_the_task_runs_and_exits_by_the_final_state(server, tmp_path, capsys):
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "hello.yml").write_text(HELLO)
    (folder / "failing.yml").write_text(FAILING)
    main(["flow", "deploy", str(folder), "--namespace", "company.team"])
    capsys.readouterr()
    assert main(["execution", "run", "company.team", "hello", "--input", "who=Ada", "--wait"]) == 0
    out = capsys.readouterr().out
    execution_id = out.split()[2]
    assert "  greet SUCCESS" in out and out.strip().endswith("ended SUCCESS")
    assert main(["execution", "run", "company.team", "failing", "--wait"]) == 1
    assert capsys.readouterr().out.strip().endswith("ended FAILED")

    assert main(["execution", "logs", execution_id]) == 0
    assert "greet Hi Ada" in capsys.readouterr().out
    assert main(["execution", "logs", execution_id, "--follow", "--level", "INFO"]) == 0
    assert "greet Hi Ada" in capsys.readouterr().out


def test_failures_are_one_line(server, monkeypatch, capsys):
    assert main(["execution", "run", "company.team", "nothing"]) == 1
    assert main(["execution", "run", "company.team", "hello", "--input", "nokey"]) == 1
    monkeypatch.setenv("TERN_TOKEN", "tern_wrong")
    assert main(["execution", "logs", "abc"]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == [
        f"{server.url}: 404 flow company.team.nothing not found",
        "--input 'nokey': write KEY=VALUE (or KEY=@FILE)",
        f"{server.url}: credentials refused (give --token or set TERN_TOKEN)",
    ]
