"""Hypothesis strategies for the fuzz tests: JSON-ish values that look like what flows hold, and the check
that a source loads or is refused with placed errors, quickly."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import strategies as st

from flows_app.spec.errors import FlowValidationError
from flows_app.spec.flow import load_flow
from flows_app.spec.inputs import INPUT_TYPES
from flows_app.spec.model import FlowSpec
from plugins_app.registry import all_plugins

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "flows"
# The corpus sample (Apache-2.0, see fuzz-seeds/README.md) and Tern's own valid fixtures.
SEED_PATHS = sorted((FIXTURES / "fuzz-seeds").glob("*.y*ml")) + sorted((FIXTURES / "valid").glob("*.yml"))

PLUGIN_TYPES = sorted({name for cls in all_plugins() for name in (cls.type, *cls.aliases)})

# Text that means something to some check: durations, crons, templates, dates, regexes, ids, URIs.
TRICKY_TEXT = [
    "PT15M",
    "PT0.000001S",
    "P1W",
    "10m",
    "30s",
    "PT15X",
    "-5s",
    "PT99999999999999999999H",
    "99999999999d",
    "P" + "9" * 400 + "D",
    "* * * * *",
    "*/0 * * * *",
    "0 0 31 2 *",
    "99 99 99 99 99",
    "@daily",
    "@reboot",
    "0 0 * * * * * *",
    "{{ inputs.x }}",
    "{{ outputs.t.value }}",
    "{{ unclosed",
    "{% if %}",
    "{% for x in y %}",
    "{{ x | nope }}",
    "2024-01-31",
    "2024-02-30",
    "2024-01-31T09:30:00Z",
    "9999-12-31T23:00:00-05:00",
    "0001-01-01T00:00:00+01:00",
    "09:30:00",
    "25:61",
    "(",
    "a{4294967296}",
    "(" * 1000 + ")" * 1000,
    "(a+)+",
    "[a-z]+",
    "kestra://x/y",
    "file://[",
    "file:///tmp/x.csv",
    "https://example.com",
    "a@b.c",
    "t1",
    "a b",
    "-a",
    "io.kestra.tests",
    "company.team",
    "",
    " ",
    "\t",
    "true",
    "false",
    "null",
    "1e999",
    "NaN",
    "[1, 2]",
    '{"a": 1}',
    "[" * 2000 + "]" * 2000,
    "9" * 5000,
    "RETRY_FAILED_TASK",
    "CREATE_NEW_EXECUTION",
    "constant",
    "exponential",
    "random",
    "INFO",
    "WARN",
    *sorted(INPUT_TYPES),
    *PLUGIN_TYPES,
]
# Keys the checks look for, so that an added key reaches deep code as well as being unknown.
KNOWN_KEYS = [
    "id",
    "type",
    "namespace",
    "tasks",
    "errors",
    "finally",
    "inputs",
    "outputs",
    "triggers",
    "labels",
    "variables",
    "taskDefaults",
    "pluginDefaults",
    "retry",
    "timeout",
    "disabled",
    "allowFailure",
    "runIf",
    "workerGroup",
    "logLevel",
    "description",
    "interval",
    "maxInterval",
    "minInterval",
    "maxDuration",
    "maxAttempt",
    "delayFactor",
    "cron",
    "values",
    "value",
    "cases",
    "defaults",
    "then",
    "else",
    "dependsOn",
    "task",
    "concurrent",
    "items",
    "flowId",
    "wait",
    "transmitFailed",
    "itemType",
    "validator",
    "min",
    "max",
    "minLength",
    "maxLength",
    "required",
    "expression",
    "acceptedExtensions",
    "prefill",
    "after",
    "before",
    "message",
    "format",
    "duration",
    "delay",
    "uri",
    "key",
    "listeners",
    "conditions",
    "forced",
    "name",
]

HUGE_INTS = [2**63, -(2**63) - 1, 10**30, 10**4000]  # more digits than 4300: not even repr() works

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(HUGE_INTS),
    st.floats(),
    st.sampled_from(TRICKY_TEXT),
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail a load that hangs instead of hanging the test run (SIGALRM: main thread, Unix)."""

    def expire(signum, frame):
        raise Hang(f"no answer after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def load_or_refuse(source: str) -> FlowSpec | FlowValidationError:
    """load_flow(source), which must return a spec or raise FlowValidationError, quickly, with placed and
    printable errors; anything else (a RecursionError, an OverflowError, a hang) fails the test."""
    started = time.monotonic()
    with time_limit(5):
        try:
            outcome: FlowSpec | FlowValidationError = load_flow(source)
        except FlowValidationError as exc:
            outcome = exc
    assert time.monotonic() - started < 2, f"load_flow took {time.monotonic() - started:.1f} s"
    if isinstance(outcome, FlowSpec):
        assert outcome.id and outcome.namespace and outcome.tasks  # what a valid flow cannot lack
        return outcome
    assert outcome.errors
    for error in outcome.errors:
        assert error.line is not None, f"unplaced error: {error}"
        str(error).encode("utf-8")  # the CLI prints it: a lone surrogate would crash there
    return outcome
