"""The KV store and namespaces through the API."""

from __future__ import annotations

from .conftest import HELLO


def test_kv_set_get_list_delete(alice, bob):
    assert alice.put("namespaces/company.team/kv/count", "42", content_type="text/plain").status_code == 204
    assert alice.put("namespaces/company.team/kv/name", "plain text", content_type="text/plain").status_code == 204
    assert alice.put("namespaces/company.team/kv/doc", {"a": [1, 2]}, format="json").status_code == 204
    assert bob.get("namespaces/company.team/kv/count").json()["value"] == 42
    assert bob.get("namespaces/company.team/kv/count").json()["type"] == "NUMBER"
    assert bob.get("namespaces/company.team/kv/name").json() == {
        **bob.get("namespaces/company.team/kv/name").json(),
        "type": "STRING",
        "value": "plain text",
    }
    assert bob.get("namespaces/company.team/kv/doc").json()["value"] == {"a": [1, 2]}
    assert [e["key"] for e in bob.get("namespaces/company.team/kv").json()] == ["count", "doc", "name"]
    assert bob.get("kv").json()["total"] == 3
    assert alice.delete("namespaces/company.team/kv/count").json() is True
    assert alice.get("namespaces/company.team/kv/count").status_code == 404
    assert alice.delete("namespaces/company.team/kv", {"keys": ["doc", "nope"]}, format="json").json() == {
        "keys": ["doc"]
    }


def test_kv_refuses_bad_keys_values_and_ttls(alice, carol):
    assert alice.put("namespaces/company.team/kv/-bad", "1", content_type="text/plain").status_code == 422
    assert alice.put("namespaces/company.team/kv/k?ttl=PT1X", "1", content_type="text/plain").status_code == 400
    assert alice.put("namespaces/company.team/kv/k", "null", content_type="text/plain").status_code == 422
    assert carol.get("namespaces/company.team/kv/k").status_code == 404


def test_a_ttl_makes_a_key_expire(alice, settings):
    import time_machine

    alice.put("namespaces/company.team/kv/short?ttl=PT1M", "1", content_type="text/plain")
    with time_machine.travel("2100-01-01"):
        assert alice.get("namespaces/company.team/kv/short").status_code == 404


def test_namespaces_are_listed_with_flow_counts_parents_included(alice, root):
    alice.save_flow(HELLO)
    alice.save_flow(HELLO.replace("id: hello", "id: two"))
    alice.save_flow(HELLO.replace("namespace: company.team", "namespace: company.team.sub"))
    root.save_flow(HELLO.replace("namespace: company.team", "namespace: other"))
    listed = alice.get("namespaces/search").json()
    assert listed == {
        "results": [{"id": "company.team", "flowCount": 3}, {"id": "company.team.sub", "flowCount": 1}],
        "total": 2,
    }
    assert {n["id"] for n in root.get("namespaces/search?size=100").json()["results"]} == {
        "company",
        "company.team",
        "company.team.sub",
        "other",
    }
    assert alice.get("namespaces/company.team").json() == {"id": "company.team", "flowCount": 3}
    assert alice.get("namespaces/other").status_code == 404
