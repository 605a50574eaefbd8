"""Shared fixtures: running fixture flows through the real services with the inline dispatcher."""

from __future__ import annotations

import os
from pathlib import Path

import hypothesis
import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "flows"

# Fuzz tests run the same examples each time, on a fixed budget; HYPOTHESIS_PROFILE=deep searches wider.
_LENIENT = [hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.data_too_large]
hypothesis.settings.register_profile(
    "ci", max_examples=400, deadline=None, derandomize=True, database=None, suppress_health_check=_LENIENT
)
hypothesis.settings.register_profile(
    "deep", max_examples=5000, deadline=None, database=None, suppress_health_check=_LENIENT
)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def run_flow(transactional_db, tmp_path, settings):
    """Run a flow file (a name under tests/fixtures/flows/valid, or a Path) to its end; returns the Outcome."""
    from flows_app.testrun import run_flow_file

    settings.TERN = {**settings.TERN, "WORK_DIR": tmp_path / "work"}

    def run(flow, inputs=None, flows_dir=None, timeout=60, on_log=None):
        path = flow if isinstance(flow, Path) else FIXTURES / "valid" / flow
        return run_flow_file(path, inputs or {}, flows_dir, on_log=on_log, timeout=timeout)

    return run
