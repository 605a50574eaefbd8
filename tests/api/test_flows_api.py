"""Flows through the API: saved from YAML byte for byte, read back, searched, validated, deleted."""

from __future__ import annotations

from .conftest import HELLO


def test_it_saves_a_flow_from_yaml_and_gives_back_its_source_byte_for_byte(alice):
    created = alice.save_flow(HELLO)
    assert created.status_code == 200, created.content
    body = created.json()
    assert (body["namespace"], body["id"], body["revision"]) == ("company.team", "hello", 1)
    assert body["source"] == HELLO
    assert body["tasks"][0]["type"] == "io.kestra.plugin.core.log.Log"

    fetched = alice.get("flows/company.team/hello")
    assert fetched.json()["source"] == HELLO
    as_yaml = alice.get("flows/company.team/hello", HTTP_ACCEPT="application/x-yaml")
    assert as_yaml["Content-Type"].startswith("application/x-yaml")
    assert as_yaml.content.decode() == HELLO


def test_an_update_is_a_new_revision_and_the_same_source_is_not(alice):
    alice.save_flow(HELLO)
    changed = HELLO.replace("Hello", "Hi")
    updated = alice.put("flows/company.team/hello", changed, content_type="application/x-yaml")
    assert updated.json()["revision"] == 2
    again = alice.put("flows/company.team/hello", changed, content_type="application/x-yaml")
    assert again.json()["revision"] == 2
    revisions = alice.get("flows/company.team/hello/revisions").json()
    assert [r["revision"] for r in revisions] == [1, 2]
    old = alice.get("flows/company.team/hello?revision=1").json()
    assert old["source"] == HELLO
    diff = alice.get("flows/company.team/hello/diff?from=1&to=2").json()
    assert "-    message: Hello" in diff["diff"] and "+    message: Hi" in diff["diff"]


def test_a_flow_sent_as_json_is_stored_as_yaml(alice):
    flow = {
        "id": "j",
        "namespace": "company.team",
        "tasks": [{"id": "a", "type": "io.kestra.plugin.core.log.Log", "message": "x"}],
    }
    created = alice.post("flows", flow, format="json")
    assert created.status_code == 200, created.content
    assert "id: j" in created.json()["source"]


def test_an_invalid_flow_is_refused_with_every_place_named(alice):
    bad = "id: bad\nnamespace: company.team\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Lgo\n"
    answer = alice.save_flow(bad)
    assert answer.status_code == 422
    body = answer.json()
    assert body["errors"][0]["path"] == "tasks[0].type"
    assert body["errors"][0]["line"] == 5
    assert body["_embedded"]["errors"] == body["errors"]
    assert "tasks[0].type" in body["message"]


def test_creating_a_flow_that_exists_is_a_conflict_and_updating_another_id_is_refused(alice):
    alice.save_flow(HELLO)
    assert alice.save_flow(HELLO).status_code == 409
    other = HELLO.replace("id: hello", "id: other")
    answer = alice.put("flows/company.team/hello", other, content_type="application/x-yaml")
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["path"] == "id"


def test_validate_answers_per_document_without_saving(alice):
    bad = "id: bad\nnamespace: company.team\ntasks: []\n"
    answers = alice.post("flows/validate", HELLO + "---\n" + bad, content_type="application/x-yaml").json()
    assert [a["index"] for a in answers] == [0, 1]
    assert answers[0]["constraints"] is None and answers[0]["flow"] == "hello"
    assert answers[1]["constraints"] and answers[1]["errors"][0]["path"] == "tasks"
    assert alice.get("flows/company.team/hello").status_code == 404


def test_search_by_namespace_prefix_text_and_labels_with_paging(alice):
    for i in range(5):
        alice.save_flow(HELLO.replace("id: hello", f"id: f{i}").replace("tasks:", f"labels:\n  n: '{i % 2}'\ntasks:"))
    alice.save_flow(HELLO.replace("namespace: company.team", "namespace: company.team.sub"))
    page = alice.get("flows/search?namespace=company.team&size=2&page=2&sort=id:asc").json()
    assert page["total"] == 6
    assert [f["id"] for f in page["results"]] == ["f2", "f3"]
    kestra_style = alice.get("flows/search", {"filters[namespace][EQUALS]": "company.team.sub"}).json()
    assert [f["id"] for f in kestra_style["results"]] == ["hello"]
    labelled = alice.get("flows/search", {"filters[labels][EQUALS][n]": "1"}).json()
    assert sorted(f["id"] for f in labelled["results"]) == ["f1", "f3"]
    assert alice.get("flows/search?q=F4").json()["total"] == 1
    assert alice.get("flows/search?sort=nope:asc").status_code == 400
    assert alice.get("flows/search?size=5000").status_code == 400


