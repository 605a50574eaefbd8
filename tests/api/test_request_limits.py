"""Requests and sources have a size: uploads are counted as they arrive and refused past their limit, and
are copied to storage in chunks; an input value, a flow source and a request body past theirs are refused
with the limit named. Nothing is left half-made."""

from __future__ import annotations

import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from flows_app.engine import inputs
from flows_app.models import Execution, Flow
from flows_app.services.storage import storage

UPLOAD = """\
id: upload
namespace: company.team
inputs:
  - id: data
    type: FILE
  - id: note
    type: STRING
    required: false
tasks:
  - id: said
    type: io.kestra.plugin.core.log.Log
    message: "{{ inputs.note }}"
"""


@pytest.fixture
def storage_dir(settings, tmp_path):
    settings.TERN = {**settings.TERN, "STORAGE_DIR": tmp_path / "storage"}


def test_an_upload_past_its_limit_is_refused_with_413_and_starts_nothing(alice, settings, storage_dir):
    alice.save_flow(UPLOAD)
    settings.TERN = {**settings.TERN, "UPLOAD_MAX_BYTES": 100_000}
    answer = alice.post(
        "executions/company.team/upload", {"data": SimpleUploadedFile("d.bin", os.urandom(300_000))}, format="multipart"
    )
    assert answer.status_code == 413, answer.content
    assert answer.json()["message"] == "inputs.data: the file is more than 100,000 bytes (TERN_UPLOAD_MAX_BYTES)"
    assert not Execution.objects.exists()


def test_a_big_upload_within_its_limit_reaches_storage_whole(alice, storage_dir):
    alice.save_flow(UPLOAD)
    content = os.urandom(3 * 1024 * 1024 + 7)  # past Django's 2.5 MB in memory: a temporary file, then chunks
    answer = alice.post(
        "executions/company.team/upload", {"data": SimpleUploadedFile("d.bin", content)}, format="multipart"
    )
    assert answer.status_code == 200, answer.content
    assert storage().path_of(answer.json()["inputs"]["data"]).read_bytes() == content


def test_an_input_value_past_its_limit_is_refused_naming_the_input(alice, storage_dir):
    alice.save_flow(UPLOAD)
    saved = inputs.MAX_CHARS
    inputs.configure(1000)
    try:
        answer = alice.post(
            "executions/company.team/upload",
            {"data": SimpleUploadedFile("d.bin", b"x"), "note": "n" * 1001},
            format="multipart",
        )
    finally:
        inputs.configure(saved)
    assert answer.status_code == 422, answer.content
    [error] = answer.json()["errors"]
    assert error["path"] == "inputs.note" and error["message"].startswith("'nnnn")
    assert error["message"].endswith(
        "is 1,001 characters long, more than the 1,000 of an input value (TERN_INPUT_MAX_CHARS)"
    )
    assert not Execution.objects.exists()


def test_a_flow_source_past_its_limit_is_refused_naming_the_setting(alice):
    source = UPLOAD + "description: " + "d" * 1_000_001 + "\n"
    answer = alice.client.post("/api/v1/main/flows", source, content_type="application/x-yaml")
    assert answer.status_code == 422, answer.content
    assert "more than the 1,000,000 a flow may have (TERN_FLOW_SOURCE_MAX_BYTES)" in answer.json()["message"]
    assert not Flow.objects.exists()


def test_a_request_body_past_its_limit_is_refused(alice, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    answer = alice.client.post("/api/v1/main/flows", UPLOAD + "#" * 20_000, content_type="application/x-yaml")
    assert answer.status_code == 413, answer.content
    assert answer.json()["message"] == "the request body is more than 10,000 bytes (TERN_API_MAX_BODY_BYTES)"
    assert not Flow.objects.exists()
