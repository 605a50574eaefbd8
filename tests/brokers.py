"""The message brokers the bus tests run against: the real ones on this machine.

A test asks for its broker with `require(name)`. Without it a laptop's `make test` skips that test and says
how to get the broker; under CI=true a missing broker fails the test, since CI's machine runs them all.
"""

from __future__ import annotations

import os
import socket

import pytest

BROKERS = {
    # name: (host, port, how to get it)
    "mqtt": ("127.0.0.1", 1883, "apt-get install mosquitto"),
    "amqp": ("127.0.0.1", 5672, "apt-get install rabbitmq-server"),
    "nats": ("127.0.0.1", 4222, "apt-get install nats-server, run with -js (JetStream)"),
}


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require(name: str) -> tuple[str, int]:
    """The broker's (host, port); skips the test without it (fails under CI=true)."""
    host, port, how = BROKERS[name]
    if not reachable(host, port):
        message = f"no {name} broker on {host}:{port} ({how})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: CI runs every broker test")
        pytest.skip(message)
    return host, port
