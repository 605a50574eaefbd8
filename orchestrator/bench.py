"""`make bench`: figures, not tests. Measures the engine in-process (the Celery figures come with the runtime).

Prints one JSON line, e.g. {"validate_ms": 1.2, "inline_w1_ms_per_task": 3.4, "inline_w2_seconds": 1.05, ...}.
With DATABASE_URL set it measures on that database (it migrates it); otherwise on a throwaway SQLite file.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

W1_TASKS = 40
W2_BRANCHES = 10


def w1_source() -> str:
    tasks = ["  - id: t0\n    type: io.kestra.plugin.core.debug.Return\n    format: '0'\n"]
    for i in range(1, W1_TASKS):
        tasks.append(f"  - id: t{i}\n    type: io.kestra.plugin.core.debug.Return\n"
                     f"    format: \"{{{{ outputs.t{i - 1}.value }}}}+\"\n")
    return "id: bench-w1\nnamespace: bench\ntasks:\n" + "".join(tasks)


def w2_source() -> str:
    branches = "".join(f"      - id: sleep{i}\n        type: io.kestra.plugin.scripts.shell.Commands\n"
                       f"        commands: ['sleep 1']\n" for i in range(W2_BRANCHES))
    return ("id: bench-w2\nnamespace: bench\ntasks:\n  - id: fan\n    type: io.kestra.plugin.core.flow.Parallel\n"
            f"    tasks:\n{branches}  - id: join\n    type: io.kestra.plugin.core.debug.Return\n    format: done\n")


def run_once(source: str, directory: Path, name: str) -> tuple[float, str]:
    from flows_app.testrun import run_flow_file

    path = directory / f"{name}.yml"
    path.write_text(source)
    started = time.perf_counter()
    outcome = run_flow_file(path, timeout=120)
    return time.perf_counter() - started, outcome.execution.state


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tern-bench-") as tmp:
        directory = Path(tmp)
        if not os.environ.get("DATABASE_URL"):
            os.environ["DATABASE_URL"] = f"sqlite:///{directory / 'bench.sqlite3'}"
        os.environ["TERN_DATA_DIR"] = str(directory)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
        import django
        from django.core.management import call_command
        from django.db import connection

        django.setup()
        call_command("migrate", verbosity=0, interactive=False)

        from flows_app.spec.flow import load_flow

        seed = (Path(__file__).resolve().parent.parent / "flows" / "seed-full.yml").read_text()
        started = time.perf_counter()
        for _ in range(200):
            load_flow(seed)
        validate_ms = (time.perf_counter() - started) / 200 * 1000

        w1 = []
        for _ in range(5):
            seconds, state = run_once(w1_source(), directory, "w1")
            assert state == "SUCCESS", state
            w1.append(seconds / W1_TASKS * 1000)
        w2, state = run_once(w2_source(), directory, "w2")
        assert state == "SUCCESS", state
        figures = {
            "validate_ms": round(validate_ms, 2),
            "inline_w1_ms_per_task": round(statistics.median(w1), 2),
            "inline_w2_seconds": round(w2, 2),
            "database": connection.vendor,
        }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
