"""Shared fixtures: running fixture flows through the real services with the inline dispatcher."""
from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "flows"


@pytest.fixture
def run_flow(transactional_db, tmp_path, settings):
    """Run a flow file (a name under tests/fixtures/flows/valid, or a Path) to its end; returns the Outcome."""
    from flows_app.testrun import run_flow_file

    settings.TERN = {**settings.TERN, "WORK_DIR": tmp_path / "work"}

    def run(flow, inputs=None, flows_dir=None, timeout=60, on_log=None):
        path = flow if isinstance(flow, Path) else FIXTURES / "valid" / flow
        return run_flow_file(path, inputs or {}, flows_dir, on_log=on_log, timeout=timeout)

    return run
