"""`tern server local` (what `make run` starts): it prepares everything, serves the admin, and stops cleanly."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


def test_server_local_serves_the_admin_with_the_example_flows_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(TERN_DATA_DIR=str(tmp_path), TERN_PORT=str(port))
    server = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "server", "local"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for(f"http://127.0.0.1:{port}/admin/login/") == 200
        assert wait_for(f"http://127.0.0.1:{port}/static/admin/css/base.css") == 200
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=20)
    assert server.returncode == 0, output
    assert re.search(r"login: admin\s+password: \S+", output)
    assert "loaded prod.hello" in output and "Tern stopped." in output
    assert (tmp_path / "tern.sqlite3").exists()
