"""YAML as flows may use it. Merge keys (`<<: *anchor`) as the YAML spec has them: a key written in the mapping
overrides a merged one, the first mapping merged wins over later ones, a key written twice is still a
duplicate. No text may hold a NUL character (PostgreSQL could not store the flow)."""

from __future__ import annotations

import pytest

from flows_app.spec.errors import FlowValidationError
from flows_app.spec.flow import load_flow

FLOW = """id: merged
namespace: tests.spec
variables:
  retry: &retry {type: constant, interval: PT1S, maxAttempt: 2}
  slow: &slow {interval: PT9S, maxDuration: PT1H}
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: hi
    retry:
      <<: [*retry, *slow]
      interval: PT2S
  - id: b
    type: io.kestra.plugin.core.log.Log
    message: hi
    retry:
      <<: [*slow, *retry]
"""


def test_a_written_key_overrides_a_merged_one_and_the_first_merged_wins():
    spec = load_flow(FLOW)
    a, b = spec.task("a").retry, spec.task("b").retry
    assert a.interval.total_seconds() == 2 and a.max_attempts == 2 and a.max_duration.total_seconds() == 3600
    assert b.interval.total_seconds() == 9  # *slow comes first in b's merge


def test_a_key_written_twice_is_still_a_duplicate_next_to_a_merge():
    source = FLOW.replace("      interval: PT2S\n", "      interval: PT2S\n      interval: PT3S\n")
    with pytest.raises(FlowValidationError) as refused:
        load_flow(source)
    assert [str(e) for e in refused.value.errors] == ["tasks[0].retry.interval: duplicate key 'interval' (line 13)"]


@pytest.mark.parametrize("where", ['labels:\n  team: "a\\0b"\n', 'labels:\n  "a\\0": b\n'])
def test_a_nul_character_is_refused_where_it_is(where):
    source = (
        "id: nul\nnamespace: tests.spec\n"
        + where
        + "tasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
    )
    with pytest.raises(FlowValidationError) as refused:
        load_flow(source)
    [error] = refused.value.errors
    assert "NUL character" in str(error) and error.line == 4


def flow_with(flow_id: str = "f", namespace: str = "tests.spec", task_id: str = "a") -> str:
    return (
        f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n  - id: {task_id}\n"
        "    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
    )


@pytest.mark.parametrize(
    ("source", "where", "limit"),
    [
        (flow_with(flow_id="f" * 101), "id", 100),
        (flow_with(namespace="n" * 151), "namespace", 150),
        (flow_with(task_id="t" * 257), "tasks[0].id", 256),
    ],
)
def test_ids_and_namespaces_longer_than_kestra_allows_are_refused(source, where, limit):
    with pytest.raises(FlowValidationError) as refused:
        load_flow(source)
    [error] = refused.value.errors
    assert str(error).startswith(f"{where}: ") and f"at most {limit}" in str(error)


@pytest.mark.django_db
def test_the_longest_ids_allowed_are_stored_and_run():
    """On PostgreSQL a column too short for them would refuse the rows (SQLite does not check lengths)."""
    from flows_app.models import TaskRun
    from flows_app.services.executions import advance_execution, start_execution
    from flows_app.services.flows import save_flow

    flow = save_flow(flow_with(flow_id="f" * 100, namespace="n" * 150, task_id="t" * 256)).flow
    execution = start_execution(flow)
    advance_execution(execution.id)
    assert TaskRun.objects.get(execution=execution).task_id == "t" * 256
