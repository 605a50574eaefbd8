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
