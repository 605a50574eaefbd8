"""How much a task's or a flow's outputs may weigh. Outputs live in the execution's rows, and every later
read of the execution carries them; big data belongs in files (a script's `outputFiles`), which internal
storage keeps and the outputs name by their kestra:/// URI, as Kestra's docs advise."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

MAX_BYTES = 1_000_000  # TERN_OUTPUT_MAX_BYTES; Django's app start sets the deployment's


def configure(max_bytes: int) -> None:
    global MAX_BYTES
    MAX_BYTES = max_bytes


class OutputsTooLarge(ValueError):
    """Outputs over the limit; the message says how big, the limit, its setting and what to do instead."""


def as_json(outputs: Mapping[str, Any], whose: str) -> str:
    """The outputs as JSON text (what is not JSON as its str()), refused over MAX_BYTES; `whose` names them
    ("the outputs of task 'a'")."""
    text = json.dumps(dict(outputs), default=str)
    size = len(text.encode())
    if size > MAX_BYTES:
        raise OutputsTooLarge(
            f"{whose} take {_bytes(size)} as JSON, more than the limit of {_bytes(MAX_BYTES)} "
            "(TERN_OUTPUT_MAX_BYTES): write big data to files instead (a script's `outputFiles`), "
            "which internal storage keeps, and pass their kestra:/// URI"
        )
    return text


def _bytes(size: int) -> str:
    for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"
