"""`tern server prepare` (the first step of `make run`): the flows folder is loaded; a bad file is skipped."""

from __future__ import annotations

import io

import pytest

from flows_app.models import Flow


@pytest.mark.django_db(transaction=True)
def test_invalid_and_binary_flow_files_are_reported_and_skipped(tmp_path, capsys):
    from orchestrator.local import prepare

    (tmp_path / "good.yml").write_text(
        "id: good\nnamespace: tests.prepare\ntasks:\n  - id: a\n"
        "    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
    )
    (tmp_path / "bad.yml").write_text("id: bad\nnamespace: tests.prepare\ntasks: []\n")
    (tmp_path / "binary.yml").write_bytes(b"id: x\n\xff\xfe\x00garbage")
    out = io.StringIO()
    prepare(tmp_path, out=out)
    prepare(tmp_path, out=out)  # a restart loads nothing twice
    assert list(Flow.objects.values_list("flow_id", flat=True)) == ["good"]
    assert out.getvalue().count("loaded tests.prepare.good (revision 1)") == 1
    errors = capsys.readouterr().err
    assert "flows/bad.yml: skipped, invalid" in errors
    assert "flows/binary.yml: skipped, invalid" in errors and "not UTF-8 text" in errors