def test_a_deleted_flow_is_gone_but_its_revisions_stay_and_saving_brings_it_back(alice):
    alice.save_flow(HELLO)
    assert alice.delete("flows/company.team/hello").status_code == 204
    assert alice.get("flows/company.team/hello").status_code == 404
    assert alice.get("flows/company.team/hello?allowDeleted=true").json()["deleted"] is True
    assert alice.get("flows/search").json()["total"] == 0
    again = alice.save_flow(HELLO)
    assert again.status_code == 200 and again.json()["deleted"] is False


def test_disable_and_enable_by_ids_write_a_revision(alice):
    alice.save_flow(HELLO)
    ids = [{"namespace": "company.team", "id": "hello"}]
    assert alice.post("flows/disable/by-ids", ids, format="json").json() == {"count": 1}
    flow = alice.get("flows/company.team/hello").json()
    assert flow["disabled"] is True and flow["revision"] == 2 and "disabled: true" in flow["source"]
    assert alice.post("flows/enable/by-ids", ids, format="json").json() == {"count": 1}
    assert alice.get("flows/company.team/hello").json()["disabled"] is False


def test_deploying_a_namespace_saves_its_flows_and_deletes_the_others_when_asked(alice):
    alice.save_flow(HELLO.replace("id: hello", "id: stale"))
    body = HELLO + "---\n" + HELLO.replace("id: hello", "id: second")
    deployed = alice.post("flows/company.team?delete=true", body, content_type="application/x-yaml")
    assert deployed.status_code == 200, deployed.content
    assert sorted(f["id"] for f in deployed.json()) == ["hello", "second"]
    listed = alice.get("flows/company.team").json()
    assert sorted(f["id"] for f in listed) == ["hello", "second"]
    wrong = alice.post(
        "flows/company.team", HELLO.replace("company.team", "elsewhere"), content_type="application/x-yaml"
    )
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["path"] == "[0].namespace"


def test_the_tenantless_paths_of_kestra_0_answer_too(alice):
    alice.save_flow(HELLO)
    assert alice.client.get("/api/v1/flows/company.team/hello").json()["id"] == "hello"


def test_export_a_zip_and_import_it_back_invalid_flows_reported(alice, bob):
    import io
    import zipfile

    from django.core.files.uploadedfile import SimpleUploadedFile

    alice.save_flow(HELLO)
    alice.save_flow(HELLO.replace("id: hello", "id: two"))
    exported = alice.post("flows/export/by-ids", [{"namespace": "company.team", "id": "hello"}], format="json")
    names = zipfile.ZipFile(io.BytesIO(exported.content)).namelist()
    assert names == ["company.team.hello.yml"]
    everything = zipfile.ZipFile(io.BytesIO(alice.get("flows/export/by-query?namespace=company.team").content))
    assert sorted(everything.namelist()) == ["company.team.hello.yml", "company.team.two.yml"]
    assert everything.read("company.team.hello.yml").decode() == HELLO

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.yml", HELLO.replace("id: hello", "id: imported"))
        archive.writestr("b.yml", "id: broken\nnamespace: company.team\ntasks: []\n")
        archive.writestr("notes.txt", "not a flow")
    upload = SimpleUploadedFile("flows.zip", buffer.getvalue())
    assert bob.post("flows/import", {"fileUpload": upload}, format="multipart").status_code == 403
    upload.seek(0)
    answer = alice.post("flows/import", {"fileUpload": upload}, format="multipart")
    assert answer.status_code == 200, answer.content
    assert answer.json() == ["id: broken\nnamespace: company.team\ntasks: []\n"]
    assert alice.get("flows/company.team/imported").status_code == 200
    upload.seek(0)
    strict = alice.post("flows/import?failOnError=true", {"fileUpload": upload}, format="multipart")
    assert strict.status_code == 422
    yaml_file = SimpleUploadedFile(
        "flows.yml", (HELLO.replace("id: hello", "id: y1") + "---\n" + HELLO.replace("id: hello", "id: y2")).encode()
    )
    assert alice.post("flows/import", {"fileUpload": yaml_file}, format="multipart").json() == []
    assert alice.get("flows/company.team/y2").status_code == 200
