"""Server-sent events from a live `tern web`: an execution's changes and its log lines, each line once, in
order, the stored ones first; both streams end when the execution ends."""

from __future__ import annotations

import json
import threading

import httpx
import pytest
from django.contrib.auth.models import User

from .conftest import PASSWORD, basic

CHATTY = """\
id: chatty
namespace: company.team
tasks:
  - id: early
    type: io.kestra.plugin.core.log.Log
    message: "line {{ taskrun.value }}"
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [1, 2, 3, 4, 5]
    tasks:
      - id: say
        type: io.kestra.plugin.core.log.Log
        message: "item {{ taskrun.value }}"
  - id: nap
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["sleep 2", "echo after the nap"]
"""


@pytest.fixture
def http(web_server, db):
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    with httpx.Client(
        base_url=web_server.url + "/api/v1/main", headers={"Authorization": basic("root")}, timeout=60
    ) as client:
        yield client


def events(response) -> list[tuple[str, str]]:
    """(event, data) pairs of a text/event-stream, until it closes."""
    found, event, data = [], None, []
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and event:
            found.append((event, "\n".join(data)))
            event, data = None, []
    return found


def test_following_an_execution_and_its_logs_from_its_start_to_its_end(http):
    assert http.post("/flows", content=CHATTY, headers={"Content-Type": "application/x-yaml"}).status_code == 200
    started = http.post("/executions/company.team/chatty").json()
    collected: dict[str, list] = {}

    def follow(name: str, path: str) -> None:
        with http.stream("GET", path, headers={"Accept": "text/event-stream"}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            collected[name] = events(response)

    threads = [
        threading.Thread(target=follow, args=("execution", f"/executions/{started['id']}/follow")),
        threading.Thread(target=follow, args=("logs", f"/logs/{started['id']}/follow")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)

    changes = collected["execution"]
    assert changes[-1][0] == "end" and all(kind == "progress" for kind, _ in changes[:-1])
    final = json.loads(changes[-1][1])
    assert final["state"]["current"] == "SUCCESS"
    states = [json.loads(data)["state"]["current"] for _, data in changes]
    assert "RUNNING" in states[:-1]  # it was seen running, not only at its end

    lines = [json.loads(data)["message"] for kind, data in collected["logs"] if kind == "progress"]
    assert collected["logs"][-1][0] == "end"
    stored = [line["message"] for line in http.get(f"/logs/{started['id']}").json()]
    assert lines == stored  # every line, once, in order
    assert [m for m in lines if m.startswith("item ")] == [f"item {i}" for i in range(1, 6)]
    assert any("after the nap" in m for m in lines)


def test_following_an_ended_execution_answers_at_once_with_its_end(http):
    http.post("/flows", content=CHATTY.replace("sleep 2", "true"), headers={"Content-Type": "application/x-yaml"})
    done = http.post("/executions/company.team/chatty?wait=true").json()
    assert done["state"]["current"] == "SUCCESS"
    with http.stream("GET", f"/executions/{done['id']}/follow") as response:
        assert [kind for kind, _ in events(response)] == ["end"]
    with http.stream("GET", f"/logs/{done['id']}/follow?minLevel=ERROR") as response:
        assert [kind for kind, _ in events(response)] == ["end"]
    assert http.get("/executions/nope/follow").status_code == 404
